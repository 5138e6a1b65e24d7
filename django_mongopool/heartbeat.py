"""The per-process background thread: pool history samples and fleet heartbeats.

A daemon thread (started by the middleware on the first request of each
process, so forked workers start their own and manage.py commands publish
nothing) records an in-memory sample of the pool every SAMPLE_SECONDS for the
page's chart and, when MONGOPOOL_HEARTBEAT_SECONDS > 0, upserts one small
document per process into
``MONGOPOOL_HEARTBEAT_COLLECTION``, which has a TTL index. Requests never wait
for it; every write is bounded by ``pymongo.timeout`` and a server that is away
only costs a skipped beat.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import Any

import pymongo
from pymongo.errors import OperationFailure, PyMongoError

from django_mongopool import __version__
from django_mongopool.client import connected_before_fork, get_config, get_database, get_metrics
from django_mongopool.conf import conf

logger = logging.getLogger("django_mongopool.heartbeat")

SAMPLE_SECONDS = 2.0
LIVE_FACTOR = 3  # a process is alive while its last beat is younger than 3 intervals
SHOWN_OPTIONS = (
    "maxPoolSize",
    "minPoolSize",
    "maxConnecting",
    "waitQueueTimeoutMS",
    "serverSelectionTimeoutMS",
    "socketTimeoutMS",
    "timeoutMS",
)


def collection() -> Any:
    return get_database()[get_config().heartbeat_collection]


def expire_after(interval: float) -> int:
    """Seconds after which a beat is deleted (well past the liveness window)."""
    return int(max(60, LIVE_FACTOR * interval * 2))


def build_document(started_at: dt.datetime, previous_timeouts: int) -> dict[str, Any]:
    config = get_config()
    snapshot = get_metrics().snapshot().as_dict()
    host = socket.gethostname()
    pid = os.getpid()
    return {
        "_id": f"{host}:{pid}:{int(started_at.timestamp())}",
        "host": host,
        "pid": pid,
        "app": config.appname,
        "version": __version__,
        "started_at": started_at,
        "updated_at": dt.datetime.now(dt.UTC),
        "interval": config.heartbeat_seconds,
        "options": {name: config.option(name) for name in SHOWN_OPTIONS},
        "max_pool_size": config.max_pool_size,
        "recent_checkout_timeouts": snapshot["checkout_timeouts"] - previous_timeouts,
        **{key: value for key, value in snapshot.items() if key not in {"pid", "taken_at"}},
    }


class Publisher(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="django-mongopool-heartbeat", daemon=True)
        self.stop_event = threading.Event()
        self.started_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
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
        interval = get_config().heartbeat_seconds
        document = build_document(self.started_at, self.previous_timeouts)
        with pymongo.timeout(max(1.0, min(interval, 5.0))):
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
            if not self.ttl_index:
                cutoff = document["updated_at"] - dt.timedelta(seconds=expire_after(interval))
                target.delete_many({"updated_at": {"$lt": cutoff}})
            target.replace_one({"_id": document["_id"]}, document, upsert=True)
        self.previous_timeouts += document["recent_checkout_timeouts"]
        self.beats += 1

    def run(self) -> None:
        next_beat = 0.0
        while not self.stop_event.is_set():
            try:
                get_metrics().sample()
                interval = get_config().heartbeat_seconds
                if interval and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + interval
                    self.beat()
            except PyMongoError as exc:
                self.failures += 1
                logger.warning("Heartbeat skipped: %s", type(exc).__name__)
            except Exception:  # never let the thread die on an unexpected error
                self.failures += 1
                logger.exception("Heartbeat failed")
            self.stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self.stop_event.set()


_lock = threading.Lock()
_publisher: Publisher | None = None
_publisher_pid: int | None = None
# True once this process runs its thread: the middleware's per-request check is one global read.
running_here = False


def _forget_after_fork() -> None:
    global running_here
    running_here = False


os.register_at_fork(after_in_child=_forget_after_fork)


def ensure_started() -> Publisher | None:
    """Start this process's background thread once (a pid check when already running)."""
    global _publisher, _publisher_pid, running_here
    if _publisher_pid == os.getpid() and _publisher is not None and _publisher.is_alive():
        return _publisher
    if not conf.MONGOPOOL_URI:
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


def stop() -> None:
    """Stop this process's publisher (tests, settings changes)."""
    global _publisher, running_here
    with _lock:
        running_here = False
        if _publisher is not None and _publisher_pid == os.getpid():
            _publisher.stop()
            _publisher.join(timeout=10)
        _publisher = None


def live_heartbeats(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Heartbeats of processes that beat within the last LIVE_FACTOR intervals."""
    now = now or dt.datetime.now(dt.UTC)
    live = []
    for doc in collection().find({}):
        updated = doc.get("updated_at")
        if updated is None:
            continue
        if updated.tzinfo is None:
            updated = updated.replace(tzinfo=dt.UTC)
        age = (now - updated).total_seconds()
        if age <= LIVE_FACTOR * float(doc.get("interval") or 1) + 1:
            doc["age_seconds"] = round(age, 1)
            live.append(doc)
    live.sort(key=lambda d: (d.get("host", ""), d.get("pid", 0)))
    return live


def wait_for_beats(count: int, timeout: float = 30.0) -> bool:
    """Test helper: block until this process's publisher has beaten ``count`` times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _publisher is not None and _publisher.beats >= count:
            return True
        time.sleep(0.02)
    return False
