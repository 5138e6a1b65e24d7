"""The per-process background thread: pool history samples and fleet heartbeats.

A daemon thread, started on the first request of each process (so forked
workers start their own), by task workers and by commands that join the fleet
(:mod:`django_mongopool.tasks.fleet`; other commands publish nothing), records a
sample of the pools every :data:`~django_mongopool.fleet.history.SAMPLE_SECONDS` for
the page's chart and, when ``MONGOPOOL_HEARTBEAT_SECONDS`` > 0, upserts one
small document per process into ``MONGOPOOL_HEARTBEAT_COLLECTION``. Each beat
is dated with the server's clock (``hello``'s ``localTime``, corrected by half
the round trip) and signed with a MAC keyed from ``SECRET_KEY`` (or
``MONGOPOOL_HEARTBEAT_KEY``); readers verify it and judge ages with the
server's clock too (:mod:`django_mongopool.fleet.reading`). The publishers prune
undated beats, beats dated ahead of the server and beats older than any process
could count. Requests never wait for the thread; every write is bounded by
``pymongo.timeout``; a failure that repeats is logged once, then at most every
:data:`LOG_EVERY_SECONDS`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pymongo
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from django_mongopool import __version__
from django_mongopool.client import pools
from django_mongopool.client.process import (
    active_test_clients,
    connected_before_fork,
    get_config,
    get_database,
)
from django_mongopool.conf import conf
from django_mongopool.fleet import history, reading, roles, shares
from django_mongopool.guards import forks
from django_mongopool.guards.redact import scrub
from django_mongopool.guards.untrusted import MALFORMED_REPLY_ERRORS, UNTRUSTED_CODEC_OPTIONS

logger = logging.getLogger("django_mongopool.heartbeat")

SHOWN_OPTIONS = (
    "maxPoolSize",
    "minPoolSize",
    "maxConnecting",
    "waitQueueTimeoutMS",
    "serverSelectionTimeoutMS",
    "socketTimeoutMS",
    "timeoutMS",
)
INDEX_NAME = "mongopool_updated"
LOG_EVERY_SECONDS = 600.0  # a failure that repeats is logged again at most this often
EXIT_JOIN_SECONDS = 2.0  # how long interpreter exit waits for a beat in progress
# localTime outside these years is not believed (a hostile or broken server).
_SANE_CLOCK = (
    dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9000, 1, 1, tzinfo=dt.UTC),
)


def collection() -> Collection[dict[str, Any]]:
    """The heartbeat collection. Raises ImproperlyConfigured without a default database."""
    if not conf.database:
        raise ImproperlyConfigured(
            "no default database name for the heartbeat collection: set MONGOPOOL_DATABASE, "
            "or put the database in MONGOPOOL_URI (mongodb://host/dbname)"
        )
    return get_database()[conf.heartbeat_collection]


def _io_timeout() -> float:
    """How long one beat's writes and reads may take: the interval, within 1 to 5 s."""
    return max(1.0, min(conf.heartbeat_seconds, 5.0))


def secrets() -> tuple[str | bytes, ...]:
    """The keys a heartbeat may be signed with; the first signs. ``MONGOPOOL_HEARTBEAT_KEY``,
    else ``SECRET_KEY`` and its ``SECRET_KEY_FALLBACKS`` (a rotation keeps the fleet whole)."""
    if conf.heartbeat_key is not None:
        return (conf.heartbeat_key,)
    return (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))


def sign(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its MAC (every field of :data:`reading.FIELDS` it has)."""
    document[reading.MAC_FIELD] = reading.mac(document, secrets()[0])
    return document


@dataclass(frozen=True)
class ServerClock:
    """The server's time at one moment of this host's monotonic clock."""

    at: dt.datetime
    monotonic: float
    source: str  # "server" (hello's localTime), or "host" (the server does not say)

    def now(self) -> dt.datetime:
        return self.at + dt.timedelta(seconds=time.monotonic() - self.monotonic)


def server_clock(database: Database[Any]) -> ServerClock:
    """Ask the server its time (``hello``); a server that does not say gives the host's."""
    before = time.monotonic()
    try:
        reply = database.command("hello", codec_options=UNTRUSTED_CODEC_OPTIONS)
    except OperationFailure:  # a server (or the mongomock tier) that does not know hello
        reply = {}
    after = time.monotonic()
    local = reply.get("localTime")
    if isinstance(local, dt.datetime):
        local = local if local.tzinfo is not None else local.replace(tzinfo=dt.UTC)
        if _SANE_CLOCK[0] <= local <= _SANE_CLOCK[1]:
            return ServerClock(local + dt.timedelta(seconds=(after - before) / 2), after, "server")
    return ServerClock(reading.host_now(), after, "host")


def beat_id() -> str:
    """One publisher's document id: host and pid, plus a random part (pids repeat across
    containers that share a host name, and across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def build_document(
    beat: str,
    started_at: dt.datetime,
    previous_timeouts: int,
    now: dt.datetime | None = None,
    clock: str = "host",
) -> dict[str, Any]:
    """This process's signed heartbeat, dated ``now`` (the server's time; the host's if None)."""
    config = get_config()
    snapshot = pools.snapshot().as_dict()
    document = {
        "_id": beat,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "app": config.appname,
        "role": roles.current(),  # web, worker or command
        "version": __version__,
        "started_at": started_at,
        "updated_at": now or reading.host_now(),
        "clock": clock,
        "interval": conf.heartbeat_seconds,
        "options": {name: config.option(name) for name in SHOWN_OPTIONS},
        "max_pool_size": config.max_pool_size,
        "pools": snapshot["pools"],
        "open": snapshot["open"],
        "in_use": snapshot["in_use"],
        "waiting": snapshot["waiting"],
        "checkout_timeouts": snapshot["checkout_timeouts"],
        # Counters restart with a new client (settings change, closed loop): then all are new.
        "recent_checkout_timeouts": (
            snapshot["checkout_timeouts"] - previous_timeouts
            if snapshot["checkout_timeouts"] >= previous_timeouts
            else snapshot["checkout_timeouts"]
        ),
        "sessions_started": snapshot["sessions_started"],
        "sessions_ended": snapshot["sessions_ended"],
        "servers": snapshot["servers"],
        "fleet_budget": shares.report(),
    }
    return sign(document)


def ensure_index(target: Collection[dict[str, Any]]) -> None:
    """One index on ``updated_at`` for the reads and the pruning (idempotent).

    A TTL index of an earlier version (deleting beats after 6 intervals of the process
    that created it) would delete the beats of live processes with a longer interval:
    it is replaced. Where the server has TTL indexes, beats expire after
    :data:`reading.PRUNE_AFTER_SECONDS` even when no publisher is left to prune.
    """
    for name, spec in target.index_information().items():
        key = spec.get("key") if isinstance(spec, dict) else None
        if not isinstance(key, list) or not all(isinstance(k, list | tuple) for k in key):
            continue  # not an index this app could have made (the server's reply is odd)
        if [tuple(k) for k in key] == [("updated_at", 1)]:
            ttl = spec.get("expireAfterSeconds")
            if not isinstance(ttl, int | float) or isinstance(ttl, bool):
                ttl = None  # an odd value: leave the index alone
            if ttl is None or ttl >= reading.PRUNE_AFTER_SECONDS:
                return
            try:
                target.drop_index(name)
            except OperationFailure:  # another process replaced it first
                return
    try:
        target.create_index(
            [("updated_at", 1)],
            name=INDEX_NAME,
            expireAfterSeconds=int(reading.PRUNE_AFTER_SECONDS),
        )
    except OperationFailure:  # FerretDB v1 has no TTL indexes: the publishers prune
        target.create_index([("updated_at", 1)], name=INDEX_NAME)


def prune_filter(now: dt.datetime) -> dict[str, Any]:
    """Beats no reader can count: undated, dated ahead of the server, or older than any
    process's liveness window."""
    return {
        "$or": [
            {"updated_at": {"$not": {"$type": "date"}}},
            {"updated_at": {"$type": "array"}},
            {"updated_at": {"$lt": now - dt.timedelta(seconds=reading.PRUNE_AFTER_SECONDS)}},
            {"updated_at": {"$gt": now + dt.timedelta(seconds=reading.MAX_SKEW_SECONDS)}},
        ]
    }


class Publisher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="django-mongopool-heartbeat", daemon=True)
        self.stop_event = threading.Event()
        self._started_monotonic = time.monotonic()
        # The host's clock until the first beat has read the server's.
        self.started_at = reading.host_now().replace(microsecond=0)
        self._started_from_server = False
        self.beat_id = beat_id()
        self.previous_timeouts = 0
        self.beats = 0
        self.failures = 0
        self.last_beat_at: float | None = None  # time.time() of the last beat published
        self.indexed: bool | None = None  # unknown until the first beat
        self._beat_lock = threading.Lock()
        self._next_beat = self._next_sample = 0.0
        self._failing: str | None = None  # the kind of the failure last logged
        self._failing_since_log = 0  # failures of that kind not logged since
        self._logged_at = 0.0

    def beat(self) -> None:
        """Publish now (the thread calls this every interval; tests may call it too)."""
        with self._beat_lock:
            self._beat()

    def _beat(self) -> None:
        with pymongo.timeout(_io_timeout()):
            target = collection()
            clock = server_clock(target.database)
            if not self._started_from_server:
                age = dt.timedelta(seconds=clock.monotonic - self._started_monotonic)
                self.started_at = (clock.at - age).replace(microsecond=0)
                self._started_from_server = True
            if self.indexed is None:
                try:
                    ensure_index(target)
                    self.indexed = True
                # Not allowed, or the server's reply to listIndexes was malformed: the index is
                # a help for reads and pruning, never a reason not to beat.
                except (OperationFailure, *MALFORMED_REPLY_ERRORS) as exc:
                    self.indexed = False
                    logger.warning(
                        "Heartbeat collection %s: no index on updated_at (%s); reads scan it.",
                        conf.heartbeat_collection,
                        _reason(exc),
                    )
            now = clock.now()
            document = build_document(
                self.beat_id, self.started_at, self.previous_timeouts, now, clock.source
            )
            target.delete_many(prune_filter(now))
            target.replace_one({"_id": document["_id"]}, document, upsert=True)
        self.previous_timeouts = document["checkout_timeouts"]
        self.beats += 1
        self.last_beat_at = time.time()
        if conf.fleet_budget is not None:
            self._recompute_share(document["_id"], clock)

    def _recompute_share(self, own_id: str, clock: ServerClock) -> None:
        """The fleet budget's share from the live processes, this one included."""
        with pymongo.timeout(_io_timeout()):
            live = read_fleet(clock).processes
        shares.update(len(live) + (own_id not in {p["id"] for p in live}))

    def tick(self) -> None:
        """One turn of the thread: a history sample and a beat when due, the share trimmed."""
        try:
            now = time.monotonic()
            if now >= self._next_sample:
                self._next_sample = now + history.SAMPLE_SECONDS
                history.sample()
            interval = conf.heartbeat_seconds
            if interval and now >= self._next_beat:
                self._next_beat = now + interval
                self.beat()
                self._recovered()
            if conf.fleet_budget is not None:
                shares.trim()
        except Exception as exc:  # never let the thread die on an unexpected error
            if self.stop_event.is_set():
                return  # stopping (interpreter exit): the client may be closed under the beat
            self.failures += 1
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """Log a failure once, then a repeat of it at most every LOG_EVERY_SECONDS."""
        expected = isinstance(exc, PyMongoError | ImproperlyConfigured)
        kind = type(exc).__name__
        reason = f"{kind}: {_reason(exc)}"
        # A reply pymongo could not make sense of (MALFORMED_REPLY_ERRORS) also leaves the
        # fleet unread; it keeps its traceback below, as it may as well be a bug of ours.
        if expected or isinstance(exc, MALFORMED_REPLY_ERRORS):
            shares.fleet_unreadable(reason)
        now = time.monotonic()
        if kind == self._failing and now - self._logged_at < LOG_EVERY_SECONDS:
            self._failing_since_log += 1
            return
        repeated = (
            f" ({self._failing_since_log} more since the last report)"
            if kind == self._failing and self._failing_since_log
            else ""
        )
        self._failing, self._failing_since_log, self._logged_at = kind, 0, now
        if isinstance(exc, ImproperlyConfigured):
            logger.warning(
                "Heartbeats not published: %s.%s Until then this process is not counted by "
                "the fleet%s.",
                _reason(exc),
                repeated,
                " and keeps its last known or minimum share of MONGOPOOL_FLEET_BUDGET"
                if conf.fleet_budget is not None
                else "",
            )
        elif expected:
            logger.warning("Heartbeat skipped: %s%s", reason, repeated)
        else:
            logger.exception("Heartbeat failed%s", repeated)

    def _recovered(self) -> None:
        if self._failing is not None:
            logger.warning(
                "Heartbeats published again (after %s%s).",
                self._failing,
                f" and {self._failing_since_log} unreported failure(s)"
                if self._failing_since_log
                else "",
            )
            self._failing, self._failing_since_log = None, 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.tick()
            budget_active = conf.fleet_budget is not None
            self.stop_event.wait(shares.TRIM_SECONDS if budget_active else history.SAMPLE_SECONDS)

    def stop(self) -> None:
        self.stop_event.set()


def _reason(exc: BaseException) -> str:
    try:
        secrets_ = get_config().secrets
    except ImproperlyConfigured:
        secrets_ = ()
    return scrub(str(exc), secrets_)[:300]


_lock = threading.Lock()
_publisher: Publisher | None = None
# True once this process runs its thread: the per-request check is one global read.
running_here = False


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: no thread runs here yet; a lock held at fork time is replaced."""
    global running_here, _lock, _publisher
    running_here = False
    _lock = threading.Lock()
    _publisher = None


def ensure_started() -> Publisher | None:
    """Start this process's background thread once (one read when it is already running)."""
    global _publisher, running_here
    if _publisher is not None and _publisher.is_alive():
        return _publisher
    if not conf.uri_is_set:
        return None  # check E001 reports it; requests that do not use MongoDB still work
    with _lock:
        if _publisher is None or not _publisher.is_alive():
            if connected_before_fork():
                logger.warning(
                    "django_mongopool.W004: this worker was forked after its parent connected "
                    "to MongoDB; do not query MongoDB before a preforking server forks."
                )
            _publisher = Publisher()
            _publisher.start()
        running_here = True
    return _publisher


def on_request_started(**kwargs: Any) -> None:
    """``request_started`` receiver: the first request of a process starts its thread.

    Never while a test client replaces the real one (the mongomock tier): no thread at all.
    """
    if not running_here and active_test_clients() is None:
        ensure_started()


def stop(timeout: float = 10) -> None:
    """Stop this process's publisher (tests, settings changes, interpreter exit)."""
    global _publisher, running_here
    with _lock:
        running_here = False
        if _publisher is not None:
            _publisher.stop()
            _publisher.join(timeout=timeout)
        _publisher = None


def stop_at_exit() -> None:
    """atexit: stop the thread before the clients are closed (registered after their hook,
    so it runs first); a beat in progress has :data:`EXIT_JOIN_SECONDS` to finish."""
    stop(EXIT_JOIN_SECONDS)


def publisher_status() -> dict[str, Any]:
    """This process's publisher, for the report: running, beats published, failed turns, and
    when (``time.time()``) it last published a beat (None: never)."""
    publisher = _publisher
    return {
        "running": publisher is not None and publisher.is_alive(),
        "beats": publisher.beats if publisher is not None else 0,
        "failures": publisher.failures if publisher is not None else 0,
        "last_beat_at": publisher.last_beat_at if publisher is not None else None,
    }


def read_fleet(clock: ServerClock | None = None) -> reading.Reading:
    """The live heartbeats, judged by the server's clock; forged and odd ones counted.

    Only beats young enough to be live are fetched (by ``updated_at``, indexed), and only
    the fields the reader uses (:data:`reading.PROJECTION`).
    """
    target = collection().with_options(codec_options=UNTRUSTED_CODEC_OPTIONS)
    clock = clock or server_clock(target.database)
    max_interval = conf.heartbeat_max_seconds
    now = clock.now()
    window = {
        "$gte": now - dt.timedelta(seconds=reading.live_window(max_interval)),
        "$lte": now + dt.timedelta(seconds=reading.MAX_SKEW_SECONDS),
    }
    docs = target.find({"updated_at": window}, reading.PROJECTION)
    return reading.read(docs, now, secrets=secrets(), max_interval=max_interval, clock=clock.source)


def wait_for_beats(count: int, timeout: float = 30.0) -> bool:
    """Test helper: block until this process's publisher has beaten ``count`` times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _publisher is not None and _publisher.beats >= count:
            return True
        time.sleep(0.02)
    return False
