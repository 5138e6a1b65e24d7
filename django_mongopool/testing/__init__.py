"""Test helpers for projects that use django-mongopool (see also the pytest plugin)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from django_mongopool import leaks, pools

if TYPE_CHECKING:
    from django.http import HttpRequest

    from django_mongopool.middleware import RequestSessions

__all__ = [
    "assert_max_connections",
    "assert_no_leaked_sessions",
    "end_mongo_request",
    "end_mongo_requests",
    "mongo_request",
]

R = TypeVar("R", bound="HttpRequest")
_opened: list[RequestSessions] = []
_opened_lock = threading.Lock()


def mongo_request(request: R) -> R:
    """Give a ``RequestFactory`` request what ``MongoSessionMiddleware`` gives a real one.

    ``request.mongo_session`` (a session of the process client, or of the mongomock
    tier's client under ``mongopool_mock``) and ``await request.amongo_session()``, so a
    test can call a view directly::

        request = mongo_request(RequestFactory().get("/"))
        response = views.entry_list(request)

    The sessions end with :func:`end_mongo_request`, or, under the pytest plugin, after
    the test. Returns the same request object.
    """
    from django_mongopool.middleware import RequestSessions

    sessions = RequestSessions.open(request)
    # A bound method: a view called directly runs outside any request's context.
    request.amongo_session = sessions.aget  # type: ignore[attr-defined]
    with _opened_lock:
        _opened.append(sessions)
    return request


def end_mongo_request(request: HttpRequest) -> None:
    """End the sessions :func:`mongo_request` gave ``request`` (a second call does nothing)."""
    sessions = getattr(getattr(request, "amongo_session", None), "__self__", None)
    if sessions is not None:
        sessions.end(request)
        with _opened_lock:
            if sessions in _opened:
                _opened.remove(sessions)


def end_mongo_requests() -> None:
    """End every session :func:`mongo_request` gave out and that is still open (the plugin
    calls this after each test)."""
    with _opened_lock:
        opened = list(_opened)
        _opened.clear()
    for sessions in opened:
        sessions.end()


@contextmanager
def assert_max_connections(limit: int) -> Iterator[None]:
    """Fail if the pool ever held more than ``limit`` connections to one server in the block.

    Exact, not sampled: it reads the high-water mark of open connections that the
    app's pool class keeps when each connection is created (monitor connections,
    which pymongo keeps outside the pool, are not counted).
    """
    for pool in pools.all_pools():
        pool.reset_peaks()
    yield
    peaks = {(s.pool, s.address): s.peak_open for s in pools.snapshot().servers}
    over = {f"{pool} {address}": peak for (pool, address), peak in peaks.items() if peak > limit}
    if over:
        raise AssertionError(f"More than {limit} pooled connection(s) to a server: {over}")


@contextmanager
def assert_no_leaked_sessions() -> Iterator[None]:
    """Fail if a session started in the block (or in a request served in it) was left open."""
    before = pools.snapshot().leaked_sessions
    with leaks.tracking() as tracked:
        yield
    leaked = leaks.leaked(tracked)
    during_requests = pools.snapshot().leaked_sessions - before
    if leaked or during_requests > 0:
        sites = ", ".join(t.site for t in leaked) or "inside a request (see the warning or log)"
        raise AssertionError(
            f"{len(leaked) + max(during_requests, 0)} MongoDB session(s) were not ended: {sites}"
        )
