"""The readiness decision: is any pool saturated, and does the server answer a ping in time?

Pings are coalesced: while one is in flight every probe waits on it, so a burst of
probes costs one round trip, and each probe answers within its timeout (plus a small
margin) even when pymongo's own server selection would take longer.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import pymongo
from pymongo.errors import PyMongoError

from django_mongopool.client import pools
from django_mongopool.client.process import get_client, get_config
from django_mongopool.fleet import shares
from django_mongopool.fleet.budget import is_saturated
from django_mongopool.guards import forks

_lock = threading.Lock()
_in_flight: Future[None] | None = None


def _ping(future: Future[None], timeout: float) -> None:
    try:
        with pymongo.timeout(timeout):
            get_client().admin.command("ping")
    except BaseException as exc:  # handed to every waiting probe
        future.set_exception(exc)
    else:
        future.set_result(None)


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: the parent's ping in flight never finishes here."""
    global _lock, _in_flight
    _lock = threading.Lock()
    _in_flight = None


def _shared_ping(timeout: float) -> Future[None]:
    global _in_flight
    with _lock:
        if _in_flight is None or _in_flight.done():
            _in_flight = Future()
            threading.Thread(
                target=_ping, args=(_in_flight, timeout), name="django-mongopool-ping", daemon=True
            ).start()
        return _in_flight


def saturated() -> bool:
    """True when a pool of this process (sync or any loop's) has requests waiting or no room."""
    limit = shares.pool_limit(get_config().max_pool_size)
    return any(
        is_saturated({"waiting": s.waiting, "in_use": s.in_use}, limit)
        for s in pools.snapshot().servers
    )


def reachable(timeout: float) -> bool:
    """True when the server answers a ping within ``timeout`` seconds."""
    try:
        _shared_ping(timeout).result(timeout=timeout)
    except (FutureTimeout, PyMongoError):
        return False
    return True
