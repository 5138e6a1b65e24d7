"""Reading the fleet's heartbeats defensively: the collection is shared, so nothing in it is trusted.

Each heartbeat carries a MAC (HMAC-SHA256, keyed from ``SECRET_KEY`` or
``MONGOPOOL_HEARTBEAT_KEY``) over every field the readers fetch (:data:`FIELDS`).
A document whose MAC does not verify is *forged*: counted and listed, never
parsed, never a live process. A verified document with a value this app never
writes (a wrong type, a count out of range, a non-finite number) is *odd*:
counted, never fatal. Ages are measured on the server's clock (each beat is dated
with it), and each beat's own interval is believed only up to the reader's
``MONGOPOOL_HEARTBEAT_MAX_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.errors import BSONError
from django.utils.crypto import salted_hmac

from django_mongopool.fleet.budget import is_saturated
from django_mongopool.fleet.roles import ROLES, WEB
from django_mongopool.guards.untrusted import MALFORMED_REPLY_ERRORS, MAX_COUNT, Unreadable, count

LIVE_FACTOR = 3  # a process is alive while its last beat is younger than 3 intervals
MAX_SKEW_SECONDS = 5.0  # the publishers' readings of the server's clock may differ this much
LONGEST_INTERVAL = 3600.0  # the largest MONGOPOOL_HEARTBEAT_SECONDS any process may have
# A beat is deleted only once no process of any configuration could count it as live.
PRUNE_AFTER_SECONDS = 2 * LIVE_FACTOR * LONGEST_INTERVAL
MAX_GAUGE = 10**6  # open, in use, waiting, pool sizes, shares: far above any real pool
MAX_PID = 2**32
MAX_SHOWN_IDS = 20  # ids of forged documents listed in the report
MAC_FIELD = "mac"
MAC_SALT = "django_mongopool.heartbeat"

# Every field a reader fetches (the projection) and the MAC covers. A field the publisher
# writes must be listed here, or no reader can verify its beats (test_heartbeat_auth checks).
FIELDS = (
    "_id",
    "host",
    "pid",
    "app",
    "role",
    "version",
    "started_at",
    "updated_at",
    "clock",
    "interval",
    "options",
    "max_pool_size",
    "pools",
    "open",
    "in_use",
    "waiting",
    "checkout_timeouts",
    "recent_checkout_timeouts",
    "sessions_started",
    "sessions_ended",
    "servers",
    "fleet_budget",
)
PROJECTION = {name: True for name in (*FIELDS, MAC_FIELD)}
_GAUGES = ("open", "in_use", "waiting")
_COUNTERS = (
    "checkout_timeouts",
    "recent_checkout_timeouts",
    "sessions_started",
    "sessions_ended",
)


def host_now() -> dt.datetime:
    """This host's clock: used only where the server does not tell its own time."""
    return dt.datetime.now(dt.UTC)


# --- the MAC ---------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """The value with every mapping's keys sorted, so equal documents encode equally."""
    if isinstance(value, Mapping):
        return {str(key): _canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return value


def _signed_bytes(document: Mapping[str, Any]) -> bytes:
    """BSON of the signed fields, keys sorted. Dates are encoded in milliseconds, as stored,
    so a document read back encodes exactly as its publisher's copy did."""
    fields = {name: document[name] for name in FIELDS if name in document}
    return bson.encode({"heartbeat": _canonical(fields)})


def mac(document: Mapping[str, Any], secret: str | bytes) -> str:
    return salted_hmac(MAC_SALT, _signed_bytes(document), secret, algorithm="sha256").hexdigest()


def verify(document: Mapping[str, Any], secrets: Sequence[str | bytes]) -> bool:
    """True when the document's MAC is one of ``secrets``' MAC of its fields."""
    given = document.get(MAC_FIELD)
    # compare_digest refuses non-ASCII text: such a MAC is simply wrong.
    if not isinstance(given, str) or not given.isascii() or not secrets:
        return False
    try:
        payload = _signed_bytes(document)
    except (BSONError, TypeError, ValueError, OverflowError, RecursionError):
        return False
    return any(
        hmac.compare_digest(
            given, salted_hmac(MAC_SALT, payload, secret, algorithm="sha256").hexdigest()
        )
        for secret in secrets
    )


# --- parsing a verified document --------------------------------------------------------


def _number(doc: Mapping[str, Any], key: str, high: int = MAX_COUNT) -> int:
    """A count this app wrote: an integer from 0 to ``high``; anything else (bool, float, NaN,
    1e308) is odd (the publisher never writes a float)."""
    return count(doc.get(key, 0), high)


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


def _interval(doc: Mapping[str, Any]) -> float:
    value = doc.get("interval", 1)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unreadable("interval")
    if not math.isfinite(value) or not 0 < value <= LONGEST_INTERVAL:
        raise Unreadable("interval")
    return float(value)


def _servers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    servers = doc.get("servers", [])
    if not isinstance(servers, list) or len(servers) > MAX_GAUGE:
        raise Unreadable("servers")
    out = []
    for server in servers:
        if not isinstance(server, Mapping):
            raise Unreadable("servers")
        out.append(
            {
                "pool": str(server.get("pool", "sync")),
                "address": str(server.get("address", "")),
                **{key: _number(server, key, MAX_GAUGE) for key in _GAUGES},
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
    if published.get("share") is None:
        return None
    return _number(published, "share", MAX_GAUGE)


def _role(doc: Mapping[str, Any]) -> str:
    """web, worker or command (a beat without one is from a web process of an older version)."""
    value = doc.get("role", WEB)
    if value not in ROLES:
        raise Unreadable("role")
    return str(value)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse(
    doc: Mapping[str, Any], now: dt.datetime, max_interval: float = LONGEST_INTERVAL
) -> dict[str, Any]:
    """One verified heartbeat as the report shows it. Raises :class:`Unreadable`.

    ``now`` is the server's time; the beat's own interval is believed up to ``max_interval``.
    """
    updated = _when(doc, "updated_at")
    started = doc.get("started_at")
    interval = _interval(doc)
    max_pool = _number(doc, "max_pool_size", MAX_GAUGE)
    servers = _servers(doc)
    pid = count(doc.get("pid"), MAX_PID - 1)
    if not pid:
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
        "interval": interval,
        "interval_believed": min(interval, max_interval),
        "max_pool_size": max_pool,
        **{key: _number(doc, key, MAX_GAUGE) for key in _GAUGES},
        **{key: _number(doc, key) for key in _COUNTERS},
        "servers": servers,
        "share": _share(doc),
        "pools": max(1, _number(doc, "pools", MAX_GAUGE)),
    }
    share = process["share"]
    limit = share if isinstance(share, int) and share else max_pool  # a budget: full at the share
    process["saturated"] = any(is_saturated(s, limit) for s in servers)
    return process


# --- a reading of the collection --------------------------------------------------------


def live_window(max_interval: float) -> float:
    """Seconds a beat may be old and still be live, for a beat of the longest believed interval."""
    return LIVE_FACTOR * max_interval + 1


def is_live(age_seconds: float, interval: float) -> bool:
    return -MAX_SKEW_SECONDS <= age_seconds <= LIVE_FACTOR * interval + 1


@dataclass
class Reading:
    processes: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0  # verified, but with values this app never writes ("odd")
    malformed_reply: bool = False  # the server's reply to the read was not a cursor of documents
    forged: int = 0  # the MAC does not verify: not written with this app's key
    forged_ids: list[str] = field(default_factory=list)  # the first MAX_SHOWN_IDS of them
    future: list[Any] = field(default_factory=list)  # _ids of verified beats dated ahead of now
    clock: str = "server"  # whose clock ages were measured with: "server", or "host"


def read(
    docs: Iterable[Mapping[str, Any]],
    now: dt.datetime,
    *,
    secrets: Sequence[str | bytes],
    max_interval: float = LONGEST_INTERVAL,
    clock: str = "server",
) -> Reading:
    """The live processes among ``docs``; the rest is counted (forged ones listed)."""
    reading = Reading(clock=clock)
    try:
        for doc in docs:
            if isinstance(doc, Mapping):
                _read_one(doc, now, secrets, max_interval, reading)
            else:  # a batch of something other than documents
                reading.unreadable += 1
    except BSONError:  # a document pymongo cannot decode at all: the rest of its batch is lost
        reading.unreadable += 1
    except MALFORMED_REPLY_ERRORS:  # the reply itself is malformed: the rest is lost
        reading.malformed_reply = True
    reading.processes.sort(key=lambda p: (p["host"], p["pid"]))
    return reading


def _shown_id(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:80]


def _read_one(
    doc: Mapping[str, Any],
    now: dt.datetime,
    secrets: Sequence[str | bytes],
    max_interval: float,
    reading: Reading,
) -> None:
    if not verify(doc, secrets):
        reading.forged += 1
        if len(reading.forged_ids) < MAX_SHOWN_IDS:
            reading.forged_ids.append(_shown_id(doc.get("_id")))
        return
    try:
        process = parse(doc, now, max_interval)
    except (Unreadable, TypeError, ValueError, OverflowError):
        reading.unreadable += 1
        return
    age = process["age_seconds"]
    if age < -MAX_SKEW_SECONDS:
        reading.future.append(doc.get("_id"))
    elif is_live(age, process["interval_believed"]):
        reading.processes.append(process)


def notes(reading: Reading, collection: str) -> list[str]:
    """What the report says about the documents it did not count."""
    said = []
    if reading.forged:
        said.append(
            f"{reading.forged} forged heartbeat document(s) ignored in {collection}: their MAC "
            "does not verify with this app's key (written by someone without SECRET_KEY / "
            "MONGOPOOL_HEARTBEAT_KEY, altered, or by a process with another key); they are "
            "not counted as live processes."
        )
    if reading.unreadable:
        said.append(
            f"{reading.unreadable} unreadable heartbeat document(s) skipped in {collection}: "
            "signed with this app's key but with values it never writes (a count out of "
            "range, a wrong type)."
        )
    if reading.malformed_reply:
        said.append(
            f"The server's reply to the read of {collection} was malformed (not a cursor of "
            "documents): the heartbeats after that point were not read."
        )
    if reading.future:
        said.append(
            f"{len(reading.future)} heartbeat document(s) dated more than "
            f"{MAX_SKEW_SECONDS:g} s ahead of the server's clock ignored; the publishers "
            "prune them."
        )
    if reading.clock != "server":
        said.append(
            "The server does not report its clock (hello.localTime): heartbeat ages are "
            "measured with each host's clock."
        )
    return said


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
        "forged": reading.forged,
        "forged_ids": reading.forged_ids,
        "future_dated": len(reading.future),
        "clock": reading.clock,
        "processes": processes,
    }
