"""The connection audit: budget, server-side counts, and the fleet's heartbeats.

:func:`build_report` returns a JSON-ready dict (schema ``django-mongopool/audit/1``)
shared by ``manage.py mongo_connections --format json`` and the pool-health page.
Anything the server does not report, or the user may not see, becomes one plain
line in ``notes``; the rest is still measured.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pymongo
from pymongo.errors import OperationFailure, PyMongoError

from django_mongopool import budget as budgets
from django_mongopool import fleet as fleets
from django_mongopool import heartbeat, history, pools
from django_mongopool.client import active_test_clients, get_client, get_config
from django_mongopool.conf import conf
from django_mongopool.redact import scrub

SCHEMA = "django-mongopool/audit/1"
UNAUTHORIZED = 13
UTILISATION_WARNING = 80.0
_CURRENT_OP = [
    {"$currentOp": {"allUsers": True, "idleConnections": True}},
    {"$match": {"type": {"$ne": "idleSession"}}},
    {
        "$project": {
            "appName": 1,
            "clientMetadata.driver": 1,
            "client": 1,
            "client_s": 1,
            "active": 1,
        }
    },
]


def _error_text(exc: BaseException) -> str:
    text = getattr(exc, "details", None) or {}
    message = text.get("errmsg") if isinstance(text, dict) else None
    return scrub(str(message or exc).splitlines()[0][:300], get_config().secrets)


def _topology() -> dict[str, Any]:
    description = get_client().topology_description
    servers = [
        {"address": f"{host}:{port}", "type": server.server_type_name}
        for (host, port), server in sorted(description.server_descriptions().items())
    ]
    return {"type": description.topology_type_name, "servers": servers}


def _server_status(notes: list[str]) -> dict[str, Any] | None:
    try:
        status = get_client().admin.command("serverStatus")
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            notes.append(
                "serverStatus: not authorized (grant the clusterMonitor role to see the "
                "server's connection counts)."
            )
        else:
            notes.append(f"serverStatus failed: {_error_text(exc)}.")
        return None
    connections = status.get("connections")
    if not isinstance(connections, dict) or "current" not in connections:
        notes.append(
            "The server does not report serverStatus.connections (FerretDB and some proxies "
            "omit it); server-side connection counts are unavailable."
        )
        return None
    return {k: v for k, v in connections.items() if isinstance(v, int | float)}


def _current_op(notes: list[str]) -> list[dict[str, Any]] | None:
    try:
        ops = list(get_client().admin.aggregate(_CURRENT_OP))
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            notes.append(
                "$currentOp: not authorized (needs the inprog privilege, e.g. clusterMonitor); "
                "connections per application are unavailable."
            )
        else:
            notes.append(
                f"The server does not support $currentOp ({_error_text(exc)}); connections per "
                "application are unavailable."
            )
        return None
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for op in ops:
        client = op.get("client") or op.get("client_s")
        if not client:
            continue  # internal threads hold no client connection
        host = client.rsplit(":", 1)[0]
        driver = ((op.get("clientMetadata") or {}).get("driver") or {}).get("name", "unknown")
        key = (op.get("appName") or "(no appname)", driver, host)
        group = groups.setdefault(
            key, {"app": key[0], "driver": key[1], "host": key[2], "connections": 0, "active": 0}
        )
        group["connections"] += 1
        group["active"] += 1 if op.get("active") else 0
    return sorted(groups.values(), key=lambda g: (-g["connections"], g["app"], g["host"]))


def _fleet(notes: list[str]) -> dict[str, Any] | None:
    try:
        reading = heartbeat.read_fleet()
    except OperationFailure as exc:
        notes.append(f"Heartbeats could not be read: {_error_text(exc)}.")
        return None
    if reading.unreadable:
        notes.append(
            f"{reading.unreadable} unreadable heartbeat document(s) skipped (not written by "
            f"django-mongopool, or damaged) in {conf.heartbeat_collection}."
        )
    if reading.future:
        notes.append(
            f"{len(reading.future)} heartbeat document(s) dated in the future ignored "
            "(a clock ahead by more than "
            f"{fleets.MAX_SKEW_SECONDS:g} s); the publishers prune them."
        )
    if not reading.processes:
        if not conf.heartbeat_seconds:
            notes.append(
                "No live heartbeats: set MONGOPOOL_HEARTBEAT_SECONDS (e.g. 10) in the web "
                "processes to see the whole fleet."
            )
        else:
            notes.append("No live heartbeats yet: no web process has served a request recently.")
    return fleets.summary(reading)


def _step(timeout: float, notes: list[str], name: str, func: Any) -> Any:
    try:
        with pymongo.timeout(timeout):
            return func(notes)
    except PyMongoError as exc:
        notes.append(f"{name} failed: {type(exc).__name__}: {_error_text(exc)}.")
        return None


def _budget(
    processes: int, hosts: int, pools_here: int, capacity: int | None, source: str | None
) -> dict[str, Any]:
    max_pool = get_config().max_pool_size
    fleet_per_server = budgets.fleet_per_server(processes, max_pool, pools_here)
    return {
        "processes": processes,
        "hosts": hosts,
        "max_pool_size": max_pool,
        "pools_per_process": pools_here,
        "monitors_per_server": budgets.MONITORS_PER_SERVER,
        "per_process_ceiling": budgets.per_process(max_pool, hosts, pools_here),
        "fleet_ceiling": processes * budgets.per_process(max_pool, hosts, pools_here),
        "fleet_ceiling_per_server": fleet_per_server,
        "server_capacity": capacity,
        "server_capacity_source": source,
        "fleet_ceiling_percent": budgets.percent(fleet_per_server, capacity),
    }


def build_report(
    processes: int | None = None,
    timeout: float | None = None,
    fail_over: float | None = None,
    include_fleet: bool = True,
) -> dict[str, Any]:
    """Measure what is reachable; ``report["server"]["reachable"]`` says if the server answered."""
    config = get_config()
    processes = processes or conf.processes
    timeout = timeout or config.seconds("serverSelectionTimeoutMS")
    process = pools.snapshot()
    notes: list[str] = []
    warnings: list[str] = []
    server: dict[str, Any] = {
        "reachable": False,
        "connections": None,
        "utilisation_percent": None,
        "current_op": None,
    }
    topology = None
    fleet = None
    try:
        with pymongo.timeout(timeout):
            get_client().admin.command("ping")
        server["reachable"] = True
    except PyMongoError as exc:
        notes.append(
            f"The server could not be reached within {timeout:g}s ({type(exc).__name__}); "
            "only the configuration is reported."
        )
    if server["reachable"]:
        topology = _topology()
        server["connections"] = _step(timeout, notes, "serverStatus", _server_status)
        server["current_op"] = _step(timeout, notes, "$currentOp", _current_op)
        if include_fleet:
            fleet = _step(timeout, notes, "Heartbeats", _fleet)

    connections = server["connections"]
    capacity, source = conf.server_max_connections, "MONGOPOOL_SERVER_MAX_CONNECTIONS"
    if connections and "available" in connections:
        capacity = int(connections["current"] + connections["available"])
        source = "serverStatus"
        server["utilisation_percent"] = budgets.percent(connections["current"], capacity)
    if capacity is None:
        source = None
        notes.append(
            "Server capacity unknown: set MONGOPOOL_SERVER_MAX_CONNECTIONS (mongod's "
            "net.maxIncomingConnections) to compare the fleet ceiling with it."
        )
    hosts = len(topology["servers"]) if topology and topology["servers"] else len(config.hosts)
    budget = _budget(processes, hosts, process.pools, capacity, source)

    if budget["fleet_ceiling_percent"] is not None and budget["fleet_ceiling_percent"] > 100:
        warnings.append(
            f"Fleet ceiling above server capacity: {processes} processes x "
            f"({budget['pools_per_process']} pool(s) of {budget['max_pool_size']} + "
            f"{budgets.MONITORS_PER_SERVER} monitor connections) = "
            f"{budget['fleet_ceiling_per_server']} per server, but the server accepts {capacity}."
        )
    utilisation = server["utilisation_percent"]
    if utilisation is not None and utilisation >= UTILISATION_WARNING:
        warnings.append(f"The server is at {utilisation}% of its connection capacity.")
    if connections and connections.get("rejected"):
        warnings.append(f"The server has rejected {connections['rejected']} connections.")
    if fleet:
        for pid in fleet["saturated"]:
            warnings.append(
                f"Process {pid}: pool saturated (requests are waiting for a connection)."
            )
        for pid in fleet["timing_out"]:
            warnings.append(f"Process {pid}: connection check-outs are timing out.")

    exceeded = []
    if fail_over is not None:
        for name, value in (
            ("fleet ceiling", budget["fleet_ceiling_percent"]),
            ("server utilisation", utilisation),
        ):
            if value is not None and value > fail_over:
                exceeded.append(f"{name} {value}% > {fail_over:g}%")

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
        "budget": budget,
        "topology": topology,
        "server": server,
        "process": {**process.as_dict(), "history": history.samples()},
        "fleet": fleet,
        "notes": notes,
        "warnings": warnings,
        "fail_over": {"percent": fail_over, "exceeded": exceeded},
    }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
