"""The audit report in Prometheus' text exposition format (needs the ``prometheus`` extra).

Label values that come from the server (application names, client hosts, member
addresses) pass through :func:`django_mongopool.guards.terminal.safe` before
prometheus_client escapes ``\\``, ``"`` and newlines: no control character reaches
a scraper's or a terminal's output.

The process's own pool figures are ``mongopool_pool_*`` in a web process and
``mongopool_command_pool_*`` when the management command renders the report,
so a command's pool is never mistaken for a web process's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_mongopool.guards.terminal import safe

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
        "in_use": "Connections open and not idle (checked out, or being set up)",
        "idle": "Connections idle in the pool",
        "waiting": "Check-outs waiting for a free connection (all in use or being opened)",
        "connecting": "Connections being opened",
        "checkouts": "Successful check-outs since start",
        "peak_open": "Largest number of open connections seen",
        "pool_clears": "Times the pool was cleared after a network error",
        "connections_created": "Connections created since start",
    }
    label_names = list(rows[0][0]) if rows else ["pool", "server"]
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

    def _member(self, index: int, address: str) -> str:
        return safe(address) if self.show_hosts else f"server{index}"

    def _applications(self) -> Iterator[Metric]:
        apps = self.report["server"].get("applications")
        if not apps:
            return
        rows = apps["apps"]
        for field, name, text in (
            ("connections", "mongopool_app_connections", "Connections per application name"),
            ("active", "mongopool_app_active_connections", "Active connections per application"),
            ("idle", "mongopool_app_idle_connections", "Idle connections per application"),
            ("hosts", "mongopool_app_client_hosts", "Distinct client hosts per application"),
        ):
            family = GaugeMetricFamily(name, f"{text} ($currentOp)", labels=["app"])
            for row in rows:
                family.add_metric([safe(row["app"])], float(row[field]))
            yield family
        share = GaugeMetricFamily(
            "mongopool_app_share_ratio",
            "Share of the server's current connections per application",
            labels=["app"],
        )
        for row in rows:
            if row["share_percent"] is not None:
                share.add_metric([safe(row["app"])], row["share_percent"] / 100)
        yield share
        hosts = GaugeMetricFamily(
            "mongopool_app_host_connections",
            "Connections of an application's busiest client hosts ($currentOp, top N)",
            labels=["app", "host"],
        )
        for row in rows:
            for host in row["top_hosts"]:
                hosts.add_metric([safe(row["app"]), safe(host["host"])], float(host["connections"]))
        yield hosts
        none = apps["no_appname"]
        yield _gauge(
            "mongopool_no_appname_connections",
            "Connections that sent no application name ($currentOp)",
            none["connections"] if none else 0,
        )
        per_member = GaugeMetricFamily(
            "mongopool_member_app_connections",
            "Connections per application name on each member ($currentOp)",
            labels=["member", "app"],
        )
        for i, member in enumerate(self.report["server"]["members"]):
            for row in (member.get("applications") or {}).get("apps", ()):
                per_member.add_metric(
                    [self._member(i, member["address"]), safe(row["app"])],
                    float(row["connections"]),
                )
        yield per_member

    def _members(self) -> Iterator[Metric]:
        members = self.report["server"].get("members") or []
        up = GaugeMetricFamily(
            "mongopool_member_up", "1 when the member answered serverStatus", labels=["member"]
        )
        connections = GaugeMetricFamily(
            "mongopool_member_connections",
            "serverStatus.connections of each member",
            labels=["member", "state"],
        )
        utilisation = GaugeMetricFamily(
            "mongopool_member_utilisation_ratio",
            "current / (current + available) on each member",
            labels=["member"],
        )
        capacity = GaugeMetricFamily(
            "mongopool_member_capacity_connections",
            "Connections each member accepts (serverStatus or MONGOPOOL_SERVER_MAX_CONNECTIONS)",
            labels=["member"],
        )
        ceiling = GaugeMetricFamily(
            "mongopool_member_fleet_ceiling_ratio",
            "The fleet's ceiling towards each member / its capacity",
            labels=["member"],
        )
        planned = {m["address"]: m for m in self.report["budget"].get("members", [])}
        for i, member in enumerate(members):
            label = self._member(i, member["address"])
            up.add_metric([label], 1.0 if member["answered"] else 0.0)
            for state, value in sorted((member["connections"] or {}).items()):
                connections.add_metric([label, safe(state)], float(value))
            if member["utilisation_percent"] is not None:
                utilisation.add_metric([label], member["utilisation_percent"] / 100)
            if member["capacity"] is not None:
                capacity.add_metric([label], float(member["capacity"]))
            plan = planned.get(member["address"])
            if plan and plan["fleet_ceiling_percent"] is not None:
                ceiling.add_metric([label], plan["fleet_ceiling_percent"] / 100)
        yield from (up, connections, utilisation, capacity, ceiling)

    def collect(self) -> Iterator[Metric]:
        report = self.report
        yield from self._applications()  # who holds the connections, first
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
            family.add_metric([safe(state)], float(value))
        yield family
        yield _gauge(
            "mongopool_server_utilisation_ratio",
            "Highest member utilisation: current / (current + available)",
            None if server["utilisation_percent"] is None else server["utilisation_percent"] / 100,
        )
        yield from self._members()
        process = report["process"]
        command = process.get("role") == "command"
        prefix = "mongopool_command" if command else "mongopool"
        where = "the mongo_connections command's own process" if command else "this process"
        rows = [
            (
                {
                    "pool": safe(s.get("pool", "sync")),
                    "server": safe(s["address"]) if self.show_hosts else f"server{i}",
                },
                s,
            )
            for i, s in enumerate(process["servers"])
        ]
        yield from _pool_families(f"{prefix}_pool", where, rows)
        yield _gauge(
            f"{prefix}_sessions_started",
            f"Sessions started by {where}",
            process["sessions_started"],
        )
        yield _gauge(
            f"{prefix}_sessions_ended", f"Sessions ended by {where}", process["sessions_ended"]
        )
        if not command:
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
        yield from _fleet_budget(report.get("fleet_budget"))


def _fleet_budget(section: dict[str, Any] | None) -> Iterator[Metric]:
    if section is None:
        return
    yield _gauge(
        "mongopool_fleet_budget_connections",
        "MONGOPOOL_FLEET_BUDGET: connections per server all live processes may hold",
        section["budget"],
    )
    yield _gauge(
        "mongopool_fleet_budget_held_connections",
        "Connections per server the live processes may hold at their current shares",
        section["fleet_may_hold_per_server"],
    )
    mine = section["this_process"]
    if mine is not None:
        yield _gauge(
            "mongopool_fleet_share_connections",
            "This process's share: pooled connections per server, per pool",
            mine["share"],
        )
        yield _gauge(
            "mongopool_fleet_live_processes",
            "Live processes this process split the budget among",
            mine["live_processes"],
        )
        yield _gauge(
            "mongopool_fleet_share_waits",
            "Check-outs that waited because the share held the pool below maxPoolSize",
            mine["waits"],
        )
        yield _gauge(
            "mongopool_fleet_share_refusals",
            "Check-outs refused (503) because the share held the pool below maxPoolSize",
            mine["refusals"],
        )


def render(report: dict[str, Any], show_hosts: bool = True) -> str:
    """Raises ImproperlyConfigured when prometheus-client is missing (check prometheus_available())."""
    if not prometheus_available():
        raise ImproperlyConfigured(MISSING_EXTRA)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReportCollector(report, show_hosts))
    return generate_latest(registry).decode()
