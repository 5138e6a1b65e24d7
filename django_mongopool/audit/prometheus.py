"""The audit report as Prometheus metrics, by Prometheus' conventions (needs the ``prometheus`` extra).

:class:`ReportCollector` is a prometheus-client collector over one report of
:func:`django_mongopool.audit.report.build_report` (the page's JSON): counts that only grow are
counters (``*_total``), levels are gauges, the check-out wait is a histogram, base units are
seconds and ratios (0..1). Every family's help text ends with the report figure it carries,
as its path in the JSON (``process.servers[].open``), so a series leads to its figure on the
page and back. Every family is exported on every scrape, with no sample where the report has
no value (heartbeats never read, no fleet budget), so dashboards and alert rules always find
the names; the families of connections per application are the exception: they come from
``$currentOp``, which only ``mongo_connections`` runs.

Label values that come from outside the app (application names, client hosts, member
addresses) pass through :func:`django_mongopool.guards.terminal.safe` before prometheus-client
escapes ``\\``, ``"`` and newlines: no control character reaches a scraper's or a terminal's
output. A number that is not finite, or too large for a float, is left out of its family.

The process's own figures are ``mongopool_*`` in a web process and ``mongopool_command_*``
when the management command renders the report, so a command's pool is never mistaken for a
web process's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_mongopool import __version__
from django_mongopool.client.figures import WAIT_BUCKETS
from django_mongopool.fleet.roles import ROLES
from django_mongopool.guards.terminal import safe

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
        Metric,
    )
except ImportError:  # the optional extra is not installed
    _INSTALLED = False
else:
    _INSTALLED = True

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MISSING_EXTRA = (
    "Prometheus output needs prometheus-client, which is not installed: "
    'pip install "django-mongopool[prometheus]"'
)
# serverStatus.connections fields that only grow (the others are levels).
CUMULATIVE_CONNECTION_FIELDS = {
    "totalCreated": ("connections_created", "Connections the member accepted since it started"),
    "rejected": ("connections_rejected", "Connections the member refused since it started"),
}
# The page's wait percentiles, as the "quantile" label of the recent-wait gauge.
WAIT_QUANTILES = (("wait_ms_p50", "0.5"), ("wait_ms_p95", "0.95"), ("wait_ms_p99", "0.99"))


def prometheus_available() -> bool:
    return _INSTALLED


def _number(value: Any) -> float | None:
    """A figure as a sample value: numbers and booleans; None for anything else, for a
    number that is not finite and for one too large for a float."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _help(text: str, figure: str) -> str:
    return f"{text} ({figure})"


def _gauge(name: str, text: str, figure: str, labels: Iterable[str] = ()) -> Any:
    return GaugeMetricFamily(name, _help(text, figure), labels=list(labels))


def _counter(name: str, text: str, figure: str, labels: Iterable[str] = ()) -> Any:
    """A counter family: prometheus-client names its samples ``<name>_total``."""
    return CounterMetricFamily(name, _help(text, figure), labels=list(labels))


def _add(family: Any, labels: Iterable[str], value: Any, scale: float = 1.0) -> None:
    """One sample, unless ``value`` is no number (None, a string, NaN, 10**400)."""
    number = _number(value)
    if number is not None:
        family.add_metric(list(labels), number * scale)


def _one(family: Any, value: Any, scale: float = 1.0) -> Any:
    _add(family, [], value, scale)
    return family


# The pool figures of this process, per pool (the sync client's, each loop's) and server.
# (report key, family suffix, help); a counter's samples are <family>_total.
_POOL_GAUGES = (
    ("open", "open_connections", "Connections open in the pool"),
    (
        "in_use",
        "in_use_connections",
        "Connections open and not idle (checked out, or being set up)",
    ),
    ("idle", "idle_connections", "Connections idle in the pool"),
    (
        "waiting",
        "waiting_checkouts",
        "Check-outs waiting for a free connection (all in use or being opened)",
    ),
    ("connecting", "connecting_connections", "Connections being opened"),
    ("peak_open", "peak_open_connections", "Largest number of open connections seen"),
    ("peak_in_use", "peak_in_use_connections", "Largest number of connections in use seen"),
)
_POOL_COUNTERS = (
    ("checkouts", "checkouts", "Successful check-outs"),
    (
        "checkout_timeouts",
        "checkout_timeouts",
        "Operations that failed for want of a free connection (a retried read counts once)",
    ),
    ("connections_created", "connections_created", "Connections created"),
    ("pool_clears", "clears", "Times the pool was cleared after a network error"),
    (
        "budget_waits",
        "share_waits",
        "Check-outs that waited over 5 ms while a fleet budget's share held the pool below "
        "maxPoolSize",
    ),
    (
        "budget_refusals",
        "share_refusals",
        "Operations refused (wait-queue timeout) while a fleet budget's share held the pool "
        "below maxPoolSize",
    ),
)
_POOL_BY_REASON = (
    ("checkout_failures", "checkout_failures", "Failed check-outs, by reason"),
    ("connections_closed", "connections_closed", "Connections closed, by reason"),
)
# This process's own counters (process.<key>).
_PROCESS_COUNTERS = (
    ("sessions_started", "sessions_started", "Sessions started"),
    ("sessions_ended", "sessions_ended", "Sessions ended"),
    (
        "leaked_sessions",
        "leaked_sessions",
        "Sessions left open by a request or task and ended by the app",
    ),
    (
        "commands_succeeded",
        "commands_succeeded",
        "Commands that succeeded (counted with MONGOPOOL_COMMAND_METRICS)",
    ),
    (
        "commands_failed",
        "commands_failed",
        "Commands that failed (counted with MONGOPOOL_COMMAND_METRICS)",
    ),
    (
        "unavailable_responses",
        "unavailable_responses",
        "503 responses sent because MongoDB was unavailable",
    ),
    (
        "unavailable_tasks",
        "unavailable_tasks",
        "Tasks that met a MongoDB outage (retried, or failed)",
    ),
)


class ReportCollector:
    """The families of one report. ``show_hosts=False`` names servers ``server0``, ``server1``..."""

    def __init__(self, report: Mapping[str, Any], show_hosts: bool = True) -> None:
        self.report = report
        self.show_hosts = show_hosts
        command = report["process"].get("role") == "command"
        # This process's own figures: never mistaken for a web process's when the command renders.
        self.own = "mongopool_command" if command else "mongopool"

    def _host(self, index: int, address: Any) -> str:
        return safe(address) if self.show_hosts else f"server{index}"

    def collect(self) -> Iterator[Metric]:
        yield from self._applications()  # who holds the connections, first
        yield from self._budget()
        yield from self._server()
        yield from self._members()
        yield from self._process()
        yield from self._pools()
        yield from self._heartbeat()
        yield from self._fleet()
        yield from self._fleet_budget()

    # --- $currentOp: only when the report asked for it (mongo_connections) ------------------

    def _applications(self) -> Iterator[Metric]:
        apps = self.report["server"].get("applications")
        if not apps:
            return
        rows = apps["apps"]
        for key, name, text in (
            ("connections", "connections", "Connections per application name"),
            ("active", "active_connections", "Active connections per application name"),
            ("idle", "idle_connections", "Idle connections per application name"),
            ("hosts", "client_hosts", "Distinct client hosts per application name"),
        ):
            family = _gauge(
                f"mongopool_app_{name}",
                f"{text}, from $currentOp",
                f"server.applications.apps[].{key}",
                ["app"],
            )
            for row in rows:
                _add(family, [safe(row["app"])], row[key])
            yield family
        share = _gauge(
            "mongopool_app_share_ratio",
            "Share of the server's current connections per application name",
            "server.applications.apps[].share_percent",
            ["app"],
        )
        for row in rows:
            _add(share, [safe(row["app"])], row["share_percent"], 0.01)
        yield share
        for key, name, text in (
            ("connections", "connections", "Connections"),
            ("active", "active_connections", "Active connections"),
        ):
            family = _gauge(
                f"mongopool_app_host_{name}",
                f"{text} of an application's busiest client hosts (top N), from $currentOp",
                f"server.applications.apps[].top_hosts[].{key}",
                ["app", "host"],
            )
            for row in rows:
                for host in row["top_hosts"]:
                    _add(family, [safe(row["app"]), safe(host["host"])], host[key])
            yield family
        yield from self._no_appname(apps["no_appname"])
        yield _one(
            _gauge(
                "mongopool_current_op_members_asked",
                "Members whose $currentOp the application figures sum",
                "server.applications.members_asked",
            ),
            apps["members_asked"],
        )
        per_member = _gauge(
            "mongopool_member_app_connections",
            "Connections per application name on each member, from $currentOp",
            "server.members[].applications.apps[].connections",
            ["member", "app"],
        )
        unnamed = _gauge(
            "mongopool_member_no_appname_connections",
            "Connections that sent no application name, on each member, from $currentOp",
            "server.members[].applications.no_appname.connections",
            ["member"],
        )
        for i, member in enumerate(self.report["server"]["members"]):
            label = self._host(i, member["address"])
            groups = member.get("applications") or {}
            for row in groups.get("apps", ()):
                _add(per_member, [label, safe(row["app"])], row["connections"])
            if groups.get("no_appname"):
                _add(unnamed, [label], groups["no_appname"]["connections"])
        yield from (per_member, unnamed)

    def _no_appname(self, row: Mapping[str, Any] | None) -> Iterator[Metric]:
        where = "server.applications.no_appname"
        for key, name, text in (
            ("connections", "connections", "Connections that sent no application name"),
            ("active", "active_connections", "Active connections with no application name"),
            ("idle", "idle_connections", "Idle connections with no application name"),
            ("hosts", "client_hosts", "Distinct client hosts with no application name"),
        ):
            family = _gauge(f"mongopool_no_appname_{name}", text, f"{where}.{key}")
            yield _one(family, row[key] if row else 0)
        share = _gauge(
            "mongopool_no_appname_share_ratio",
            "Share of the server's current connections that sent no application name",
            f"{where}.share_percent",
        )
        yield _one(share, row["share_percent"] if row else None, 0.01)
        for key, name, text in (
            ("connections", "connections", "Connections"),
            ("active", "active_connections", "Active connections"),
        ):
            family = _gauge(
                f"mongopool_no_appname_host_{name}",
                f"{text} with no application name of the busiest client hosts (top N)",
                f"{where}.top_hosts[].{key}",
                ["host"],
            )
            for host in row["top_hosts"] if row else ():
                _add(family, [safe(host["host"])], host[key])
            yield family

    # --- the configuration and the connection budget ------------------------------------------

    def _budget(self) -> Iterator[Metric]:
        budget = self.report["budget"]
        for key, name, text in (
            ("processes", "processes_configured", "Processes the deployment runs"),
            ("hosts", "topology_servers", "Servers in the topology (or hosts of the URI)"),
            (
                "monitors_per_server",
                "monitor_connections_per_server",
                "Monitor connections each pool keeps to each server, outside the pool",
            ),
            (
                "per_process_ceiling",
                "process_ceiling_connections",
                "Per-process connection ceiling, all servers",
            ),
            ("fleet_ceiling", "fleet_ceiling_connections", "Fleet connection ceiling, all servers"),
            (
                "fleet_ceiling_per_server",
                "fleet_ceiling_per_server_connections",
                "Fleet connection ceiling towards one server",
            ),
            (
                "server_capacity",
                "server_capacity_connections",
                "Connections the tightest server accepts (serverStatus or "
                "MONGOPOOL_SERVER_MAX_CONNECTIONS)",
            ),
        ):
            yield _one(_gauge(f"mongopool_{name}", text, f"budget.{key}"), budget[key])
        yield _one(
            _gauge(
                "mongopool_max_pool_size_connections",
                "maxPoolSize of each pool",
                "budget.max_pool_size, config.options.maxPoolSize, "
                "fleet_budget.this_process.max_pool_size",
            ),
            budget["max_pool_size"],
        )
        yield _one(
            _gauge(
                "mongopool_fleet_ceiling_ratio",
                "Fleet ceiling towards one server / the server's capacity",
                "budget.fleet_ceiling_percent",
            ),
            budget["fleet_ceiling_percent"],
            0.01,
        )
        yield _one(
            _gauge(
                "mongopool_heartbeat_interval_seconds",
                "MONGOPOOL_HEARTBEAT_SECONDS: how often each process publishes its heartbeat "
                "(0: never)",
                "config.heartbeat_seconds",
            ),
            self.report["config"]["heartbeat_seconds"],
        )

    # --- the server and each member -----------------------------------------------------------

    def _server(self) -> Iterator[Metric]:
        server = self.report["server"]
        yield _one(
            _gauge("mongopool_server_up", "1 when the server answered a ping", "server.reachable"),
            server["reachable"],
        )
        yield _one(
            _gauge(
                "mongopool_server_authentication_failed",
                "1 when the server refused the app's credentials",
                "server.authentication_failed",
            ),
            server["authentication_failed"],
        )
        connections = _gauge(
            "mongopool_server_connections",
            "serverStatus.connections summed over the members that answered (levels; the "
            "cumulative fields are mongopool_member_connections_*_total)",
            "server.connections",
            ["state"],
        )
        for state, value in sorted((server["connections"] or {}).items()):
            if state not in CUMULATIVE_CONNECTION_FIELDS:
                _add(connections, [safe(state)], value)
        yield connections
        yield _one(
            _gauge(
                "mongopool_server_utilisation_ratio",
                "Busiest member's current / (current + available)",
                "server.utilisation_percent",
            ),
            server["utilisation_percent"],
            0.01,
        )
        members = server.get("members") or []
        yield _one(
            _gauge(
                "mongopool_server_figures_age_seconds",
                "Age of the server's figures (topology, serverStatus), measured at most once per "
                "MONGOPOOL_SERVER_STATUS_CACHE_SECONDS",
                "server.age_seconds",
            ),
            server.get("age_seconds"),
        )
        yield _one(
            _gauge(
                "mongopool_server_figures_stale",
                "1 when the measurement under way missed MONGOPOOL_AUDIT_DEADLINE and the previous "
                "period's figures are shown",
                "server.stale",
            ),
            server.get("stale"),
        )
        yield _one(
            _gauge(
                "mongopool_server_members_unanswered",
                "Members that did not answer serverStatus",
                "server.members[].answered",
            ),
            sum(1 for m in members if not m["answered"]),
        )
        topology = self.report.get("topology") or {}
        info = InfoMetricFamily(
            "mongopool_topology",
            _help("The deployment's topology type, as pymongo sees it", "topology.type"),
        )
        if topology.get("type"):
            info.add_metric([], {"type": safe(topology["type"])})
        yield info

    def _members(self) -> Iterator[Metric]:
        members = self.report["server"].get("members") or []
        where = "server.members[]"
        up = _gauge(
            "mongopool_member_up", "1 when the member answered", f"{where}.answered", ["member"]
        )
        info = InfoMetricFamily(
            "mongopool_member",
            _help("Each member's type and why its connection counts are missing", f"{where}.type"),
            labels=["member"],
        )
        connections = _gauge(
            "mongopool_member_connections",
            "serverStatus.connections of each member (levels)",
            f"{where}.connections",
            ["member", "state"],
        )
        cumulative = {
            field: _counter(
                f"mongopool_member_{name}", text, f"{where}.connections.{field}", ["member"]
            )
            for field, (name, text) in CUMULATIVE_CONNECTION_FIELDS.items()
        }
        utilisation = _gauge(
            "mongopool_member_utilisation_ratio",
            "current / (current + available) on each member",
            f"{where}.utilisation_percent",
            ["member"],
        )
        capacity = _gauge(
            "mongopool_member_capacity_connections",
            "Connections each member accepts (serverStatus or MONGOPOOL_SERVER_MAX_CONNECTIONS)",
            f"{where}.capacity, budget.members[].capacity",
            ["member"],
        )
        ceiling = _gauge(
            "mongopool_member_fleet_ceiling_ratio",
            "The fleet's ceiling towards each member / its capacity",
            "budget.members[].fleet_ceiling_percent",
            ["member"],
        )
        planned = {m["address"]: m for m in self.report["budget"].get("members", [])}
        for i, member in enumerate(members):
            label = self._host(i, member["address"])
            _add(up, [label], member["answered"])
            info.add_metric(
                [label],
                {"type": safe(member["type"]), "problem": safe(member["status_problem"] or "")},
            )
            for state, value in sorted((member["connections"] or {}).items()):
                if state in cumulative:
                    _add(cumulative[state], [label], value)
                else:
                    _add(connections, [label, safe(state)], value)
            _add(utilisation, [label], member["utilisation_percent"], 0.01)
            _add(capacity, [label], member["capacity"])
            plan = planned.get(member["address"])
            if plan:
                _add(ceiling, [label], plan["fleet_ceiling_percent"], 0.01)
        yield from (up, info, connections, *cumulative.values(), utilisation, capacity, ceiling)

    # --- this process ---------------------------------------------------------------------------

    def _process(self) -> Iterator[Metric]:
        process = self.report["process"]
        info = InfoMetricFamily(
            f"{self.own}_process",
            _help(
                "This process: its role, where its pool figures come from, whether its sessions "
                "are counted, the app's version",
                "process.role, process.pool_figures_from, process.sessions_counted",
            ),
        )
        info.add_metric(
            [],
            {
                "role": safe(process.get("role", "web")),
                "pool_figures_from": safe(process.get("pool_figures_from", "")),
                "sessions_counted": "true" if process.get("sessions_counted", True) else "false",
                "version": __version__,
            },
        )
        yield info
        yield _one(
            _gauge(
                f"{self.own}_pools",
                "Pools of this process: the sync client's and one per running event loop's",
                "process.pools, budget.pools_per_process",
            ),
            process["pools"],
        )
        yield _one(
            _gauge(
                f"{self.own}_pool_limit_connections",
                "What each pool of this process may hold per server now: its fleet-budget "
                "share, else maxPoolSize",
                "process.pool_limit",
            ),
            process.get("pool_limit"),
        )
        for key, name, text in _PROCESS_COUNTERS:
            yield _one(_counter(f"{self.own}_{name}", text, f"process.{key}"), process.get(key))

    def _pools(self) -> Iterator[Metric]:
        rows = [
            ([safe(s.get("pool", "sync")), self._host(i, s["address"])], s)
            for i, s in enumerate(self.report["process"]["servers"])
        ]
        labels = ["pool", "server"]
        prefix = f"{self.own}_pool"
        where = "process.servers[]"
        for key, name, text in _POOL_GAUGES:
            family = _gauge(f"{prefix}_{name}", text, f"{where}.{key}", labels)
            for values, server in rows:
                _add(family, values, server.get(key))
            yield family
        for key, name, text in _POOL_COUNTERS:
            family = _counter(f"{prefix}_{name}", text, f"{where}.{key}", labels)
            for values, server in rows:
                _add(family, values, server.get(key, 0))
            yield family
        for key, name, text in _POOL_BY_REASON:
            family = _counter(f"{prefix}_{name}", text, f"{where}.{key}", [*labels, "reason"])
            for values, server in rows:
                for reason, count in sorted((server.get(key) or {}).items()):
                    _add(family, [*values, safe(reason)], count)
            yield family
        recent = _gauge(
            f"{prefix}_checkout_wait_recent_seconds",
            "Time the last check-outs (up to 1024) took to get a connection, at the page's "
            "percentiles (quantile 1: the longest)",
            ", ".join(f"{where}.{key}" for key in (*dict(WAIT_QUANTILES), "wait_ms_max")),
            [*labels, "quantile"],
        )
        histogram = HistogramMetricFamily(
            f"{prefix}_checkout_wait_seconds",
            _help(
                "Time each successful check-out took to get its connection, opening it included",
                ", ".join(
                    f"{where}.{key}"
                    for key in (
                        "checkout_wait_buckets",
                        "checkout_wait_count",
                        "checkout_wait_seconds_sum",
                    )
                ),
            ),
            labels=labels,
        )
        for values, server in rows:
            for key, quantile in (*WAIT_QUANTILES, ("wait_ms_max", "1")):
                _add(recent, [*values, quantile], server.get(key), 0.001)
            waits = _histogram(server)
            if waits is not None:
                histogram.add_metric(values, *waits)
        yield from (recent, histogram)

    def _heartbeat(self) -> Iterator[Metric]:
        status = self.report["process"].get("heartbeat") or {}
        where = "process.heartbeat"
        yield _one(
            _gauge(
                f"{self.own}_heartbeat_publisher_running",
                "1 while this process's heartbeat thread runs",
                f"{where}.running",
            ),
            status.get("running"),
        )
        yield _one(
            _counter(
                f"{self.own}_heartbeats_published",
                "Heartbeats this process published",
                f"{where}.beats",
            ),
            status.get("beats"),
        )
        yield _one(
            _counter(
                f"{self.own}_heartbeat_failures",
                "Turns of this process's heartbeat thread that failed",
                f"{where}.failures",
            ),
            status.get("failures"),
        )
        yield _one(
            _gauge(
                f"{self.own}_heartbeat_last_published_timestamp_seconds",
                "When this process last published its heartbeat (Unix time)",
                f"{where}.last_beat_at",
            ),
            status.get("last_beat_at"),
        )

    # --- the fleet, from the heartbeats -------------------------------------------------------

    def _fleet(self) -> Iterator[Metric]:
        fleet = self.report.get("fleet")
        processes = fleet["processes"] if fleet else []
        # (family, help, JSON figure, the rows' field: None counts rows, "count:" counts the
        # rows where the field is set, else the field is summed)
        by_role = [
            ("processes", "Processes with a live heartbeat", "fleet.alive", None),
            ("open_connections", "Open connections of the live processes", "fleet.open", "open"),
            (
                "in_use_connections",
                "Connections in use in the live processes",
                "fleet.in_use",
                "in_use",
            ),
            (
                "waiting_checkouts",
                "Check-outs waiting for a connection in the live processes",
                "fleet.waiting",
                "waiting",
            ),
            (
                "saturated_processes",
                "Live processes whose pool is saturated",
                "fleet.saturated",
                "count:saturated",
            ),
            (
                "timing_out_processes",
                "Live processes whose check-outs timed out since their previous heartbeat",
                "fleet.timing_out",
                "count:recent_checkout_timeouts",
            ),
        ]
        for name, text, figure, field in by_role:
            family = _gauge(
                f"mongopool_fleet_{name}",
                f"{text}, by role (web, worker, command)",
                f"{figure}, fleet.processes[] by role",
                ["role"],
            )
            for role in ROLES if fleet is not None else ():
                rows = [p for p in processes if p.get("role") == role]
                if field is None:
                    total = len(rows)
                elif field.startswith("count:"):
                    total = sum(1 for p in rows if p.get(field.removeprefix("count:")))
                else:
                    total = sum(p.get(field, 0) for p in rows)
                _add(family, [role], total)
            yield family
        busiest = fleet.get("busiest") if fleet else None
        for key, name, text in (
            ("in_use", "busiest_in_use_connections", "Connections in use"),
            ("waiting", "busiest_waiting_checkouts", "Check-outs waiting"),
        ):
            yield _one(
                _gauge(
                    f"mongopool_fleet_{name}",
                    f"{text} in the fleet's busiest process",
                    f"fleet.busiest.{key}",
                ),
                busiest[key] if busiest else None,
            )
        for key, name, text in (
            ("forged", "forged_heartbeats", "Heartbeat documents whose MAC does not verify"),
            (
                "unreadable",
                "odd_heartbeats",
                "Signed heartbeat documents with values the app never writes",
            ),
            (
                "future_dated",
                "future_heartbeats",
                "Heartbeat documents dated ahead of the server's clock",
            ),
        ):
            yield _one(
                _gauge(f"mongopool_fleet_{name}", f"{text}, ignored", f"fleet.{key}"),
                fleet[key] if fleet else None,
            )
        yield _one(
            _gauge(
                "mongopool_fleet_host_clock",
                "1 when heartbeat ages are measured with each host's clock (the server does not "
                "report its own)",
                "fleet.clock",
            ),
            None if fleet is None else fleet["clock"] != "server",
        )

    def _fleet_budget(self) -> Iterator[Metric]:
        section = self.report.get("fleet_budget") or {}
        mine = section.get("this_process") or {}
        for figure, value, name, text in (
            (
                "fleet_budget.budget, fleet_budget.this_process.budget",
                section.get("budget"),
                "fleet_budget_connections",
                "MONGOPOOL_FLEET_BUDGET: connections per server all live processes may hold",
            ),
            (
                "fleet_budget.min_share",
                section.get("min_share"),
                "fleet_min_share_connections",
                "MONGOPOOL_FLEET_MIN_SHARE: the share of a process that has not seen the fleet",
            ),
            (
                "fleet_budget.processes_reporting",
                section.get("processes_reporting"),
                "fleet_budget_processes_reporting",
                "Live processes whose heartbeat carries a share",
            ),
            (
                "fleet_budget.fleet_may_hold_per_server",
                section.get("fleet_may_hold_per_server"),
                "fleet_budget_held_connections",
                "Connections per server the live processes may hold at their current shares",
            ),
            (
                "fleet_budget.this_process.share",
                mine.get("share"),
                "fleet_share_connections",
                "This process's share: pooled connections per server, per pool",
            ),
            (
                "fleet_budget.this_process.live_processes",
                mine.get("live_processes"),
                "fleet_live_processes",
                "Live processes this process split the budget among",
            ),
            (
                "fleet_budget.this_process.active",
                mine.get("active"),
                "fleet_budget_active",
                "1 when the budget resizes this process's pools (0: refused, check E010)",
            ),
            (
                "fleet_budget.this_process.too_small",
                mine.get("too_small"),
                "fleet_share_too_small",
                "1 when even one connection per pool takes the live processes over the budget",
            ),
            (
                "fleet_budget.this_process.updated_at",
                mine.get("updated_at"),
                "fleet_share_updated_timestamp_seconds",
                "When this process last computed its share from the fleet (Unix time)",
            ),
        ):
            yield _one(_gauge(f"mongopool_{name}", text, figure), value)


def _histogram(server: Mapping[str, Any]) -> tuple[list[tuple[str, float]], float] | None:
    """The check-out wait histogram of a pool row: cumulative buckets ("+Inf" last) and the
    waits' sum; None when the row has none."""
    counts = server.get("checkout_wait_buckets")
    if not isinstance(counts, list | tuple) or len(counts) != len(WAIT_BUCKETS):
        return None
    values = [_number(v) for v in (*counts, server.get("checkout_wait_count"))]
    total = _number(server.get("checkout_wait_seconds_sum"))
    if total is None or any(value is None for value in values):
        return None
    # Bounds written as prometheus-client writes "le" (0.0001, 1.0).
    bounds = [*map(str, WAIT_BUCKETS), "+Inf"]
    return [(le, float(value or 0)) for le, value in zip(bounds, values, strict=True)], total


def render(report: Mapping[str, Any], show_hosts: bool = True) -> str:
    """Raises ImproperlyConfigured when prometheus-client is missing (check prometheus_available())."""
    if not prometheus_available():
        raise ImproperlyConfigured(MISSING_EXTRA)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report, show_hosts))
    return generate_latest(registry).decode()
