"""Every figure of the audit report (the page's JSON) and the Prometheus series that carries it.

:func:`check` takes one report and the text ``/metrics`` (or ``--format prometheus``) made of
it, and asserts, independently of the collector's code:

- every number or flag of the JSON (walked, not listed by the app) is a figure below, or is
  exempt for the reason given;
- every family of the output is one of those figures' families: nothing unexplained;
- each family has its type (a counter for a count that only grows, a gauge for a level, a
  histogram for the check-out wait) and help text that names its JSON figure;
- each sample's value is the figure's (ratios for percentages, seconds for milliseconds),
  with the labels of its row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.client.figures import WAIT_BUCKETS
from django_mongopool.fleet.roles import ROLES


@dataclass(frozen=True)
class Figure:
    family: str  # as parsed (an info family is a gauge named *_info); "{own}_..." for this process's own figures (mongopool_command_... in the command)
    type: str
    scale: float = 1.0
    key_label: str | None = None  # a figure keyed by reason or state: that label holds the key
    labels: Mapping[str, str] = field(default_factory=dict)  # fixed labels (the quantile)
    derived: bool = False  # the value is checked by _derived(), not sample by sample


def _f(family: str, type_: str = "gauge", **kwargs: Any) -> Figure:
    return Figure(family, type_, **kwargs)


POOL = "process.servers[]"
MEMBERS = "server.members[]"
APPS = "server.applications"

FIGURES: dict[str, tuple[Figure, ...]] = {
    # The configuration and the connection budget.
    "config.heartbeat_seconds": (_f("mongopool_heartbeat_interval_seconds"),),
    "config.options.maxPoolSize": (_f("mongopool_max_pool_size_connections"),),
    "budget.processes": (_f("mongopool_processes_configured"),),
    "budget.hosts": (_f("mongopool_topology_servers"),),
    "budget.max_pool_size": (_f("mongopool_max_pool_size_connections"),),
    "budget.pools_per_process": (_f("{own}_pools"),),
    "budget.monitors_per_server": (_f("mongopool_monitor_connections_per_server"),),
    "budget.per_process_ceiling": (_f("mongopool_process_ceiling_connections"),),
    "budget.fleet_ceiling": (_f("mongopool_fleet_ceiling_connections"),),
    "budget.fleet_ceiling_per_server": (_f("mongopool_fleet_ceiling_per_server_connections"),),
    "budget.server_capacity": (_f("mongopool_server_capacity_connections"),),
    "budget.fleet_ceiling_percent": (_f("mongopool_fleet_ceiling_ratio", scale=0.01),),
    "budget.members[].capacity": (_f("mongopool_member_capacity_connections"),),
    "budget.members[].fleet_ceiling": (
        _f("mongopool_fleet_ceiling_per_server_connections", derived=True),
    ),
    "budget.members[].fleet_ceiling_percent": (
        _f("mongopool_member_fleet_ceiling_ratio", scale=0.01),
    ),
    "topology.type": (_f("mongopool_topology_info", derived=True),),
    # The server and each member.
    "server.reachable": (_f("mongopool_server_up"),),
    "server.authentication_failed": (_f("mongopool_server_authentication_failed"),),
    "server.connections{}": (_f("mongopool_server_connections", key_label="state", derived=True),),
    "server.utilisation_percent": (_f("mongopool_server_utilisation_ratio", scale=0.01),),
    "server.age_seconds": (_f("mongopool_server_figures_age_seconds"),),
    "server.stale": (_f("mongopool_server_figures_stale"),),
    f"{MEMBERS}.answered": (
        _f("mongopool_member_up"),
        _f("mongopool_server_members_unanswered", derived=True),
    ),
    f"{MEMBERS}.type": (_f("mongopool_member_info", derived=True),),
    f"{MEMBERS}.connections{{}}": (
        _f("mongopool_member_connections", key_label="state", derived=True),
        _f("mongopool_member_connections_created", "counter", derived=True),
        _f("mongopool_member_connections_rejected", "counter", derived=True),
    ),
    f"{MEMBERS}.utilisation_percent": (_f("mongopool_member_utilisation_ratio", scale=0.01),),
    f"{MEMBERS}.capacity": (_f("mongopool_member_capacity_connections"),),
    # Connections per application ($currentOp: the command only).
    f"{APPS}.apps[].connections": (_f("mongopool_app_connections"),),
    f"{APPS}.apps[].active": (_f("mongopool_app_active_connections"),),
    f"{APPS}.apps[].idle": (_f("mongopool_app_idle_connections"),),
    f"{APPS}.apps[].hosts": (_f("mongopool_app_client_hosts"),),
    f"{APPS}.apps[].share_percent": (_f("mongopool_app_share_ratio", scale=0.01),),
    f"{APPS}.apps[].top_hosts[].connections": (_f("mongopool_app_host_connections"),),
    f"{APPS}.apps[].top_hosts[].active": (_f("mongopool_app_host_active_connections"),),
    f"{APPS}.no_appname.connections": (_f("mongopool_no_appname_connections"),),
    f"{APPS}.no_appname.active": (_f("mongopool_no_appname_active_connections"),),
    f"{APPS}.no_appname.idle": (_f("mongopool_no_appname_idle_connections"),),
    f"{APPS}.no_appname.hosts": (_f("mongopool_no_appname_client_hosts"),),
    f"{APPS}.no_appname.share_percent": (_f("mongopool_no_appname_share_ratio", scale=0.01),),
    f"{APPS}.no_appname.top_hosts[].connections": (_f("mongopool_no_appname_host_connections"),),
    f"{APPS}.no_appname.top_hosts[].active": (_f("mongopool_no_appname_host_active_connections"),),
    f"{APPS}.members_asked": (_f("mongopool_current_op_members_asked"),),
    f"{APPS}.connections": (_f("mongopool_app_connections", derived=True),),
    f"{APPS}.active": (_f("mongopool_app_active_connections", derived=True),),
    f"{MEMBERS}.applications.apps[].connections": (_f("mongopool_member_app_connections"),),
    f"{MEMBERS}.applications.no_appname.connections": (
        _f("mongopool_member_no_appname_connections"),
    ),
    # This process and its pools.
    "process.role": (_f("{own}_process_info", derived=True),),
    "process.pool_figures_from": (_f("{own}_process_info", derived=True),),
    "process.sessions_counted": (_f("{own}_process_info", derived=True),),
    "process.pools": (_f("{own}_pools"),),
    "process.pool_limit": (_f("{own}_pool_limit_connections"),),
    "process.sessions_started": (_f("{own}_sessions_started", "counter"),),
    "process.sessions_ended": (_f("{own}_sessions_ended", "counter"),),
    "process.sessions_open": (_f("{own}_sessions_started", "counter", derived=True),),
    "process.leaked_sessions": (_f("{own}_leaked_sessions", "counter"),),
    "process.commands_succeeded": (_f("{own}_commands_succeeded", "counter"),),
    "process.commands_failed": (_f("{own}_commands_failed", "counter"),),
    "process.unavailable_responses": (_f("{own}_unavailable_responses", "counter"),),
    "process.unavailable_tasks": (_f("{own}_unavailable_tasks", "counter"),),
    "process.open": (_f("{own}_pool_open_connections", derived=True),),
    "process.in_use": (_f("{own}_pool_in_use_connections", derived=True),),
    "process.waiting": (_f("{own}_pool_waiting_checkouts", derived=True),),
    "process.connecting": (_f("{own}_pool_connecting_connections", derived=True),),
    "process.checkout_timeouts": (_f("{own}_pool_checkout_timeouts", "counter", derived=True),),
    "process.heartbeat.running": (_f("{own}_heartbeat_publisher_running"),),
    "process.heartbeat.beats": (_f("{own}_heartbeats_published", "counter"),),
    "process.heartbeat.failures": (_f("{own}_heartbeat_failures", "counter"),),
    "process.heartbeat.last_beat_at": (_f("{own}_heartbeat_last_published_timestamp_seconds"),),
    f"{POOL}.open": (_f("{own}_pool_open_connections"),),
    f"{POOL}.in_use": (_f("{own}_pool_in_use_connections"),),
    f"{POOL}.idle": (_f("{own}_pool_idle_connections"),),
    f"{POOL}.waiting": (_f("{own}_pool_waiting_checkouts"),),
    f"{POOL}.connecting": (_f("{own}_pool_connecting_connections"),),
    f"{POOL}.peak_open": (_f("{own}_pool_peak_open_connections"),),
    f"{POOL}.peak_in_use": (_f("{own}_pool_peak_in_use_connections"),),
    f"{POOL}.checkouts": (_f("{own}_pool_checkouts", "counter"),),
    f"{POOL}.checkout_timeouts": (_f("{own}_pool_checkout_timeouts", "counter"),),
    f"{POOL}.connections_created": (_f("{own}_pool_connections_created", "counter"),),
    f"{POOL}.pool_clears": (_f("{own}_pool_clears", "counter"),),
    f"{POOL}.budget_waits": (_f("{own}_pool_share_waits", "counter"),),
    f"{POOL}.budget_refusals": (_f("{own}_pool_share_refusals", "counter"),),
    f"{POOL}.checkout_failures{{}}": (
        _f("{own}_pool_checkout_failures", "counter", key_label="reason"),
    ),
    f"{POOL}.connections_closed{{}}": (
        _f("{own}_pool_connections_closed", "counter", key_label="reason"),
    ),
    **{
        f"{POOL}.{key}": (
            _f(
                "{own}_pool_checkout_wait_recent_seconds",
                scale=0.001,
                labels={"quantile": quantile},
            ),
        )
        for key, quantile in (
            ("wait_ms_p50", "0.5"),
            ("wait_ms_p95", "0.95"),
            ("wait_ms_p99", "0.99"),
            ("wait_ms_max", "1"),
        )
    },
    **{
        f"{POOL}.{key}": (_f("{own}_pool_checkout_wait_seconds", "histogram", derived=True),)
        for key in ("checkout_wait_buckets", "checkout_wait_count", "checkout_wait_seconds_sum")
    },
    # The fleet, from the heartbeats: totals by role (each process exports its own figures).
    **{
        f"fleet.{key}": (_f(f"mongopool_fleet_{name}", derived=True),)
        for key, name in (
            ("alive", "processes"),
            ("open", "open_connections"),
            ("in_use", "in_use_connections"),
            ("waiting", "waiting_checkouts"),
            ("saturated", "saturated_processes"),
            ("timing_out", "timing_out_processes"),
        )
    },
    **{
        f"fleet.processes[].{key}": (_f(f"mongopool_fleet_{name}", derived=True),)
        for key, name in (
            ("role", "processes"),
            ("open", "open_connections"),
            ("in_use", "in_use_connections"),
            ("waiting", "waiting_checkouts"),
            ("saturated", "saturated_processes"),
            ("recent_checkout_timeouts", "timing_out_processes"),
        )
    },
    "fleet.busiest.in_use": (_f("mongopool_fleet_busiest_in_use_connections"),),
    "fleet.busiest.waiting": (_f("mongopool_fleet_busiest_waiting_checkouts"),),
    "fleet.forged": (_f("mongopool_fleet_forged_heartbeats"),),
    "fleet.unreadable": (_f("mongopool_fleet_odd_heartbeats"),),
    "fleet.future_dated": (_f("mongopool_fleet_future_heartbeats"),),
    "fleet.clock": (_f("mongopool_fleet_host_clock", derived=True),),
    # The fleet budget.
    "fleet_budget.budget": (_f("mongopool_fleet_budget_connections"),),
    "fleet_budget.min_share": (_f("mongopool_fleet_min_share_connections"),),
    "fleet_budget.processes_reporting": (_f("mongopool_fleet_budget_processes_reporting"),),
    "fleet_budget.fleet_may_hold_per_server": (_f("mongopool_fleet_budget_held_connections"),),
    "fleet_budget.this_process.budget": (_f("mongopool_fleet_budget_connections"),),
    "fleet_budget.this_process.max_pool_size": (_f("mongopool_max_pool_size_connections"),),
    "fleet_budget.this_process.share": (_f("mongopool_fleet_share_connections"),),
    "fleet_budget.this_process.live_processes": (_f("mongopool_fleet_live_processes"),),
    "fleet_budget.this_process.active": (_f("mongopool_fleet_budget_active"),),
    "fleet_budget.this_process.too_small": (_f("mongopool_fleet_share_too_small"),),
    "fleet_budget.this_process.updated_at": (
        _f("mongopool_fleet_share_updated_timestamp_seconds"),
    ),
    "fleet_budget.this_process.waits": (_f("{own}_pool_share_waits", "counter", derived=True),),
    "fleet_budget.this_process.refusals": (
        _f("{own}_pool_share_refusals", "counter", derived=True),
    ),
}

# JSON figures with no series of their own, and why. A path ending in "." exempts a section.
EXEMPT: dict[str, str] = {
    "config": "the configuration echoed (maxPoolSize and the heartbeat interval have series)",
    "notes": "sentences",
    "warnings": "sentences (the alert rules raise the same conditions)",
    "process.pid": "Prometheus' own process collector exports the pid",
    "process.taken_at": "the scrape has its own timestamp",
    "process.history": "the page's chart of the last minutes: Prometheus keeps history itself",
    "fail_over": "mongo_connections' --fail-over gate; the alert rules do this job for /metrics",
    "server.current_op_requested": "how the report was asked for",
    f"{APPS}.server_current": "the members' current connections (mongopool_member_connections)",
    f"{APPS}.members": "the members (count(mongopool_member_up))",
    f"{APPS}.top_hosts": "the command's --hosts argument",
    f"{APPS}.apps[].drivers": "driver names",
    f"{APPS}.no_appname.drivers": "driver names",
    f"{MEMBERS}.applications": "per member, only connections per application name are "
    "exported (the rest is in the totals)",
    "fleet.busiest.pid": "a process id, not a figure",
    "fleet.forged_ids": "document ids, listed on the page",
    "fleet.processes": "each process exports its own figures when it is scraped; the fleet's "
    "rows are summed by role",
}
# Dicts whose keys come from the data (reasons, serverStatus fields): one figure, keyed by label.
KEYED = {
    "server.connections",
    f"{MEMBERS}.connections",
    f"{POOL}.checkout_failures",
    f"{POOL}.connections_closed",
}
# The labels each row of a list adds to its figures' samples.
ROW_LABELS: dict[str, Callable[[Mapping[str, Any]], dict[str, str]]] = {
    POOL: lambda row: {"pool": row["pool"], "server": row["address"]},
    MEMBERS: lambda row: {"member": row["address"]},
    "budget.members[]": lambda row: {"member": row["address"]},
    f"{APPS}.apps[]": lambda row: {"app": row["app"]},
    f"{APPS}.apps[].top_hosts[]": lambda row: {"host": row["host"]},
    f"{APPS}.no_appname.top_hosts[]": lambda row: {"host": row["host"]},
    f"{MEMBERS}.applications.apps[]": lambda row: {"app": row["app"]},
}
CUMULATIVE = {"totalCreated": "created", "rejected": "rejected"}


@dataclass
class Leaf:
    path: str
    value: Any
    labels: dict[str, str]


# Sections that are None when the report has none (no heartbeats read, no budget, ...).
SECTIONS = {
    "topology",
    "fleet",
    "fleet.busiest",
    "fleet_budget",
    "fleet_budget.this_process",
    APPS,
    f"{APPS}.no_appname",
    f"{MEMBERS}.applications",
}
# Fields that hold text when they have a value.
TEXT = {"app", "error", "status_problem", "capacity_source", "server_capacity_source"}


def walk(value: Any, path: str = "", labels: dict[str, str] | None = None) -> Iterator[Leaf]:
    """Every number and flag of the report (and each list of plain values), with the labels of
    its row. Text is not a figure; an empty list has no rows to walk."""
    labels = labels or {}
    if path in KEYED:
        yield Leaf(path + "{}", value or {}, labels)
    elif value is None:
        if path not in SECTIONS and path.rsplit(".", 1)[-1] not in TEXT:
            yield Leaf(path, None, labels)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else str(key), labels)
    elif isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            for row in value:
                extra = ROW_LABELS[path + "[]"](row) if path + "[]" in ROW_LABELS else {}
                yield from walk(row, path + "[]", {**labels, **extra})
        elif value:
            yield Leaf(path, value, labels)
    elif isinstance(value, bool | int | float):
        yield Leaf(path, value, labels)


def _exempt(path: str) -> bool:
    return any(path == key or path.startswith((f"{key}.", f"{key}[]")) for key in EXEMPT)


def _sample_name(family: str, type_: str) -> str:
    return f"{family}_total" if type_ == "counter" else family


class Scrape:
    """The parsed output: families by name."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(self, family: str, **labels: str) -> list[Any]:
        found = self.families[family].samples
        return [s for s in found if all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, family: str, sample: str, labels: Mapping[str, str]) -> float | None:
        matches = [
            s for s in self.families[family].samples if s.name == sample and s.labels == labels
        ]
        assert len(matches) <= 1, (family, labels, matches)
        return matches[0].value if matches else None

    def total(self, family: str, **labels: str) -> float:
        return sum(s.value for s in self.samples(family, **labels))


def _expected(value: Any, scale: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value) * scale


def check(report: Mapping[str, Any], text: str) -> Scrape:
    """Assert that ``text`` carries every figure of ``report`` (see the module's docstring)."""
    report = json.loads(json.dumps(report, default=str))  # the JSON form, as the page serves it
    own = "mongopool_command" if report["process"]["role"] == "command" else "mongopool"
    scrape = Scrape(text)
    leaves = list(walk(report))
    unexplained = sorted(
        {leaf.path for leaf in leaves if leaf.path not in FIGURES and not _exempt(leaf.path)}
    )
    assert unexplained == [], f"JSON figures with no series and no reason: {unexplained}"

    expected_families: dict[str, str] = {}
    for figures in FIGURES.values():
        for figure in figures:
            expected_families[figure.family.format(own=own)] = figure.type
    applications = report["server"]["applications"] is not None
    for name, type_ in expected_families.items():
        if not applications and ("_app_" in name or "no_appname" in name or "current_op" in name):
            assert name not in scrape.families, f"{name} without $currentOp"
            continue
        assert name in scrape.families, f"no family {name}"
        assert scrape.families[name].type == type_, (name, scrape.families[name].type, type_)
    unlisted = sorted(set(scrape.families) - set(expected_families))
    assert unlisted == [], f"families that carry no JSON figure: {unlisted}"

    for path, figures in FIGURES.items():  # help text names the JSON figure
        base = path.removesuffix("{}")
        for figure in figures:
            name = figure.family.format(own=own)
            if figure.derived or name not in scrape.families:
                continue
            doc = scrape.families[name].documentation
            assert base in doc, f"the help of {name} does not name {base}: {doc!r}"

    for leaf in leaves:
        for figure in FIGURES.get(leaf.path, ()):
            if figure.derived:
                continue
            name = figure.family.format(own=own)
            sample = _sample_name(name, figure.type)
            labels = {**leaf.labels, **figure.labels}
            if figure.key_label:
                for key, value in leaf.value.items():
                    got = scrape.value(name, sample, {**labels, figure.key_label: key})
                    assert got == _expected(value, figure.scale), (leaf.path, key, got, value)
            else:
                got = scrape.value(name, sample, labels)
                want = _expected(leaf.value, figure.scale)
                assert got == want or (
                    got is not None and want is not None and math.isclose(got, want)
                ), (leaf.path, labels, got, leaf.value)
    _derived(report, scrape, own)
    return scrape


def _derived(report: Mapping[str, Any], scrape: Scrape, own: str) -> None:
    process, server, budget = report["process"], report["server"], report["budget"]
    for key, name in (
        ("open", "pool_open_connections"),
        ("in_use", "pool_in_use_connections"),
        ("waiting", "pool_waiting_checkouts"),
        ("connecting", "pool_connecting_connections"),
        ("checkout_timeouts", "pool_checkout_timeouts"),
    ):
        assert scrape.total(f"{own}_{name}") == process[key], key
    started = scrape.total(f"{own}_sessions_started")
    assert started - scrape.total(f"{own}_sessions_ended") == process["sessions_open"]
    (info,) = scrape.samples(f"{own}_process_info")
    assert info.labels["role"] == process["role"]
    assert info.labels["pool_figures_from"] == process["pool_figures_from"]
    assert info.labels["sessions_counted"] == str(process["sessions_counted"]).lower()
    for row in process["servers"]:
        labels = {"pool": row["pool"], "server": row["address"]}
        buckets = {
            s.labels["le"]: s.value
            for s in scrape.samples(f"{own}_pool_checkout_wait_seconds", **labels)
            if s.name.endswith("_bucket")
        }
        assert [buckets[str(bound)] for bound in WAIT_BUCKETS] == row["checkout_wait_buckets"]
        assert buckets["+Inf"] == row["checkout_wait_count"]
        (total,) = [
            s.value
            for s in scrape.samples(f"{own}_pool_checkout_wait_seconds", **labels)
            if s.name.endswith("_sum")
        ]
        assert math.isclose(total, row["checkout_wait_seconds_sum"])
    # The server and its members: levels are gauges, totalCreated and rejected counters.
    for state, value in (server["connections"] or {}).items():
        if state in CUMULATIVE:
            family = f"mongopool_member_connections_{CUMULATIVE[state]}"
            assert scrape.total(family) == value, state
        else:
            assert scrape.total("mongopool_server_connections", state=state) == value, state
    for member in server["members"]:
        for state, value in (member["connections"] or {}).items():
            if state in CUMULATIVE:
                family = f"mongopool_member_connections_{CUMULATIVE[state]}"
                assert scrape.total(family, member=member["address"]) == value
            else:
                assert (
                    scrape.total(
                        "mongopool_member_connections", member=member["address"], state=state
                    )
                    == value
                )
        (info,) = scrape.samples("mongopool_member_info", member=member["address"])
        assert info.labels["type"] == member["type"]
        assert info.labels["problem"] == (member["status_problem"] or "")
    unanswered = sum(1 for m in server["members"] if not m["answered"])
    assert scrape.total("mongopool_server_members_unanswered") == unanswered
    if report["topology"]:
        (topology,) = scrape.samples("mongopool_topology_info")
        assert topology.labels["type"] == report["topology"]["type"]
    for member in budget["members"]:
        assert member["fleet_ceiling"] == budget["fleet_ceiling_per_server"]
    assert (
        scrape.total("mongopool_fleet_ceiling_per_server_connections")
        == (budget["fleet_ceiling_per_server"])
    )
    apps = server["applications"]
    if apps:
        unnamed = apps["no_appname"] or {"connections": 0, "active": 0}
        for key, family in (
            ("connections", "mongopool_app_connections"),
            ("active", "mongopool_app_active_connections"),
        ):
            assert scrape.total(family) + unnamed[key] == apps[key], key
    _fleet(report, scrape, own)


def _fleet(report: Mapping[str, Any], scrape: Scrape, own: str) -> None:
    fleet = report["fleet"]
    families = (
        "processes",
        "open_connections",
        "in_use_connections",
        "waiting_checkouts",
        "saturated_processes",
        "timing_out_processes",
    )
    if fleet is None:
        for name in families:
            assert scrape.samples(f"mongopool_fleet_{name}") == [], name
        assert scrape.samples("mongopool_fleet_host_clock") == []
        return
    for key, name in zip(
        ("alive", "open", "in_use", "waiting", "saturated", "timing_out"), families, strict=True
    ):
        expected = len(fleet[key]) if isinstance(fleet[key], list) else fleet[key]
        assert scrape.total(f"mongopool_fleet_{name}") == expected, key
    for role in ROLES:
        rows = [p for p in fleet["processes"] if p["role"] == role]
        for name, value in (
            ("processes", len(rows)),
            ("open_connections", sum(p["open"] for p in rows)),
            ("in_use_connections", sum(p["in_use"] for p in rows)),
            ("waiting_checkouts", sum(p["waiting"] for p in rows)),
            ("saturated_processes", sum(1 for p in rows if p["saturated"])),
            ("timing_out_processes", sum(1 for p in rows if p["recent_checkout_timeouts"])),
        ):
            (sample,) = scrape.samples(f"mongopool_fleet_{name}", role=role)
            assert sample.value == value, (role, name)
    host_clock = scrape.total("mongopool_fleet_host_clock")
    assert host_clock == (0.0 if fleet["clock"] == "server" else 1.0)
    mine = (report["fleet_budget"] or {}).get("this_process")
    if mine:
        assert scrape.total(f"{own}_pool_share_waits") == mine["waits"]
        assert scrape.total(f"{own}_pool_share_refusals") == mine["refusals"]
