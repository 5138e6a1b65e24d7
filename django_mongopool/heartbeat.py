"""The per-process background thread: pool history samples and fleet heartbeats.

A daemon thread, started on the first request of each process (so forked
workers start their own), by task workers and by commands that join the fleet
(:mod:`django_mongopool.workers`; other commands publish nothing), records a
sample of the pools every :data:`~django_mongopool.history.SAMPLE_SECONDS` for
the page's chart and, when ``MONGOPOOL_HEARTBEAT_SECONDS`` > 0, upserts one
small document per process into ``MONGOPOOL_HEARTBEAT_COLLECTION`` (TTL index,
or pruned by the publishers where the server has no TTL indexes). Requests
never wait for it; every write is bounded by ``pymongo.timeout``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import pymongo
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from django_mongopool import __version__, fleet, history, pools, roles, shares
from django_mongopool.client import (
    active_test_clients,
    connected_before_fork,
    get_config,
    get_database,
)
from django_mongopool.conf import conf
from django_mongopool.redact import scrub

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


def collection() -> Collection[dict[str, Any]]:
    return get_database()[conf.heartbeat_collection]


def _io_timeout() -> float:
    """How long one beat's writes and reads may take: the interval, within 1 to 5 s."""
    return max(1.0, min(conf.heartbeat_seconds, 5.0))


def expire_after(interval: float) -> int:
    """Seconds after which a beat is deleted (well past the liveness window)."""
    return int(max(60, fleet.LIVE_FACTOR * interval * 2))


def beat_id() -> str:
    """One publisher's document id: host and pid, plus a random part (pids repeat across
    containers that share a host name, and across restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def build_document(beat: str, started_at: dt.datetime, previous_timeouts: int) -> dict[str, Any]:
    config = get_config()
    snapshot = pools.snapshot().as_dict()
    host = socket.gethostname()
    pid = os.getpid()
    return {
        "_id": beat,
        "host": host,
        "pid": pid,
        "app": config.appname,
        "role": roles.current(),  # web, worker or command
        "version": __version__,
        "started_at": started_at,
        "updated_at": dt.datetime.now(dt.UTC),
        "interval": conf.heartbeat_seconds,
        "options": {name: config.option(name) for name in SHOWN_OPTIONS},
        "max_pool_size": config.max_pool_size,
        # Counters restart with a new client (settings change, closed loop): then all are new.
        "recent_checkout_timeouts": (
            snapshot["checkout_timeouts"] - previous_timeouts
            if snapshot["checkout_timeouts"] >= previous_timeouts
            else snapshot["checkout_timeouts"]
        ),
        "fleet_budget": shares.report(),
        **{key: value for key, value in snapshot.items() if key not in {"pid", "taken_at"}},
    }


class Publisher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="django-mongopool-heartbeat", daemon=True)
        self.stop_event = threading.Event()
        self.started_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.beat_id = beat_id()
        self.previous_timeouts = 0
        self.beats = 0
        self.failures = 0
        self.ttl_index: bool | None = None  # unknown until the first beat
        self._beat_lock = threading.Lock()

    def beat(self) -> None:
        """Publish now (the thread calls this every interval; tests may call it too)."""
        with self._beat_lock:
            self._beat()

    def _beat(self) -> None:
        interval = conf.heartbeat_seconds
        document = build_document(self.beat_id, self.started_at, self.previous_timeouts)
        with pymongo.timeout(_io_timeout()):
            target = collection()
            if self.ttl_index is None:
                try:
                    target.create_index(
                        "updated_at",
                        expireAfterSeconds=expire_after(interval),
                        name="mongopool_ttl",
                    )
                    self.ttl_index = True
                except OperationFailure:
                    # FerretDB v1 has no TTL indexes: prune old beats ourselves instead.
                    self.ttl_index = False
            now = document["updated_at"]
            stale = now - dt.timedelta(seconds=expire_after(interval))
            future = now + dt.timedelta(seconds=fleet.MAX_SKEW_SECONDS)
            # A TTL index never removes a beat dated in the future: prune those always.
            prune: dict[str, Any] = {"updated_at": {"$gt": future}}
            if not self.ttl_index:
                prune = {"$or": [prune, {"updated_at": {"$lt": stale}}]}
            target.delete_many(prune)
            target.replace_one({"_id": document["_id"]}, document, upsert=True)
        self.previous_timeouts = document["checkout_timeouts"]
        self.beats += 1
        if conf.fleet_budget is not None:
            self._recompute_share(document["_id"])

    def _recompute_share(self, own_id: str) -> None:
        """The fleet budget's share from the live processes, this one included."""
        with pymongo.timeout(_io_timeout()):
            live = read_fleet().processes
        shares.update(len(live) + (own_id not in {p["id"] for p in live}))

    def run(self) -> None:
        next_beat = next_sample = 0.0
        while not self.stop_event.is_set():
            try:
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + history.SAMPLE_SECONDS
                    history.sample()
                interval = conf.heartbeat_seconds
                if interval and now >= next_beat:
                    next_beat = now + interval
                    self.beat()
                if conf.fleet_budget is not None:
                    shares.trim()
            except PyMongoError as exc:
                self.failures += 1
                reason = f"{type(exc).__name__}: {scrub(str(exc), get_config().secrets)[:300]}"
                logger.warning("Heartbeat skipped: %s", reason)
                shares.fleet_unreadable(reason)
            except Exception:  # never let the thread die on an unexpected error
                self.failures += 1
                logger.exception("Heartbeat failed")
            budget_active = conf.fleet_budget is not None
            self.stop_event.wait(shares.TRIM_SECONDS if budget_active else history.SAMPLE_SECONDS)

    def stop(self) -> None:
        self.stop_event.set()


_lock = threading.Lock()
_publisher: Publisher | None = None
_publisher_pid: int | None = None
# True once this process runs its thread: the per-request check is one global read.
running_here = False


def forget_after_fork() -> None:
    """In a forked child: no thread runs here yet; a lock held at fork time is replaced."""
    global running_here, _lock, _publisher
    running_here = False
    _lock = threading.Lock()
    _publisher = None


def ensure_started() -> Publisher | None:
    """Start this process's background thread once (a pid check when already running)."""
    global _publisher, _publisher_pid, running_here
    if _publisher_pid == os.getpid() and _publisher is not None and _publisher.is_alive():
        return _publisher
    if not conf.uri_is_set:
        return None  # check E001 reports it; requests that do not use MongoDB still work
    with _lock:
        if _publisher_pid != os.getpid() or _publisher is None or not _publisher.is_alive():
            if connected_before_fork():
                logger.warning(
                    "django_mongopool.W004: this worker was forked after its parent connected "
                    "to MongoDB; do not query MongoDB before a preforking server forks."
                )
            _publisher = Publisher()
            _publisher_pid = os.getpid()
            _publisher.start()
        running_here = True
    return _publisher


def on_request_started(**kwargs: Any) -> None:
    """``request_started`` receiver: the first request of a process starts its thread.

    Never while a test client replaces the real one (the mongomock tier): no thread at all.
    """
    if not running_here and active_test_clients() is None:
        ensure_started()


def stop() -> None:
    """Stop this process's publisher (tests, settings changes)."""
    global _publisher, running_here
    with _lock:
        running_here = False
        if _publisher is not None and _publisher_pid == os.getpid():
            _publisher.stop()
            _publisher.join(timeout=10)
        _publisher = None


def read_fleet(now: dt.datetime | None = None) -> fleet.Reading:
    """Read every heartbeat; malformed ones are counted, future-dated ones listed."""
    return fleet.read(
        collection().with_options(codec_options=fleet.UNTRUSTED_CODEC_OPTIONS).find({}), now
    )


def wait_for_beats(count: int, timeout: float = 30.0) -> bool:
    """Test helper: block until this process's publisher has beaten ``count`` times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _publisher is not None and _publisher.beats >= count:
            return True
        time.sleep(0.02)
    return False
