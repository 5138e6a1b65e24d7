"""The server side of the audit: every member's own connection counts and who holds them.

For a replica set each member carries its own connections, and for a sharded
cluster each mongos; so each host of the topology is asked directly (a client
with ``directConnection=True``, the app's credentials, TLS and timeouts, one
connection, closed after use). A standalone or load-balanced deployment is
asked through the app's own client. Members are asked in parallel; one that
does not answer is reported as such and does not stop the others.

Connections per application come from ``$currentOp`` grouped on the server
(``$group`` by application name and client host), so what crosses the wire is
one document per (application, host), not one per connection.

Everything the server replies is untrusted: a value of an unexpected type is
left out and counted in a note, never fatal.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pymongo
from bson.errors import BSONError
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from django_mongopool.client import pymongo_internals
from django_mongopool.client.figures import address_text
from django_mongopool.client.process import get_client, get_config
from django_mongopool.fleet.budget import percent
from django_mongopool.guards.redact import scrub
from django_mongopool.guards.untrusted import (
    COUNT_RANGE,
    MALFORMED_REPLY_ERRORS,
    UNTRUSTED_CODEC_OPTIONS,
    Unreadable,
    count,
)

UNAUTHORIZED = 13
NOT_ANSWERED_IN_TIME = "not answered within the audit's deadline"
AUTHENTICATION_FAILED = 18
MAX_PARALLEL = 8
# Topologies asked through the app's own client (there is only one server to ask).
_THROUGH_APP_CLIENT = frozenset({"Single", "LoadBalanced"})
# URI options that make no sense for a direct connection to one member.
_NOT_FOR_ONE_MEMBER = frozenset(
    {"replicaset", "directconnection", "loadbalanced", "srvservicename", "srvmaxhosts"}
)
# The client host without its port ("10.0.1.11:40000" -> "10.0.1.11", "[::1]:5" -> "[::1]").
_HOST = {
    "$let": {
        "vars": {"m": {"$regexFind": {"input": "$client", "regex": "^(.*):[0-9]+$"}}},
        "in": {"$ifNull": [{"$arrayElemAt": ["$$m.captures", 0]}, "$client"]},
    }
}


def current_op_pipeline(mongos: bool = False) -> list[dict[str, Any]]:
    """``$currentOp`` grouped on the server by (application name, client host)."""
    stage: dict[str, Any] = {"allUsers": True, "idleConnections": True}
    if mongos:
        stage["localOps"] = True  # the router's own client connections, not the shards'
    return [
        {"$currentOp": stage},
        {"$match": {"type": {"$ne": "idleSession"}}},
        {
            "$project": {
                "app": {"$ifNull": ["$appName", None]},
                "driver": {"$ifNull": ["$clientMetadata.driver.name", None]},
                "client": {"$ifNull": ["$client", "$client_s"]},
                "active": {"$cond": [{"$eq": ["$active", True]}, 1, 0]},
            }
        },
        {"$match": {"client": {"$type": "string"}}},  # internal threads hold no client connection
        {
            "$group": {
                "_id": {"app": "$app", "host": _HOST},
                "connections": {"$sum": 1},
                "active": {"$sum": "$active"},
                "drivers": {"$addToSet": "$driver"},
            }
        },
    ]


class MemberClient(MongoClient):  # type: ignore[type-arg]
    """A direct connection to one member, built and closed by the audit itself."""

    mongopool_own_client = True  # the app's own: not a stray client


def error_text(exc: BaseException) -> str:
    """The server's (or pymongo's) first line, credentials removed."""
    details = getattr(exc, "details", None) or {}
    message = details.get("errmsg") if isinstance(details, Mapping) else None
    lines = str(message or exc).splitlines() or [""]
    return scrub(lines[0][:300], get_config().secrets)


# Reading replies -----------------------------------------------------------------


def parse_connections(status: Any, where: str, notes: list[str]) -> dict[str, int] | None:
    """``serverStatus.connections`` as counts (see :func:`~django_mongopool.guards.untrusted.count`);
    None when unusable."""
    connections = status.get("connections") if isinstance(status, Mapping) else None
    if not isinstance(connections, Mapping) or "current" not in connections:
        return None
    counts: dict[str, int] = {}
    odd: list[str] = []
    for key, value in connections.items():
        if isinstance(value, Mapping):
            continue  # nested sections (establishmentRateLimit, ...)
        try:
            counts[str(key)] = count(value, whole_floats=True)
        except Unreadable:
            odd.append(str(key))
    if odd:
        notes.append(
            f"{where}: serverStatus.connections.{', '.join(sorted(odd))} not a count ({COUNT_RANGE}) "
            "(left out)."
        )
    return counts if "current" in counts else None


def _label(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _group(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("_id"), Mapping):
        raise Unreadable(doc)
    key = doc["_id"]
    app = key.get("app")
    host = key.get("host")
    connections = count(doc.get("connections"), whole_floats=True)
    active = min(count(doc.get("active", 0), whole_floats=True), connections)
    drivers = doc.get("drivers")
    return {
        "app": None if app is None or app == "" else _label(app),
        "host": "(unknown)" if host is None else _label(host),
        "connections": connections,
        "active": active,
        "drivers": sorted({_label(d) for d in drivers if d is not None})
        if isinstance(drivers, list)
        else [],
    }


def parse_groups(docs: Iterable[Any], where: str, notes: list[str]) -> list[dict[str, Any]]:
    """The ``$group`` documents this app can read; the others are counted in a note."""
    groups, odd = [], 0
    for doc in docs:
        try:
            groups.append(_group(doc))
        except (Unreadable, TypeError, ValueError, OverflowError, AttributeError, KeyError):
            odd += 1
    if odd:
        notes.append(
            f"{where}: {odd} $currentOp group(s) with unexpected types or counts (a count is "
            f"{COUNT_RANGE}) left out of the totals."
        )
    return groups


def applications(
    groups: Iterable[Mapping[str, Any]], current: int | None, top_hosts: int
) -> dict[str, Any]:
    """Totals per application name, largest first, each with its busiest client hosts."""
    apps: dict[str | None, dict[str, Any]] = {}
    for group in groups:
        app = apps.setdefault(
            group["app"],
            {"connections": 0, "active": 0, "hosts": {}, "drivers": set()},
        )
        app["connections"] += group["connections"]
        app["active"] += group["active"]
        app["drivers"].update(group["drivers"])
        host = app["hosts"].setdefault(group["host"], {"connections": 0, "active": 0})
        host["connections"] += group["connections"]
        host["active"] += group["active"]
    rows = []
    for name, app in apps.items():
        hosts = sorted(app["hosts"].items(), key=lambda item: (-item[1]["connections"], item[0]))
        rows.append(
            {
                "app": name,
                "connections": app["connections"],
                "active": app["active"],
                "idle": app["connections"] - app["active"],
                "share_percent": percent(app["connections"], current),
                "hosts": len(hosts),
                "drivers": sorted(app["drivers"]),
                "top_hosts": [
                    {"host": host, **counts} for host, counts in hosts[: max(top_hosts, 0)]
                ],
            }
        )
    named = sorted(
        (r for r in rows if r["app"] is not None), key=lambda r: (-r["connections"], r["app"])
    )
    return {
        "connections": sum(r["connections"] for r in rows),
        "active": sum(r["active"] for r in rows),
        "server_current": current,
        "apps": named,
        "no_appname": next((r for r in rows if r["app"] is None), None),
    }


# Asking the members ----------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """When the whole audit must be answered (``time.monotonic()``), and its length."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return max(self.at - time.monotonic(), 0.0)


def bounded(timeout: float, deadline: Deadline | None) -> float:
    """``timeout``, shortened to what is left before ``deadline``."""
    return timeout if deadline is None else min(timeout, deadline.remaining())


def _late(deadline: Deadline | None) -> str:
    limit = f" ({deadline.seconds:g} s)" if deadline is not None else ""
    return f"{NOT_ANSWERED_IN_TIME}{limit}"


@dataclass
class Member:
    """What one member said (or that it did not answer)."""

    address: str
    type: str
    answered: bool = False
    connections: dict[str, int] | None = None
    # Why connections is None: "unauthorized", "not_reported", "no_answer" or "failed".
    status_problem: str | None = None
    error: str | None = None
    groups: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "type": self.type,
            "answered": self.answered,
            "connections": self.connections,
            "status_problem": self.status_problem,
            "error": self.error,
        }


_HOSTNAME = re.compile(
    r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$"
)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` of a topology member, checked: the server names the members, so a host
    that could smuggle URI syntax or options is refused (``ValueError``)."""
    host, colon, port = address.rpartition(":")
    if not colon or not _HOSTNAME.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host:port: {address!r}")
    return host.strip("[]"), int(port)


def member_client(address: str, timeout: float) -> MemberClient:
    """A one-connection direct client to ``address`` with the app's credentials, TLS and timeouts.

    No URI is built from the member's name: host and port are passed apart, the
    credentials and options are the validated ones of the app's client.
    """
    config = get_config()
    host, port = split_address(address)
    parsed = pymongo_internals.parse_uri(config.uri)
    kwargs: dict[str, Any] = {
        k: v
        for k, v in config.effective.items()
        if k != "event_listeners" and k.lower() not in _NOT_FOR_ONE_MEMBER
    }
    kwargs.update({k: v for k, v in config.kwargs.items() if k.lower() not in _NOT_FOR_ONE_MEMBER})
    kwargs.pop("event_listeners", None)
    if parsed.get("username"):
        kwargs.update(username=parsed["username"], password=parsed.get("password"))
    if config.is_srv and config.option("tls") is None and config.option("ssl") is None:
        kwargs["tls"] = True  # SRV implies TLS
    # The app's client knows where the user is defined (the URI's database, authSource, or
    # an SRV TXT record that a member connection would lose): use the same.
    source = pymongo_internals.auth_source(get_client(), parsed)
    if source is not None:
        kwargs["authSource"] = source
    kwargs.update(
        directConnection=True,
        maxPoolSize=1,
        minPoolSize=0,
        serverSelectionTimeoutMS=max(int(timeout * 1000), 1),
        connect=False,
    )
    return MemberClient(host=host, port=port, **kwargs)


def _ask(
    member: Member,
    client: MongoClient[dict[str, Any]],
    timeout: float,
    current_op: bool,
    top_level: bool,
    deadline: Deadline | None = None,
) -> None:
    where = "serverStatus" if top_level else f"Member {member.address}"
    timeout = bounded(timeout, deadline)
    if timeout <= 0:
        member.status_problem, member.error = "no_answer", _late(deadline)
        return
    try:
        with pymongo.timeout(timeout):
            status = client.admin.command("serverStatus", codec_options=UNTRUSTED_CODEC_OPTIONS)
        member.answered = True
        member.connections = parse_connections(status, where, member.notes)
        if member.connections is None:
            member.status_problem = "not_reported"
    except OperationFailure as exc:
        member.answered = exc.code != AUTHENTICATION_FAILED
        member.status_problem = "unauthorized" if exc.code == UNAUTHORIZED else "failed"
        member.error = f"{error_text(exc)} (code {exc.code})"
    except (PyMongoError, BSONError, *MALFORMED_REPLY_ERRORS) as exc:
        member.status_problem = "no_answer"
        # pymongo appends the whole topology description: keep the reason only.
        reason = error_text(exc).split(" (configured timeouts")[0].split(", Timeout:")[0]
        member.error = f"{type(exc).__name__}: {reason}"
        if deadline is not None and deadline.remaining() <= 0:
            member.error = _late(deadline)  # it was the audit's deadline that ran out
        return
    if not top_level:
        description = client.topology_description.server_descriptions()
        for server in description.values():
            if server.server_type_name != "Unknown":
                member.type = server.server_type_name
    if not current_op or not member.answered:
        return
    timeout = bounded(timeout, deadline)
    if timeout <= 0:
        member.notes.append(f"$currentOp on {member.address} not run: {_late(deadline)}.")
        return
    try:
        with pymongo.timeout(timeout):
            admin = client.admin.with_options(codec_options=UNTRUSTED_CODEC_OPTIONS)
            docs = list(admin.aggregate(current_op_pipeline(member.type == "Mongos")))
    except OperationFailure as exc:
        if exc.code == UNAUTHORIZED:
            member.notes.append(
                f"{'$currentOp' if top_level else f'$currentOp on {member.address}'}: not "
                "authorized (needs the inprog privilege, e.g. clusterMonitor); connections per "
                "application are unavailable."
            )
        else:
            member.notes.append(
                f"The server{'' if top_level else f' {member.address}'} does not support "
                f"$currentOp ({error_text(exc)}); connections per application are unavailable."
            )
        return
    except (PyMongoError, BSONError) as exc:
        member.notes.append(f"$currentOp on {member.address} failed: {error_text(exc)}.")
        return
    except MALFORMED_REPLY_ERRORS as exc:  # a reply that is not a cursor of documents
        member.notes.append(
            f"$currentOp on {member.address} failed: the server's reply was malformed "
            f"({type(exc).__name__})."
        )
        return
    member.groups = parse_groups(docs, where, member.notes)


def _ask_directly(
    member: Member, timeout: float, current_op: bool, deadline: Deadline | None = None
) -> Member:
    if bounded(timeout, deadline) <= 0:  # its turn came after the deadline
        member.status_problem, member.error = "no_answer", _late(deadline)
        return member
    try:
        client = member_client(member.address, bounded(timeout, deadline))
    except (ValueError, PyMongoError) as exc:  # a member name no client can be built for
        member.status_problem = "no_answer"
        member.error = f"not asked: {scrub(str(exc)[:200], get_config().secrets)}"
        return member
    try:
        _ask(member, client, timeout, current_op, top_level=False, deadline=deadline)
    finally:
        client.close()
    return member


def topology() -> dict[str, Any]:
    description = get_client().topology_description
    servers = [
        {"address": address_text(address), "type": server.server_type_name}
        for address, server in sorted(description.server_descriptions().items())
    ]
    return {"type": description.topology_type_name, "servers": servers}


def ask_members(
    shape: Mapping[str, Any], timeout: float, current_op: bool, deadline: Deadline | None = None
) -> list[Member]:
    """Each member's serverStatus.connections (and $currentOp groups when asked), in parallel.

    With a ``deadline``, every query is bounded by the time left, and the members that
    have not answered when it passes are reported as not answered within it; their
    threads end on their own (each query is bounded), without being waited for.
    """
    members = [Member(s["address"], s["type"]) for s in shape["servers"]]
    if shape["type"] in _THROUGH_APP_CLIENT or not members:
        one = members[0] if members else Member("(unknown)", "Unknown")
        _ask(one, get_client(), timeout, current_op, top_level=True, deadline=deadline)
        return [one]
    pool = ThreadPoolExecutor(
        max_workers=min(MAX_PARALLEL, len(members)), thread_name_prefix="django-mongopool-audit"
    )
    # Members the app's client has heard from are asked first: one it cannot reach must not
    # hold the answering ones past the deadline. Each member is asked on a copy: one still
    # being asked at the deadline is reported from the original, while its thread may go on
    # writing to the copy.
    order = sorted(range(len(members)), key=lambda i: members[i].type == "Unknown")
    submitted = {
        i: pool.submit(
            _ask_directly,
            Member(members[i].address, members[i].type),
            timeout,
            current_op,
            deadline,
        )
        for i in order
    }
    futures = [submitted[i] for i in range(len(members))]
    try:
        done, _late_ones = wait(futures, timeout=None if deadline is None else deadline.remaining())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    answered = []
    for member, future in zip(members, futures, strict=True):
        if future in done and not future.cancelled():
            answered.append(future.result())  # re-raises what a bug in _ask_directly raised
        else:
            member.status_problem, member.error = "no_answer", _late(deadline)
            answered.append(member)
    return answered
