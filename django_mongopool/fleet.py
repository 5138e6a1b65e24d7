"""Reading the fleet's heartbeats defensively: the collection is shared, so nothing in it is trusted.

A document that is not what this app writes (wrong types, missing fields,
infinite numbers, a time in the future) is skipped and counted, never fatal;
a beat dated ahead of now by more than :data:`MAX_SKEW_SECONDS` is pruned.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.codec_options import CodecOptions, DatetimeConversion
from bson.errors import BSONError

from django_mongopool.budget import is_saturated
from django_mongopool.roles import ROLES, WEB

# How documents written by others are decoded: a date outside Python's range stays a
# DatetimeMS (and is then refused as a date) and invalid UTF-8 is replaced, instead of
# failing the whole read with InvalidBSON.
UNTRUSTED_CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(
    tz_aware=True,
    unicode_decode_error_handler="replace",
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)

LIVE_FACTOR = 3  # a process is alive while its last beat is younger than 3 intervals
MAX_SKEW_SECONDS = 5.0  # clocks of the fleet may differ this much
_COUNTS = (
    "open",
    "in_use",
    "waiting",
    "checkout_timeouts",
    "recent_checkout_timeouts",
    "sessions_started",
    "sessions_ended",
)


class Unreadable(ValueError):
    """A heartbeat document that this app cannot have written."""


def _count(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Unreadable(key)
    if value < 0:
        raise Unreadable(key)
    return int(value)


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise Unreadable(key)
    return value


def _when(doc: Mapping[str, Any], key: str) -> dt.datetime:
    value = doc.get(key)
    if not isinstance(value, dt.datetime):
        raise Unreadable(key)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _servers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    servers = doc.get("servers", [])
    if not isinstance(servers, list):
        raise Unreadable("servers")
    out = []
    for server in servers:
        if not isinstance(server, Mapping):
            raise Unreadable("servers")
        out.append(
            {
                "pool": str(server.get("pool", "sync")),
                "address": str(server.get("address", "")),
                "open": _count(server, "open"),
                "in_use": _count(server, "in_use"),
                "waiting": _count(server, "waiting"),
            }
        )
    return out


def _share(doc: Mapping[str, Any]) -> int | None:
    """The process's share of the fleet budget, if it published one (None otherwise)."""
    published = doc.get("fleet_budget")
    if published is None:
        return None
    if not isinstance(published, Mapping):
        raise Unreadable("fleet_budget")
    share = published.get("share")
    if share is None:
        return None
    return _count(published, "share")


def _role(doc: Mapping[str, Any]) -> str:
    """web, worker or command (a beat without one is from a web process of an older version)."""
    value = doc.get("role", WEB)
    if value not in ROLES:
        raise Unreadable("role")
    return str(value)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse(doc: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """One heartbeat as the report shows it. Raises :class:`Unreadable`."""
    updated = _when(doc, "updated_at")
    started = doc.get("started_at")
    interval = doc.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise Unreadable("interval")
    if not math.isfinite(interval) or not 0 < interval <= 3600:
        raise Unreadable("interval")
    max_pool = _count(doc, "max_pool_size")
    servers = _servers(doc)
    pid = doc.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise Unreadable("pid")
    process = {
        "id": str(doc.get("_id")),
        "host": _text(doc, "host"),
        "pid": pid,
        "app": doc.get("app") if isinstance(doc.get("app"), str) else None,
        "role": _role(doc),
        "started_at": _iso(started) if isinstance(started, dt.datetime) else None,
        "updated_at": _iso(updated),
        "age_seconds": round((now - updated).total_seconds(), 1),
        "interval": float(interval),
        "max_pool_size": max_pool,
        **{key: _count(doc, key) for key in _COUNTS},
        "servers": servers,
        "share": _share(doc),
        "pools": max(1, _count(doc, "pools")),
    }
    share = process["share"]
    limit = share if isinstance(share, int) and share else max_pool  # a budget: full at the share
    process["saturated"] = any(is_saturated(s, limit) for s in servers)
    return process


@dataclass
class Reading:
    processes: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    future: list[Any] = field(default_factory=list)  # _ids of beats dated ahead of now


def read(docs: Iterable[Mapping[str, Any]], now: dt.datetime | None = None) -> Reading:
    """The live processes among ``docs``; the rest is counted (and future beats listed)."""
    now = now or dt.datetime.now(dt.UTC)
    reading = Reading()
    try:
        for doc in docs:
            _read_one(doc, now, reading)
    except BSONError:  # a document pymongo cannot decode at all: the rest of its batch is lost
        reading.unreadable += 1
    reading.processes.sort(key=lambda p: (p["host"], p["pid"]))
    return reading


def _read_one(doc: Mapping[str, Any], now: dt.datetime, reading: Reading) -> None:
    try:
        process = parse(doc, now)
    except (Unreadable, TypeError, ValueError, OverflowError):
        reading.unreadable += 1
        return
    age = process["age_seconds"]
    if age < -MAX_SKEW_SECONDS:
        reading.future.append(doc.get("_id"))
    elif age <= LIVE_FACTOR * process["interval"] + 1:
        reading.processes.append(process)


def summary(reading: Reading) -> dict[str, Any]:
    """Fleet totals, the busiest process, and who is saturated or timing out."""
    processes = reading.processes
    busiest = max(processes, key=lambda p: (p["in_use"], p["waiting"]), default=None)
    return {
        "alive": len(processes),
        "open": sum(p["open"] for p in processes),
        "in_use": sum(p["in_use"] for p in processes),
        "waiting": sum(p["waiting"] for p in processes),
        "busiest": None
        if busiest is None
        else {k: busiest[k] for k in ("id", "host", "pid", "in_use", "waiting")},
        "saturated": [p["id"] for p in processes if p["saturated"]],
        "timing_out": [p["id"] for p in processes if p["recent_checkout_timeouts"] > 0],
        "unreadable": reading.unreadable,
        "future_dated": len(reading.future),
        "processes": processes,
    }
