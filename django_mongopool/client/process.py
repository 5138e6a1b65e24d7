"""The process's sync ``MongoClient``: build, get, retire, close; fork handling.

Fork safety: the client belongs to the process that built it. A child forked
after that (gunicorn ``--preload``, uWSGI without lazy-apps, multiprocessing)
never touches the parent's client: the fork hook (:func:`after_fork_in_child`, run by
:mod:`django_mongopool.guards.forks`) sets it aside and :func:`get_client` builds the
child's own. The inherited object is kept referenced, never used and never closed, so
the parent's sockets are left alone and pymongo has no reason to warn "MongoClient
opened before fork".

Settings changes: a change to a client setting *retires* the client rather than
closing it under running requests. New requests get a client built from the new
settings; the retired one is closed as soon as the last request that used it has
ended, or after :data:`RETIRE_GRACE_SECONDS` at the latest. Requests are counted
per client by two lock-free counters: a request holds one count from the first
time it needs the client (its ``request.mongo_session`` is used, or it calls
:func:`get_client`) to its end. A request takes :data:`pin_lock` when it first needs
the client and at its end; closing a retired client takes its own lock.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pymongo import MongoClient
from pymongo.database import Database

from django_mongopool.client import pymongo_internals
from django_mongopool.client.figures import (
    CommandCounter,
    Count,
    PoolMetrics,
    ProcessCounters,
    instrument,
)
from django_mongopool.client.options import ClientConfig
from django_mongopool.client.scope import RequestScope, current, record
from django_mongopool.client.sessions import start as start_session
from django_mongopool.conf import conf
from django_mongopool.guards import forks

# The longest a retired client stays open for requests that still use it.
RETIRE_GRACE_SECONDS = 30.0


def usable(client: Any) -> bool:
    return client is not None and not getattr(client, "_mongopool_closed", False)


class _Retirement:
    """A client's requests in flight and its retirement (see the module docstring)."""

    __slots__ = ("begun", "done", "retired", "closer", "closed", "timer", "lock")

    def __init__(self) -> None:
        self.begun = Count()
        self.done = Count()
        self.retired = False
        self.closer: Callable[[], Any] | None = None
        self.closed = False
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()


class PooledClientMixin:
    """What the app's sync and async clients share: counting pools, connect=False, counted sessions.

    Its own state is four attributes (the retirement state is one object): pymongo's client
    already has 23, and an instance with more than 30 loses CPython's compact attribute storage,
    which slows every attribute read pymongo makes on the client.
    """

    mongopool_own_client = True  # not a stray client
    _mongopool_pool: PoolMetrics
    _mongopool_counters: ProcessCounters
    _mongopool_config: ClientConfig
    _mongopool_retirement: _Retirement

    def __init__(self, config: ClientConfig, pool: PoolMetrics, counters: ProcessCounters) -> None:
        for hook in _build_hooks:  # empty outside test runs (see on_build)
            hook(config)
        self._mongopool_pool = pool
        self._mongopool_counters = counters
        self._mongopool_config = config
        self._mongopool_retirement = _Retirement()
        listeners = list(config.kwargs.get("event_listeners", ()))
        if config.command_metrics:  # opt-in: pymongo builds two event objects per command
            listeners.append(CommandCounter(counters))
        pool_options, pool_listeners = instrument(pool, self._mongopool_async)
        kwargs = {k: v for k, v in config.kwargs.items() if k != "event_listeners"}
        super().__init__(  # type: ignore[call-arg]
            config.uri,
            connect=False,
            event_listeners=listeners + pool_listeners,
            **pool_options,
            **kwargs,
        )

    @property
    def _mongopool_closed(self) -> bool:
        """True once the retired client has been closed."""
        return self._mongopool_retirement.closed

    # Requests in flight, and retirement (see the module docstring).
    def requests_in_flight(self) -> int:
        state = self._mongopool_retirement
        done = state.done.read()  # read first: the figure may be high, never low
        return state.begun.read() - done

    def hold(self) -> bool:
        """Count a request in; False (and not counted) when the client was retired meanwhile."""
        state = self._mongopool_retirement
        next(state.begun)
        if state.retired:
            self.release()
            return False
        return True

    def release(self) -> None:
        """Count a request out; the last one out of a retired client closes it."""
        state = self._mongopool_retirement
        next(state.done)
        if state.retired and not state.closed and self.requests_in_flight() <= 0:
            # Closing ends the server sessions (a round trip): not in the request's time.
            threading.Thread(
                target=self._close_retired, name="django-mongopool-retire", daemon=True
            ).start()

    def retire(self, close: Callable[[], Any], grace: float = RETIRE_GRACE_SECONDS) -> None:
        """No new requests; ``close()`` once none is in flight, or after ``grace`` seconds."""
        state = self._mongopool_retirement
        state.closer = close
        state.retired = True
        if self.requests_in_flight() <= 0:
            self._close_retired()
            return
        timer = threading.Timer(grace, self._close_retired)
        timer.name = "django-mongopool-retire"
        timer.daemon = True
        state.timer = timer
        timer.start()
        if state.closed:  # the last request ended while the timer was set up
            timer.cancel()

    def _close_retired(self) -> None:
        state = self._mongopool_retirement
        with state.lock:
            if state.closed or state.closer is None:
                return
            state.closed = True
        if state.timer is not None:
            state.timer.cancel()
        state.closer()

    _mongopool_async = False

    def _mongopool_explicit_session(self, options: dict[str, Any]) -> Any:
        """The session ``start_session(**options)`` gives: counted, and leak-tracked (called by
        the hook :func:`django_mongopool.client.pymongo_internals.verify` installs on the client class)."""
        scope = current.get()
        outside = scope is None or scope.ended  # no request or block will check it: watched
        session = start_session(
            self._mongopool_async, self, self._mongopool_counters, outside, **options
        )
        # Only pymongo's start_session() asks for an explicit session, through the hook: its
        # caller is three frames up.
        record(session, sys._getframe(3), scope)
        return session

    def start_request_session(self) -> Any:
        """The session behind ``request.mongo_session`` / ``amongo_session()`` (never leak-tracked:
        the request's scope ends it)."""
        return start_session(self._mongopool_async, self, self._mongopool_counters, False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._mongopool_config.redacted_uri!r})"


class PooledMongoClient(PooledClientMixin, MongoClient):  # type: ignore[type-arg]
    """The app's own client: a ``MongoClient`` whose sessions count themselves."""


pymongo_internals.register_client_class(PooledMongoClient, is_async=False)


class _ProcessClient:
    """The client holder; one per process, rebuilt after fork or a client-settings change."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.client: PooledMongoClient | None = None
        self.counters = ProcessCounters()
        self.pool = PoolMetrics("sync")
        self.inherited: list[PooledMongoClient] = []
        self.retired: list[PooledMongoClient] = []  # retired, maybe still serving requests
        self.connected_before_fork = False
        self.opened_at_fork = False  # recorded in the parent just before each fork
        # Set only by use_test_client(): replaces the built clients (sync, async) while set.
        self.test_clients: tuple[Any, Any] | None = None

    def adopt_fork(self) -> None:
        """In a forked child: set the parent's clients aside, never to be used or closed here
        (a request scope the child inherited finds its pinned client unusable)."""
        self.lock = threading.RLock()  # another thread may have held it at fork time
        if self.client is not None:
            # The parent had opened sockets and monitor threads before forking
            # (e.g. a query at import time under gunicorn --preload): check W004.
            self.connected_before_fork = self.opened_at_fork
            self.inherited.append(self.client)
        self.inherited.extend(self.retired)
        for client in self.inherited:
            client._mongopool_retirement.closed = True  # for this process: neither used nor closed
        self.retired = []
        self.client = None
        self.counters = ProcessCounters()
        self.pool = PoolMetrics("sync")

    def get(self) -> PooledMongoClient:
        if self.test_clients is not None:
            return self.test_clients[0]  # type: ignore[no-any-return]
        scope = current.get()
        if scope is not None and scope.pins:
            pinned = scope.sync
            if usable(pinned):
                return pinned  # type: ignore[no-any-return]
            if not scope.ended:
                return self.hold_for(scope)
        return self.built()

    def built(self) -> PooledMongoClient:
        """The current client, built if needed (no request pinning)."""
        client = self.client
        if client is not None:
            return client
        with self.lock:
            if self.client is None:
                self.client = PooledMongoClient(conf.client_config, self.pool, self.counters)
            return self.client

    def hold(self) -> PooledMongoClient:
        """The current client, counted as used by one more request (see :meth:`retire`)."""
        while True:
            client = self.test_clients[0] if self.test_clients is not None else self.built()
            if not isinstance(client, PooledClientMixin) or client.hold():
                return client  # a test client (use_test_client) is never retired

    def hold_for(self, scope: RequestScope) -> PooledMongoClient:
        """The client ``scope``'s request uses: held and pinned on first need, then the same.

        Threads that share the request's context may ask at once: the pin is taken under a
        lock, and a hold taken after the request ended is given back at once.
        """
        pinned = scope.sync
        if usable(pinned):
            return pinned  # type: ignore[no-any-return]
        with pin_lock:
            pinned = scope.sync
            if usable(pinned):
                return pinned  # type: ignore[no-any-return]
            client = self.hold()
            held = isinstance(client, PooledClientMixin)
            if scope.ended:  # ended meanwhile: nothing would release this hold
                if held:
                    client.release()
                return client
            scope.needs_end = True
            previous, scope.held = scope.held, (client if held else None)
            scope.sync = client
        if previous is not None:  # the pinned client was closed meanwhile (after the grace period)
            previous.release()
        return client

    def retire(self, grace: float = RETIRE_GRACE_SECONDS) -> None:
        """The next :meth:`get` builds a new client; the old one closes when no request uses it."""
        with self.lock:
            client, self.client = self.client, None
            # Figures describe one client: a new client starts them from zero.
            self.pool = PoolMetrics("sync")
            self.counters = ProcessCounters()
            self.retired = [c for c in self.retired if not c._mongopool_closed]
            if client is not None:
                self.retired.append(client)
        if client is not None:
            client.retire(client.close, grace)

    def close(self) -> None:
        """Close the client and every retired one now (interpreter exit)."""
        with self.lock:
            client, self.client = self.client, None
            retired, self.retired = self.retired, []
            self.pool = PoolMetrics("sync")
            self.counters = ProcessCounters()
        for old in retired:
            old._close_retired()
        if client is not None:
            client.close()


_process = _ProcessClient()
pin_lock = threading.Lock()  # taken when a request first needs the client, and at its end


@forks.before
def before_fork() -> None:
    """pymongo resets its clients in the child, so whether ours was connected is seen here."""
    client = _process.client
    _process.opened_at_fork = bool(client is not None and pymongo_internals.client_opened(client))


@forks.in_child
def after_fork_in_child() -> None:
    """The child builds its own client; the parent's is set aside (see :meth:`adopt_fork`)."""
    _process.adopt_fork()
    if pin_lock.locked():  # held by a thread of the parent: released, not replaced (it is
        pin_lock.release()  # imported by name, and no thread of this child holds it yet)


# Called with the configuration before each client of the app is built from it.
_build_hooks: list[Callable[[ClientConfig], None]] = []


@contextmanager
def on_build(hook: Callable[[ClientConfig], None]) -> Iterator[None]:
    """While the block runs, ``hook(config)`` is called before each client is built (the sync
    client and each event loop's async client). The test isolation
    (:mod:`django_mongopool.testing.isolation`) starts its test server there, on first need; an
    exception from the hook is the build's."""
    _build_hooks.append(hook)
    try:
        yield
    finally:
        _build_hooks.remove(hook)


@contextmanager
def use_test_client(client: Any, async_client: Any = None) -> Iterator[Any]:
    """The one override point for tests: while the block runs, ``client`` replaces the process client.

    :func:`get_client` and :func:`get_database` use ``client``, and the middleware
    sets ``request.mongo_session`` to ``client.start_request_session()``;
    ``get_async_client()`` uses
    ``async_client`` when one is given. ``client`` needs ``start_request_session()``
    (and ``async_client`` too). No real client is built or closed meanwhile.
    Used by the pytest plugin's mongomock tier (:mod:`django_mongopool.testing.mock`).
    ``client=None`` puts the real clients back for the block (a mock-mode test that sets
    ``MONGOPOOL_URI`` itself).
    """
    replacement = None if client is None else (client, async_client)
    previous, _process.test_clients = _process.test_clients, replacement
    try:
        yield client
    finally:
        _process.test_clients = previous


def active_test_clients() -> tuple[Any, Any] | None:
    """The ``(client, async_client)`` set by :func:`use_test_client`, or None (the real clients)."""
    return _process.test_clients


def get_client() -> PooledMongoClient:
    """The process-wide client (built on first use in each process)."""
    return _process.get()


def get_config() -> ClientConfig:
    """The validated configuration of the client."""
    return conf.client_config


def connected_before_fork() -> bool:
    """True in a forked child whose parent's client was already connected at fork time."""
    return _process.connected_before_fork


def process_counters() -> ProcessCounters:
    """This process's counters (sessions, 503s, leaked sessions)."""
    return _process.counters


def sync_pool() -> PoolMetrics:
    """The pool figures of this process's sync client (empty before it is built)."""
    return _process.pool


def built_client() -> PooledMongoClient | None:
    """This process's client if it has been built (never builds one)."""
    return _process.client


def database_name(name: str | None, caller: str = "get_database") -> str:
    """``name``, else ``MONGOPOOL_DATABASE`` or the URI's database; says how to fix neither."""
    name = name or conf.database
    if not name:
        raise ImproperlyConfigured(
            f"{caller}() needs a name: set MONGOPOOL_DATABASE, put the database in the "
            f"MONGOPOOL_URI path (mongodb://host/dbname), or pass {caller}('name')."
        )
    return name


def get_database(name: str | None = None) -> Database[Any]:
    """A database of the process-wide client: ``name`` or ``MONGOPOOL_DATABASE``."""
    return get_client()[database_name(name)]


def reset_client(grace: float = RETIRE_GRACE_SECONDS) -> None:
    """Retire the client: the next :func:`get_client` builds a new one from the settings; the
    old one is closed once no request uses it any more, or after ``grace`` seconds."""
    _process.retire(grace)


def close_clients() -> None:
    """Close this process's client and every retired one now (registered with atexit)."""
    _process.close()


def hold_for(scope: RequestScope) -> PooledMongoClient:
    """The sync client of ``scope``'s request: held (a retired client is not closed under the
    request) and pinned the first time the request needs it; the scope releases it at its end."""
    return _process.hold_for(scope)


def release_request(session: Any) -> None:
    """The request that had ``session`` from a held client's ``start_request_session()``
    (``await request.amongo_session()``) has ended: the client may be closed if it was
    retired."""
    client = getattr(session, "client", None)
    if isinstance(client, PooledClientMixin):
        client.release()
