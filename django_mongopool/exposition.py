"""The audit report in Prometheus' text exposition format (needs the ``prometheus`` extra)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
except ImportError:  # the optional extra is not installed
    _INSTALLED = False
else:
    _INSTALLED = True

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MISSING_EXTRA = (
    "Prometheus output needs prometheus-client, which is not installed: "
    'pip install "django-mongopool[prometheus]"'
)


def prometheus_available() -> bool:
    return _INSTALLED


def _gauge(name: str, doc: str, value: Any, labels: dict[str, str] | None = None) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), float(value))
    return family


def _pool_families(
    prefix: str, doc: str, rows: list[tuple[dict[str, str], dict[str, Any]]]
) -> Iterator[Metric]:
    fields = {
        "open": "Connections open in the pool",
        "in_use": "Connections checked out",
        "idle": "Connections idle in the pool",
        "waiting": "Threads waiting for a connection",
        "checkouts": "Successful check-outs since start",
        "peak_open": "Largest number of open connections seen",
        "pool_clears": "Times the pool was cleared after a network error",
        "connections_created": "Connections created since start",
    }
    label_names = list(rows[0][0]) if rows else ["server"]
    for field, text in fields.items():
        family = GaugeMetricFamily(f"{prefix}_{field}", f"{text} ({doc})", labels=label_names)
        for labels, server in rows:
            family.add_metric(list(labels.values()), float(server.get(field, 0)))
        yield family
    failures = GaugeMetricFamily(
        f"{prefix}_checkout_failures",
        f"Failed check-outs by reason ({doc})",
        labels=[*label_names, "reason"],
    )
    for labels, server in rows:
        for reason, count in sorted((server.get("checkout_failures") or {}).items()):
            failures.add_metric([*labels.values(), reason], float(count))
    yield failures


class _ReportCollector:
    def __init__(self, report: dict[str, Any], show_hosts: bool) -> None:
        self.report = report
        self.show_hosts = show_hosts

    def collect(self) -> Iterator[Metric]:
        report = self.report
        budget = report["budget"]
        yield _gauge(
            "mongopool_processes_configured", "Processes the deployment runs", budget["processes"]
        )
        yield _gauge(
            "mongopool_process_ceiling_connections",
            "Per-process connection ceiling",
            budget["per_process_ceiling"],
        )
        yield _gauge(
            "mongopool_fleet_ceiling_connections",
            "Fleet connection ceiling, all servers",
            budget["fleet_ceiling"],
        )
        yield _gauge(
            "mongopool_fleet_ceiling_per_server_connections",
            "Fleet connection ceiling towards one server",
            budget["fleet_ceiling_per_server"],
        )
        yield _gauge(
            "mongopool_server_capacity_connections",
            "Connections the server accepts",
            budget["server_capacity"],
        )
        server = report["server"]
        yield _gauge(
            "mongopool_server_up",
            "1 when the server answered a ping",
            1 if server["reachable"] else 0,
        )
        family = GaugeMetricFamily(
            "mongopool_server_connections", "serverStatus.connections", labels=["state"]
        )
        for state, value in sorted((server["connections"] or {}).items()):
            family.add_metric([state], float(value))
        yield family
        yield _gauge(
            "mongopool_server_utilisation_ratio",
            "serverStatus connections current / (current + available)",
            None if server["utilisation_percent"] is None else server["utilisation_percent"] / 100,
        )
        process = report["process"]
        rows = [
            ({"server": s["address"] if self.show_hosts else f"server{i}"}, s)
            for i, s in enumerate(process["servers"])
        ]
        yield from _pool_families("mongopool_pool", "this process", rows)
        yield _gauge(
            "mongopool_sessions_started",
            "Sessions started by this process",
            process["sessions_started"],
        )
        yield _gauge(
            "mongopool_sessions_ended", "Sessions ended by this process", process["sessions_ended"]
        )
        yield _gauge(
            "mongopool_unavailable_responses",
            "503 responses sent because MongoDB was unavailable",
            process["unavailable_responses"],
        )
        fleet = report["fleet"]
        if fleet is not None:
            yield _gauge(
                "mongopool_fleet_processes", "Processes with a live heartbeat", fleet["alive"]
            )
            yield _gauge(
                "mongopool_fleet_open_connections",
                "Open connections across the fleet",
                fleet["open"],
            )
            yield _gauge(
                "mongopool_fleet_in_use_connections",
                "Checked-out connections across the fleet",
                fleet["in_use"],
            )
            yield _gauge(
                "mongopool_fleet_waiting",
                "Requests waiting for a connection across the fleet",
                fleet["waiting"],
            )
            yield _gauge(
                "mongopool_fleet_saturated_processes",
                "Processes whose pool is saturated",
                len(fleet["saturated"]),
            )


def render(report: dict[str, Any], show_hosts: bool = True) -> str:
    """Raises ImproperlyConfigured when prometheus-client is missing (check prometheus_available())."""
    if not prometheus_available():
        raise ImproperlyConfigured(MISSING_EXTRA)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReportCollector(report, show_hosts))  # type: ignore[arg-type]
    return generate_latest(registry).decode()
