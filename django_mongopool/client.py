"""The process's sync ``MongoClient``: build, get, retire, close; fork handling.

Fork safety: the client belongs to the process that built it. A child forked
after that (gunicorn ``--preload``, uWSGI without lazy-apps, multiprocessing)
never touches the parent's client: :func:`get_client` sees a new pid and
builds the child's own. The inherited object is kept referenced, never used
and never closed, so the parent's sockets are left alone and pymongo has no
reason to warn "MongoClient opened before fork".
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database

from django_mongopool import leaks
from django_mongopool.conf import conf
from django_mongopool.metrics import CommandCounter, PoolListener, PoolMetrics, ProcessCounters
from django_mongopool.options import ClientConfig
from django_mongopool.sessions import start as start_session


class PooledClientMixin:
    """What the app's sync and async clients share: listeners, connect=False, counted sessions."""

    _mongopool_own = True  # not a stray client
    _mongopool_pool: PoolMetrics
    _mongopool_counters: ProcessCounters
    _mongopool_config: ClientConfig

    def __init__(self, config: ClientConfig, pool: PoolMetrics, counters: ProcessCounters) -> None:
        self._mongopool_pool = pool
        self._mongopool_counters = counters
        self._mongopool_config = config
        listeners = list(config.kwargs.get("event_listeners", ()))
        listeners.append(PoolListener(pool))
        if config.command_metrics:  # opt-in: pymongo builds two event objects per command
            listeners.append(CommandCounter(counters))
        kwargs = {k: v for k, v in config.kwargs.items() if k != "event_listeners"}
        super().__init__(config.uri, connect=False, event_listeners=listeners, **kwargs)  # type: ignore[call-arg]

    _mongopool_async = False

    def _start_session(self, implicit: bool, **kwargs: Any) -> Any:
        if implicit:  # pymongo's own per-operation sessions are not counted
            return super()._start_session(implicit, **kwargs)  # type: ignore[misc]
        return start_session(self._mongopool_async, self, self._mongopool_counters, **kwargs)

    def start_session(self, *args: Any, **kwargs: Any) -> Any:
        session = super().start_session(*args, **kwargs)  # type: ignore[misc]
        leaks.record(session, sys._getframe(1))
        return session

    def start_request_session(self) -> Any:
        """The session behind ``request.mongo_session`` / ``amongo_session()`` (never leak-tracked)."""
        return self._start_session(False)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._mongopool_config.redacted_uri!r})"


class PooledMongoClient(PooledClientMixin, MongoClient):  # type: ignore[type-arg]
    """The app's own client: a ``MongoClient`` whose sessions count themselves."""


class _ProcessClient:
    """The client holder; one per process, rebuilt after fork or a client-settings change."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.client: PooledMongoClient | None = None
        self.pid = os.getpid()
        self.counters = ProcessCounters()
        self.pool = PoolMetrics("sync")
        self.inherited: list[PooledMongoClient] = []
        self.connected_before_fork = False
        self.opened_at_fork = False  # recorded in the parent just before each fork
        # Set only by use_test_client(): replaces the built clients (sync, async) while set.
        self.test_clients: tuple[Any, Any] | None = None

    def adopt_fork(self) -> None:
        """Forget the parent's client in a process whose pid changed (lock held)."""
        if self.client is not None:
            # The parent had opened sockets and monitor threads before forking
            # (e.g. a query at import time under gunicorn --preload): check W004.
            self.connected_before_fork = self.opened_at_fork
            self.inherited.append(self.client)
        self.client = None
        self.pid = os.getpid()
        self.counters = ProcessCounters()
        self.pool = PoolMetrics("sync")

    def current(self) -> None:
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    self.adopt_fork()

    def get(self) -> PooledMongoClient:
        if self.test_clients is not None:
            return self.test_clients[0]  # type: ignore[no-any-return]
        client = self.client
        if client is not None and self.pid == os.getpid():
            return client
        with self.lock:
            if self.pid != os.getpid():
                self.adopt_fork()
            if self.client is None:
                self.client = PooledMongoClient(conf.client_config, self.pool, self.counters)
            return self.client

    def close(self) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self.adopt_fork()
                return
            client, self.client = self.client, None
            # Figures describe one client: a new client starts them from zero.
            self.pool = PoolMetrics("sync")
            self.counters = ProcessCounters()
            if client is not None:
                client.close()


_process = _ProcessClient()


def before_fork() -> None:
    """pymongo resets its clients in the child, so whether ours was connected is seen here."""
    client = _process.client
    _process.opened_at_fork = bool(
        client is not None and _process.pid == os.getpid() and getattr(client, "_opened", False)
    )


def after_fork_in_child() -> None:
    # The lock may have been held by another thread at fork time.
    _process.lock = threading.RLock()


@contextmanager
def use_test_client(client: Any, async_client: Any = None) -> Iterator[Any]:
    """The one override point for tests: while the block runs, ``client`` replaces the process client.

    :func:`get_client`, :func:`get_database` and :func:`request_session` (so
    ``request.mongo_session``) use ``client``; ``get_async_client()`` uses
    ``async_client`` when one is given. ``client`` needs ``start_request_session()``
    (and ``async_client`` too). No real client is built or closed meanwhile.
    Used by the pytest plugin's mongomock tier (:mod:`django_mongopool.testing.mock`).
    """
    previous, _process.test_clients = _process.test_clients, (client, async_client)
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
    _process.current()
    return _process.connected_before_fork


def process_counters() -> ProcessCounters:
    """This process's counters (sessions, 503s, leaked sessions)."""
    _process.current()
    return _process.counters


def sync_pool() -> PoolMetrics:
    """The pool figures of this process's sync client (empty before it is built)."""
    _process.current()
    return _process.pool


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


def reset_client() -> None:
    """Close the client; the next :func:`get_client` builds a new one from the settings."""
    _process.close()


def request_session() -> ClientSession:
    """A new session of the process client for one request (no I/O until it runs a command)."""
    return _process.get().start_request_session()  # type: ignore[no-any-return]
