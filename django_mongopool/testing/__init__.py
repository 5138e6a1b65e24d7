"""Test helpers for projects that use django-mongopool (see also the pytest plugin)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from django_mongopool.client import pools, process, scope
from django_mongopool.guards import forks, leaks

if TYPE_CHECKING:
    from django.http import HttpRequest

    from django_mongopool.request.middleware import RequestSessions

__all__ = [
    "SessionCount",
    "assert_max_connections",
    "assert_no_leaked_sessions",
    "count_sessions",
    "end_mongo_request",
    "end_mongo_requests",
    "explain_missing_sessions",
    "mongo_request",
]

R = TypeVar("R", bound="HttpRequest")
_opened: list[RequestSessions] = []
_opened_lock = threading.Lock()


@forks.in_child
def _fresh_opened_lock_in_child() -> None:
    """In a forked child: the lock may have been held by another thread at fork time."""
    global _opened_lock
    _opened_lock = threading.Lock()


def mongo_request(request: R, user: Any = None) -> R:
    """Give a ``RequestFactory`` request what ``MongoSessionMiddleware`` gives a real one.

    ``request.mongo_session`` (a session of the process client, or of the mongomock
    tier's client under ``mongopool_mock``) and ``await request.amongo_session()``, so a
    test can call a view directly::

        request = mongo_request(RequestFactory().get("/"))
        response = views.entry_list(request)

    ``request.user`` (and ``await request.auser()``) is ``user``, else the one the request
    already has, else ``AnonymousUser()`` (with ``django.contrib.auth`` installed), as
    ``AuthenticationMiddleware`` would give an anonymous request. The sessions end with
    :func:`end_mongo_request`, or, under the pytest plugin, after the test. Returns the same
    request object.
    """
    from django_mongopool.request.middleware import RequestSessions

    sessions = RequestSessions.open(request)
    # A bound method: a view called directly runs outside any request's context.
    request.amongo_session = sessions.aget  # type: ignore[attr-defined]
    _give_user(request, user)
    with _opened_lock:
        _opened.append(sessions)
    return request


def _give_user(request: HttpRequest, user: Any) -> None:
    if user is None:
        if "user" in request.__dict__:
            return
        from django.apps import apps

        if not apps.is_installed("django.contrib.auth"):
            return
        from django.contrib.auth.models import AnonymousUser

        user = AnonymousUser()
    request.user = user

    async def auser() -> Any:
        return user

    request.auser = auser


class _SetByTheMiddleware:
    """While tests run, ``HttpRequest.mongo_session`` / ``amongo_session`` for a request that
    did not pass ``MongoSessionMiddleware``: the AttributeError says how to give it one. A
    non-data descriptor, so the middleware's own attribute (in the instance) wins."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, request: Any, owner: Any = None) -> Any:
        if request is None:
            return self
        raise AttributeError(
            f"{type(request).__name__!r} object has no attribute {self.name!r}: "
            "MongoSessionMiddleware sets it, and this request did not pass through the "
            "middleware (a RequestFactory request?). Wrap it: "
            "django_mongopool.testing.mongo_request(RequestFactory().get('/')) gives it "
            "request.mongo_session, request.amongo_session and an anonymous request.user; "
            "under the mongopool_mock fixture they are mongomock's."
        )


@contextmanager
def explain_missing_sessions() -> Iterator[None]:
    """While the block runs, a request without the middleware's attributes says what to do
    (the pytest plugin and ``manage.py test`` run tests in it). Nothing changes outside it."""
    from django.http import HttpRequest

    added = [
        name for name in ("mongo_session", "amongo_session") if name not in HttpRequest.__dict__
    ]
    for name in added:
        setattr(HttpRequest, name, _SetByTheMiddleware(name))
    try:
        yield
    finally:
        for name in added:
            delattr(HttpRequest, name)


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


class SessionCount:
    """What :func:`count_sessions` counted: MongoDB sessions the app's clients started and ended
    in the block (a session counts as started when it first runs a command)."""

    started = 0
    ended = 0

    def __repr__(self) -> str:
        return f"SessionCount(started={self.started}, ended={self.ended})"


@contextmanager
def count_sessions() -> Iterator[SessionCount]:
    """Count the sessions the app's clients (sync and async, this process) start and end in the
    block, requests and tasks run in it included; read the result after the block::

        with count_sessions() as sessions:
            client.post("/sign/", ...)
        assert sessions.started == sessions.ended == 1
    """
    if process.active_test_clients() is not None:
        raise RuntimeError(
            "count_sessions() counts the sessions of the app's real clients; the mongomock tier "
            "(mongopool_mock) does not count sessions. Use mongopool_db for this test."
        )
    count = SessionCount()
    counters = process.process_counters()
    before = counters.as_dict()
    yield count
    if process.process_counters() is not counters:
        raise RuntimeError(
            "count_sessions(): the app's client was rebuilt in the block (a client setting "
            "changed, or it was closed), so its sessions cannot be counted across it."
        )
    after = counters.as_dict()
    count.started = after["sessions_started"] - before["sessions_started"]
    count.ended = after["sessions_ended"] - before["sessions_ended"]


@contextmanager
def assert_no_leaked_sessions() -> Iterator[None]:
    """Fail if a session started in the block (or in a request served in it) was left open."""
    before = pools.snapshot().leaked_sessions
    with scope.tracking() as tracked:
        yield
    leaked = leaks.leaked(tracked)
    during_requests = pools.snapshot().leaked_sessions - before
    if leaked or during_requests > 0:
        sites = ", ".join(t.site for t in leaked) or "inside a request (see the warning or log)"
        raise AssertionError(
            f"{len(leaked) + max(during_requests, 0)} MongoDB session(s) were not ended: {sites}"
        )
