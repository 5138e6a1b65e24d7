"""The connection audit: budget, every member's own counts, connections per application, the fleet.

:func:`build_report` returns a JSON-ready dict (schema ``django-mongopool/audit/1``)
shared by ``manage.py mongo_connections``, the pool-health page and ``/metrics``.
Anything the server does not report, or the user may not see, becomes one plain
line in ``notes``; the rest is still measured.

The page and ``/metrics`` call it with ``cache_seconds``: the server section
(topology, each member's ``serverStatus``) is then measured at most once per
period for the whole process, however many tabs and scrapers ask, and
``$currentOp`` runs only when explicitly asked for (the command always asks).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any

import pymongo
from pymongo import ReadPreference
from pymongo.errors import OperationFailure, PyMongoError

from django_mongopool.audit.members import (
    AUTHENTICATION_FAILED,
    NOT_ANSWERED_IN_TIME,
    Deadline,
    Member,
    applications,
    ask_members,
    bounded,
    error_text,
    topology,
)
from django_mongopool.client import pools
from django_mongopool.client.options import ClientConfig
from django_mongopool.client.process import active_test_clients, get_client, get_config
from django_mongopool.conf import conf
from django_mongopool.fleet import budget, heartbeat, history, reading, shares
from django_mongopool.guards import forks
from django_mongopool.guards.untrusted import MALFORMED_REPLY_ERRORS

SCHEMA = "django-mongopool/audit/1"
UTILISATION_WARNING = 80.0
DEFAULT_TOP_HOSTS = 5
PAGE_TIMEOUT = 2.0  # seconds per server query while answering a web request (web_report)
CAPACITY_FIX = (
    "set MONGOPOOL_SERVER_MAX_CONNECTIONS (mongod's net.maxIncomingConnections), or grant the "
    "clusterMonitor role so that serverStatus reports it"
)
_STATUS_FIXES = {
    "unauthorized": "grant the clusterMonitor role (serverStatus was refused)",
    "not_reported": "this server does not report serverStatus.connections (FerretDB and some "
    "proxies omit it): pass --accept-unknown-capacity to gate on the budget alone",
    "no_answer": "the member did not answer",
    "failed": "serverStatus failed",
}


@dataclass
class _ServerSide:
    """What the server said; the part of the report the page and /metrics cache."""

    reachable: bool = False
    error: str | None = None
    authentication_failed: bool = False
    topology: dict[str, Any] | None = None
    members: list[Member] = field(default_factory=list)
    current_op: bool = False
    notes: list[str] = field(default_factory=list)
    measured_at: float = field(default_factory=time.monotonic)
    # Served from the previous period: the measurement under way missed the reader's deadline.
    stale: bool = False
    refused: bool = False  # the server answered the ping with an error (not authentication)


def _measure(timeout: float, current_op: bool, deadline: Deadline | None = None) -> _ServerSide:
    side = _ServerSide(current_op=current_op)
    try:
        with pymongo.timeout(bounded(timeout, deadline) or 0.001):
            # Any member will do: a replica set during an election is still audited.
            get_client().admin.command("ping", read_preference=ReadPreference.NEAREST)
        side.reachable = True
    except OperationFailure as exc:
        if exc.code == AUTHENTICATION_FAILED:
            side.authentication_failed = True
            side.error = f"authentication failed (code {exc.code}): {error_text(exc)}"
            side.notes.append(
                f"The server refused authentication (AuthenticationFailed, code {exc.code}): "
                "check the user name, password and authSource in MONGOPOOL_URI; only the "
                "configuration is reported."
            )
        else:
            side.refused = True
            side.error = f"{error_text(exc)} (code {exc.code})"
            side.notes.append(
                f"The server refused the ping ({side.error}); only the configuration is reported."
            )
        return side
    except PyMongoError as exc:
        side.error = type(exc).__name__
        side.notes.append(
            f"The server could not be reached within {timeout:g}s ({type(exc).__name__}); "
            "only the configuration is reported."
        )
        return side
    side.topology = topology()
    side.members = ask_members(side.topology, timeout, current_op, deadline)
    late = [m.address for m in side.members if (m.error or "").startswith(NOT_ANSWERED_IN_TIME)]
    if late and deadline is not None:
        shown = ", ".join(late[:10]) + (f" and {len(late) - 10} more" if len(late) > 10 else "")
        side.notes.append(
            f"{len(late)} member(s) not answered within the audit's deadline of "
            f"{deadline.seconds:g} s (MONGOPOOL_AUDIT_DEADLINE; the command's --deadline): {shown}."
        )
    for member in side.members:
        side.notes.extend(member.notes)
        if member.address in late:
            continue  # counted above, in one line
        single = len(side.members) == 1
        where = "serverStatus" if single else f"serverStatus on {member.address}"
        if member.status_problem == "unauthorized":
            side.notes.append(
                f"{where}: not authorized (grant the clusterMonitor role to see the server's "
                "connection counts)."
            )
        elif member.status_problem == "not_reported":
            side.notes.append(
                f"The server{'' if single else ' ' + member.address} does not report "
                "serverStatus.connections (FerretDB and some proxies omit it); server-side "
                "connection counts are unavailable."
            )
        elif member.status_problem == "failed":
            side.notes.append(f"{where} failed: {member.error}.")
        elif member.status_problem == "no_answer":
            side.notes.append(f"Member {member.address} did not answer: {member.error}.")
    return side


@dataclass
class _Cached:
    config: ClientConfig
    timeout: float
    expires: float
    side: _ServerSide


@dataclass
class _Flight:
    """A measurement under way, shared by every reader that arrives while it runs."""

    future: Future[_ServerSide]
    config: ClientConfig
    timeout: float


_cache: dict[bool, _Cached] = {}
_in_flight: dict[bool, _Flight] = {}
_cache_lock = threading.Lock()  # held to look up and start a measurement, never during I/O


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: the parent's measurement is not this process's, its thread does not
    run here, and its lock may have been held at fork time."""
    global _cache_lock
    _cache_lock = threading.Lock()
    _cache.clear()
    _in_flight.clear()


def _margin(deadline: Deadline) -> float:
    """How much sooner than its readers' deadline a measurement ends, so they receive it."""
    return min(0.25, deadline.seconds / 10)


def _refresh(
    flight: _Flight, current_op: bool, cache_seconds: float, deadline: Deadline | None
) -> None:
    """The measurement thread: measures, caches for ``cache_seconds``, hands the result over."""
    try:
        side = _measure(flight.timeout, current_op, deadline)
    except BaseException as exc:  # handed to the readers waiting for it
        with _cache_lock:
            if _in_flight.get(current_op) is flight:
                del _in_flight[current_op]
        flight.future.set_exception(exc)
        return
    with _cache_lock:
        if _in_flight.get(current_op) is flight:
            del _in_flight[current_op]
            _cache[current_op] = _Cached(
                flight.config, flight.timeout, time.monotonic() + cache_seconds, side
            )
    flight.future.set_result(side)


def _not_in_time(deadline: Deadline, current_op: bool) -> _ServerSide:
    error = f"the audit's deadline of {deadline.seconds:g} s passed"
    return _ServerSide(
        error=error,
        current_op=current_op,
        notes=[
            f"The server did not answer within the audit's deadline of {deadline.seconds:g} s "
            "(MONGOPOOL_AUDIT_DEADLINE); only the configuration is reported. The measurement "
            "goes on, and the next reader gets it."
        ],
    )


def _server_side(
    timeout: float,
    current_op: bool,
    cache_seconds: float | None,
    deadline: Deadline | None = None,
) -> _ServerSide:
    """Measured now, or (with ``cache_seconds``) shared by every caller of the process for that long.

    Shared: one measurement at a time runs in its own thread, and every reader that arrives
    meanwhile waits for that one, each until its own ``deadline`` at most; a reader whose
    deadline passes first gets the previous period's result marked stale, or, when there is
    none, a server section that says the deadline passed.
    """
    if not cache_seconds:
        return _measure(timeout, current_op, deadline)
    config = get_config()
    with _cache_lock:
        entry = _cache.get(current_op)
        previous = entry if entry and entry.config is config and entry.timeout == timeout else None
        if previous is not None and previous.expires > time.monotonic():
            return previous.side
        flight = _in_flight.get(current_op)
        if flight is None or flight.config is not config or flight.timeout != timeout:
            flight = _Flight(Future(), config, timeout)
            _in_flight[current_op] = flight
            own = (
                None
                if deadline is None
                else Deadline(deadline.at - _margin(deadline), deadline.seconds)
            )
            threading.Thread(
                target=_refresh,
                args=(flight, current_op, cache_seconds, own),
                name="django-mongopool-audit",
                daemon=True,
            ).start()
    try:
        return flight.future.result(timeout=None if deadline is None else deadline.remaining())
    except FutureTimeout:
        assert deadline is not None  # no timeout, no FutureTimeout
        if previous is not None:
            return replace(previous.side, stale=True)
        return _not_in_time(deadline, current_op)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _in_flight.clear()


def _outage(side: _ServerSide) -> str:
    """The warning for a server that did not answer (the notes say more)."""
    if side.authentication_failed:
        return "The MongoDB server refused authentication: only the configuration is reported."
    if side.refused:
        return f"The MongoDB server refused the audit's ping ({side.error}): only the configuration is reported."
    return (
        f"The MongoDB server did not answer ({side.error or 'no answer'}): only the "
        "configuration is reported."
    )


def _fleet(notes: list[str]) -> dict[str, Any] | None:
    try:
        beats = heartbeat.read_fleet()
    except OperationFailure as exc:
        notes.append(f"Heartbeats could not be read: {error_text(exc)}.")
        return None
    notes.extend(reading.notes(beats, conf.heartbeat_collection))
    if not beats.processes:
        if not conf.heartbeat_seconds:
            notes.append(
                "No live heartbeats: set MONGOPOOL_HEARTBEAT_SECONDS (e.g. 10) in the web "
                "processes to see the whole fleet."
            )
        else:
            notes.append("No live heartbeats yet: no web process has served a request recently.")
    return reading.summary(beats)


def _member_rows(side: _ServerSide, top_hosts: int) -> list[dict[str, Any]]:
    rows = []
    configured = conf.server_max_connections
    for member in side.members:
        row = member.as_dict()
        connections = member.connections
        capacity, source = configured, "MONGOPOOL_SERVER_MAX_CONNECTIONS"
        if connections and "available" in connections:
            capacity, source = connections["current"] + connections["available"], "serverStatus"
        row["capacity"] = capacity
        row["capacity_source"] = source if capacity is not None else None
        row["utilisation_percent"] = (
            budget.percent(connections["current"], capacity) if connections else None
        )
        current = connections["current"] if connections else None
        row["applications"] = (
            None if member.groups is None else applications(member.groups, current, top_hosts)
        )
        rows.append(row)
    return rows


def _applications(
    side: _ServerSide, members: list[dict[str, Any]], top_hosts: int
) -> dict[str, Any] | None:
    asked = [m for m in side.members if m.groups is not None]
    if not asked:
        return None
    currents = [m.connections["current"] for m in asked if m.connections]
    current = sum(currents) if len(currents) == len(asked) else None
    totals = applications([g for m in asked for g in m.groups or ()], current, top_hosts)
    totals["members_asked"] = len(asked)
    totals["members"] = len(members)
    totals["top_hosts"] = top_hosts
    return totals


def _budget(
    processes: int, hosts: int, pools_here: int, members: list[dict[str, Any]]
) -> dict[str, Any]:
    max_pool = get_config().max_pool_size
    fleet_per_server = budget.fleet_per_server(processes, max_pool, pools_here)
    per_member = [
        {
            "address": m["address"],
            "capacity": m["capacity"],
            "capacity_source": m["capacity_source"],
            "fleet_ceiling": fleet_per_server,
            "fleet_ceiling_percent": budget.percent(fleet_per_server, m["capacity"]),
        }
        for m in members
    ]
    known = [m for m in per_member if m["capacity"] is not None]
    tightest = min(known, key=lambda m: m["capacity"], default=None)
    capacity = conf.server_max_connections if not members else None
    source = "MONGOPOOL_SERVER_MAX_CONNECTIONS" if capacity is not None else None
    if tightest is not None:
        capacity, source = tightest["capacity"], tightest["capacity_source"]
    return {
        "processes": processes,
        "hosts": hosts,
        "max_pool_size": max_pool,
        "pools_per_process": pools_here,
        "monitors_per_server": budget.MONITORS_PER_SERVER,
        "per_process_ceiling": budget.per_process(max_pool, hosts, pools_here),
        "fleet_ceiling": processes * budget.per_process(max_pool, hosts, pools_here),
        "fleet_ceiling_per_server": fleet_per_server,
        "server_capacity": capacity,
        "server_capacity_source": source,
        "fleet_ceiling_percent": budget.percent(fleet_per_server, capacity),
        "members": per_member,
    }


def _summed(members: list[dict[str, Any]]) -> dict[str, int] | None:
    answered = [m["connections"] for m in members if m["connections"]]
    if not answered:
        return None
    keys = set.intersection(*(set(c) for c in answered))
    return {k: sum(c[k] for c in answered) for k in sorted(keys)}


def _fail_over(
    limit: float | None,
    accept_unknown: bool,
    reachable: bool,
    plan: dict[str, Any],
    members: list[dict[str, Any]],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "percent": limit,
        "exceeded": [],
        "unknown": [],
        "accept_unknown_capacity": accept_unknown,
        "evaluated": False,
        "checked": 0,
        # None (no gate, or the server was not reached), "exceeded", "within_limit",
        # "unknown" (a figure is unknown, not accepted) or "nothing_checked" (unknown figures
        # accepted, but every figure is unknown: that cannot pass either).
        "result": None,
    }
    if limit is None or not reachable:
        return result
    several = len(members) > 1
    checked = 0
    for member, planned in zip(members, plan["members"], strict=True):
        at = f" on {member['address']}" if several else ""
        if planned["fleet_ceiling_percent"] is None:
            result["unknown"].append(
                {
                    "member": member["address"],
                    "figure": "server capacity",
                    "needed_for": "fleet ceiling",
                    "how": CAPACITY_FIX,
                }
            )
        else:
            checked += 1
            if planned["fleet_ceiling_percent"] > limit:
                result["exceeded"].append(
                    f"fleet ceiling{at} {planned['fleet_ceiling_percent']}% > {limit:g}%"
                )
        if member["utilisation_percent"] is None:
            problem = member["status_problem"] or "not_reported"
            result["unknown"].append(
                {
                    "member": member["address"],
                    "figure": "current connections (serverStatus.connections)",
                    "needed_for": "server utilisation",
                    "how": _STATUS_FIXES.get(problem, problem),
                }
            )
        else:
            checked += 1
            if member["utilisation_percent"] > limit:
                result["exceeded"].append(
                    f"server utilisation{at} {member['utilisation_percent']}% > {limit:g}%"
                )
    result["evaluated"] = checked > 0
    result["checked"] = checked
    if result["exceeded"]:
        result["result"] = "exceeded"
    elif result["unknown"] and not accept_unknown:
        result["result"] = "unknown"
    elif not checked:
        result["result"] = "nothing_checked"
    else:
        result["result"] = "within_limit"
    return result


def build_report(
    processes: int | None = None,
    timeout: float | None = None,
    fail_over: float | None = None,
    include_fleet: bool = True,
    *,
    current_op: bool = True,
    top_hosts: int = DEFAULT_TOP_HOSTS,
    accept_unknown_capacity: bool = False,
    cache_seconds: float | None = None,
    role: str = "web",
    deadline: float | None = None,
) -> dict[str, Any]:
    """Measure what is reachable; ``report["server"]["reachable"]`` says if the server answered.

    ``role`` labels this process's own pool figures ("command" for the management
    command: its pool is not a web process's). ``deadline`` (seconds) bounds the whole
    report: what has not answered by then is reported as such.
    """
    config = get_config()
    processes = processes or conf.processes
    timeout = timeout or config.seconds("serverSelectionTimeoutMS")
    limit = Deadline.after(deadline) if deadline else None
    process = pools.snapshot()
    side = _server_side(timeout, current_op, cache_seconds, limit)
    notes: list[str] = list(side.notes)
    warnings: list[str] = []
    age = round(time.monotonic() - side.measured_at, 1)
    if side.stale:
        notes.insert(
            0,
            f"The server's figures are from {age:g} s ago: the measurement under way did not "
            f"finish within the audit's deadline of {deadline:g} s (MONGOPOOL_AUDIT_DEADLINE).",
        )
    if not side.reachable:
        warnings.append(_outage(side))
    fleet = (
        _fleet_step(timeout, notes, warnings, limit) if side.reachable and include_fleet else None
    )

    members = _member_rows(side, top_hosts)
    topology = side.topology
    hosts = len(topology["servers"]) if topology and topology["servers"] else len(config.hosts)
    plan = _budget(processes, hosts, process.pools, members)
    if plan["server_capacity"] is None or any(
        m["capacity"] is None and m["answered"] for m in members
    ):
        notes.append(
            "Server capacity unknown: set MONGOPOOL_SERVER_MAX_CONNECTIONS (mongod's "
            "net.maxIncomingConnections) to compare the fleet ceiling with it."
        )
    utilisations = [
        m["utilisation_percent"] for m in members if m["utilisation_percent"] is not None
    ]
    connections = _summed(members)
    server: dict[str, Any] = {
        "reachable": side.reachable,
        "error": side.error,
        "authentication_failed": side.authentication_failed,
        "connections": connections,
        "utilisation_percent": max(utilisations, default=None),
        "members": members,
        "current_op_requested": side.current_op,
        "applications": _applications(side, members, top_hosts),
        "age_seconds": age,
        "stale": side.stale,
    }

    def over_capacity(capacity: Any, where: str) -> str:
        return (
            f"Fleet ceiling above server capacity{where}: {processes} processes x "
            f"{plan['pools_per_process']} client(s) x ({plan['max_pool_size']} pooled + "
            f"{budget.MONITORS_PER_SERVER} monitor connections) = "
            f"{plan['fleet_ceiling_per_server']} per server, but the server accepts {capacity}."
        )

    for planned in plan["members"]:
        if planned["fleet_ceiling_percent"] is not None and planned["fleet_ceiling_percent"] > 100:
            at = f" ({planned['address']})" if len(members) > 1 else ""
            warnings.append(over_capacity(planned["capacity"], at))
    if not members and plan["fleet_ceiling_percent"] and plan["fleet_ceiling_percent"] > 100:
        warnings.append(over_capacity(plan["server_capacity"], ""))
    for member in members:
        at = "The server" if len(members) == 1 else f"Member {member['address']}"
        utilisation = member["utilisation_percent"]
        if utilisation is not None and utilisation >= UTILISATION_WARNING:
            warnings.append(f"{at} is at {utilisation}% of its connection capacity.")
        rejected = (member["connections"] or {}).get("rejected")
        if rejected:
            warnings.append(f"{at} has rejected {rejected} connections.")
    if fleet:
        for pid in fleet["saturated"]:
            warnings.append(
                f"Process {pid}: pool saturated (requests are waiting for a connection)."
            )
        for pid in fleet["timing_out"]:
            warnings.append(f"Process {pid}: connection check-outs are timing out.")

    return {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "config": {
            "uri": config.redacted_uri,
            "database": conf.database,
            "appname": config.appname,
            "hosts": list(config.hosts),
            "options": {k: _jsonable(v) for k, v in config.display_options().items()},
            "heartbeat_seconds": conf.heartbeat_seconds,
            "mode": "real" if active_test_clients() is None else "mock",
        },
        "budget": plan,
        "topology": topology,
        "server": server,
        "process": {
            **process.as_dict(),
            "role": role,
            "pool_limit": shares.pool_limit(config.max_pool_size),
            "heartbeat": heartbeat.publisher_status(),
            "history": history.samples(),
        },
        "fleet": fleet,
        "fleet_budget": _fleet_budget(role, fleet),
        "notes": notes,
        "warnings": warnings,
        "fail_over": _fail_over(fail_over, accept_unknown_capacity, side.reachable, plan, members),
    }


def _fleet_budget(role: str, fleet: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fleet budget, this web process's share, and what the live processes hold under it."""
    if conf.fleet_budget is None:
        return None
    shares_seen = [
        (p["share"], p["pools"])
        for p in (fleet or {}).get("processes", [])
        if p["share"] is not None
    ]
    return {
        "budget": conf.fleet_budget,
        "min_share": conf.fleet_min_share,
        "this_process": shares.report() if role == "web" else None,
        "processes_reporting": len(shares_seen),
        "fleet_may_hold_per_server": sum(budget.per_server(s, pools) for s, pools in shares_seen),
    }


NO_DATABASE = (
    "Heartbeats not read: there is no default database (set MONGOPOOL_DATABASE, or put the "
    "database in the MONGOPOOL_URI path, mongodb://host:27017/name), so the fleet is unknown."
)


def _fleet_step(
    timeout: float, notes: list[str], warnings: list[str], deadline: Deadline | None
) -> dict[str, Any] | None:
    if not conf.database:  # the heartbeats live in the default database (check W020/E020)
        (warnings if conf.heartbeat_seconds else notes).append(NO_DATABASE)
        return None
    timeout = bounded(timeout, deadline)
    if timeout <= 0:
        notes.append("Heartbeats not read: the audit's deadline had passed; the fleet is unknown.")
        return None
    try:
        with pymongo.timeout(timeout):
            return _fleet(notes)
    except PyMongoError as exc:
        notes.append(f"Heartbeats failed: {type(exc).__name__}: {error_text(exc)}.")
        return None
    except MALFORMED_REPLY_ERRORS as exc:  # a reply pymongo could not make sense of
        notes.append(f"Heartbeats failed: the server's reply was malformed ({type(exc).__name__}).")
        return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def web_report(current_op: bool = False) -> dict[str, Any]:
    """The audit report for the page and /metrics: bounded cost and time, whatever the traffic.

    Server queries are capped at PAGE_TIMEOUT and the whole report at
    MONGOPOOL_AUDIT_DEADLINE; the server section is measured by one thread at a time and
    shared by every request of the process for MONGOPOOL_SERVER_STATUS_CACHE_SECONDS;
    ``$currentOp`` runs only when ``current_op`` is asked for (the page's ``?current_op=1``).
    """
    timeout = min(PAGE_TIMEOUT, get_config().seconds("serverSelectionTimeoutMS"))
    return build_report(
        timeout=timeout,
        current_op=current_op,
        cache_seconds=conf.server_status_cache_seconds,
        deadline=conf.audit_deadline,
    )
