"""Build, hand out, reset and close the one ``MongoClient`` of this process.

Fork safety: the client belongs to the process that built it. A child forked
after that (gunicorn ``--preload``, uWSGI without lazy-apps, multiprocessing)
never touches the parent's client: :func:`get_client` sees a new pid and
builds the child's own. The inherited object is kept referenced, never used
and never closed, so the parent's sockets are left alone and pymongo has no
reason to warn "MongoClient opened before fork".
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database

from django_mongopool import sessions
from django_mongopool.monitoring import CommandCounter, PoolListener, PoolMetrics
from django_mongopool.options import DATABASE_SETTING, ClientConfig, load_config


class PooledClientMixin:
    """What the app's sync and async clients share: listeners, connect=False, session counts."""

    _mongopool_own = True  # not a stray client
    _mongopool_metrics: PoolMetrics
    _mongopool_config: ClientConfig

    def __init__(self, config: ClientConfig, metrics: PoolMetrics) -> None:
        self._mongopool_metrics = metrics
        self._mongopool_config = config
        listeners = list(config.kwargs.get("event_listeners", ()))
        listeners.append(PoolListener(metrics))
        if config.command_metrics:  # opt-in: pymongo builds two event objects per command
            listeners.append(CommandCounter(metrics))
        kwargs = {k: v for k, v in config.kwargs.items() if k != "event_listeners"}
        super().__init__(config.uri, connect=False, event_listeners=listeners, **kwargs)  # type: ignore[call-arg]

    def start_session(self, *args: Any, **kwargs: Any) -> Any:
        session = self._start_counted_session(*args, **kwargs)
        sessions.record(session, sys._getframe(1))
        return session

    def start_request_session(self) -> Any:
        """The session behind ``request.mongo_session`` / ``amongo_session()`` (never tracked)."""
        return self._start_counted_session()

    def _start_counted_session(self, *args: Any, **kwargs: Any) -> Any:
        session = super().start_session(*args, **kwargs)  # type: ignore[misc]
        self._mongopool_metrics.count("sessions_started")
        session._end_session = self._counted_end(session, session._end_session)
        return session

    def _counted_end(self, session: Any, end: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._mongopool_config.redacted_uri!r})"


class PooledMongoClient(PooledClientMixin, MongoClient):  # type: ignore[type-arg]
    """The app's own client: a ``MongoClient`` that counts the sessions it starts and ends."""

    def _counted_end(self, session: ClientSession, end: Any) -> Any:
        metrics = self._mongopool_metrics

        @functools.wraps(end)
        def counted_end(lock: bool) -> None:
            was_open = not session.has_ended
            end(lock)
            if was_open:
                metrics.count("sessions_ended")

        return counted_end


class _ProcessClient:
    """The client holder; one per process, rebuilt after fork or a settings change."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.client: PooledMongoClient | None = None
        self.config: ClientConfig | None = None
        self.pid = os.getpid()
        self.metrics = PoolMetrics()
        self.inherited: list[PooledMongoClient] = []
        self.connected_before_fork = False
        self.opened_at_fork = False  # recorded in the parent just before each fork

    def _adopt_fork(self) -> None:
        # Called with the lock held, in a process whose pid changed.
        if self.client is not None:
            # The parent had opened sockets and monitor threads before forking
            # (e.g. a query at import time under gunicorn --preload): check W004.
            self.connected_before_fork = self.opened_at_fork
            self.inherited.append(self.client)
        self.client = None
        self.pid = os.getpid()
        self.metrics = PoolMetrics()

    def get(self) -> PooledMongoClient:
        client = self.client
        if client is not None and self.pid == os.getpid():
            return client
        with self.lock:
            if self.pid != os.getpid():
                self._adopt_fork()
            if self.client is None:
                # Counters describe one client: close() and a fork start them from zero.
                self.config = load_config()
                self.client = PooledMongoClient(self.config, self.metrics)
            return self.client

    def get_config(self) -> ClientConfig:
        self.get()
        assert self.config is not None
        return self.config

    def close(self) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self._adopt_fork()
                return
            client, self.client = self.client, None
            self.metrics = PoolMetrics()
            if client is not None:
                client.close()


_process = _ProcessClient()


def _before_fork() -> None:
    # pymongo resets its clients in the child, so whether ours was connected
    # can only be seen here, in the parent. No locks: this runs inside fork().
    client = _process.client
    _process.opened_at_fork = bool(
        client is not None and _process.pid == os.getpid() and getattr(client, "_opened", False)
    )


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at fork time.
    _process.lock = threading.RLock()


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
atexit.register(_process.close)


def get_client() -> PooledMongoClient:
    """The process-wide client (built on first use in each process)."""
    return _process.get()


def connected_before_fork() -> bool:
    """True in a forked child whose parent's client was already connected at fork time."""
    get_metrics()  # adopts the fork if this process has not looked yet
    return _process.connected_before_fork


def get_config() -> ClientConfig:
    """The validated configuration the current client was built from."""
    return _process.get_config()


def get_metrics() -> PoolMetrics:
    """The counters of this process's current client (empty before it is built)."""
    if _process.pid != os.getpid():
        with _process.lock:
            if _process.pid != os.getpid():
                _process._adopt_fork()
    return _process.metrics


def database_name(name: str | None, caller: str = "get_database") -> str:
    """``name``, else ``MONGOPOOL_DATABASE`` or the URI's database; says how to fix neither."""
    name = name or get_config().database
    if not name:
        raise ImproperlyConfigured(
            f"{caller}() needs a name: set {DATABASE_SETTING}, put the database in the "
            f"MONGOPOOL_URI path (mongodb://host/dbname), or pass {caller}('name')."
        )
    return name


def get_database(name: str | None = None) -> Database:  # type: ignore[type-arg]
    """A database of the process-wide client: ``name`` or ``MONGOPOOL_DATABASE``."""
    return get_client()[database_name(name)]


def reset_client() -> None:
    """Close the client; the next :func:`get_client` builds a new one from the settings."""
    _process.close()


def build_client() -> PooledMongoClient:
    """Validate the settings and build the client now (no network I/O)."""
    return _process.get()
