"""pymongo's ``AsyncMongoClient``, one per event loop, from the same settings.

An ``AsyncMongoClient`` is bound to the loop it first runs on, so each event
loop gets its own client, created lazily by the first coroutine on that loop
that asks, and closed just before that loop closes (the loop's ``close`` is
wrapped for that one loop). Clients are never shared across loops. They share
the process's metrics with the sync client, so the page, the audit and the
heartbeats count their connections and sessions too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from django_mongopool.client import pymongo_internals
from django_mongopool.client.figures import PoolMetrics
from django_mongopool.client.process import (
    PooledClientMixin,
    active_test_clients,
    database_name,
    process_counters,
    usable,
)
from django_mongopool.client.scope import current
from django_mongopool.conf import conf
from django_mongopool.guards import forks


class PooledAsyncMongoClient(PooledClientMixin, AsyncMongoClient):  # type: ignore[type-arg]
    """The app's async client: its sessions count themselves; its pool has its own figures."""

    _mongopool_async = True


pymongo_internals.register_client_class(PooledAsyncMongoClient, is_async=True)

_lock = threading.Lock()
_clients: dict[int, tuple[asyncio.AbstractEventLoop, PooledAsyncMongoClient]] = {}
_loop_numbers = itertools.count(1)
# Per event loop: the request scopes that made an async session on it (until they are freed).
_loop_scopes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[Any]] = (
    weakref.WeakKeyDictionary()
)


@forks.in_child
def forget_all() -> None:
    """In a forked child: the parent's clients are neither used nor closed here."""
    global _lock
    _lock = threading.Lock()  # it may have been held by another thread at fork time
    _clients.clear()
    _loop_scopes.clear()


def end_with_loop(loop: asyncio.AbstractEventLoop, scope: Any) -> None:
    """End ``scope``'s async session (``await scope.end_async_session()``) when ``loop`` winds
    down, if its request has not ended it by then: under WSGI, an async view's event loop
    (``async_to_sync``) closes before the request ends."""
    with _lock:
        entry = _clients.get(id(loop))
        if entry is not None and entry[0] is loop:  # the loop closes an app's client (not a test's)
            _loop_scopes.setdefault(loop, weakref.WeakSet()).add(scope)


def loop_clients() -> list[PooledAsyncMongoClient]:
    """Every event loop's client that is open now."""
    with _lock:
        return [client for _loop, client in _clients.values()]


def loop_pools() -> list[PoolMetrics]:
    """The pool figures of every event loop's client that is open now."""
    return [client._mongopool_pool for client in loop_clients()]


def _close_with_loop(loop: asyncio.AbstractEventLoop, client: PooledAsyncMongoClient) -> None:
    """Close ``client`` when ``loop`` winds down: before its async generators are shut down
    (``asyncio.run`` and pytest-asyncio do that first; a client closed after it is left
    half-open by some pymongo versions), or at the latest in ``loop.close()``."""
    original_close = loop.close
    original_shutdown = loop.shutdown_asyncgens
    closed = False

    def forget() -> None:
        with _lock:
            entry = _clients.get(id(loop))
            if entry is not None and entry[1] is client:
                del _clients[id(loop)]

    async def close_client() -> None:
        nonlocal closed
        if not closed:
            closed = True
            forget()
            with _lock:
                scopes = list(_loop_scopes.pop(loop, ()))
            for scope in scopes:
                with contextlib.suppress(Exception):  # the loop is going away anyway
                    await scope.end_async_session()
            with contextlib.suppress(Exception):  # the loop is going away anyway
                await client.close()

    @functools.wraps(original_shutdown)
    async def shutdown_asyncgens() -> None:
        await close_client()
        loop.shutdown_asyncgens = original_shutdown  # type: ignore[method-assign]
        await original_shutdown()

    @functools.wraps(original_close)
    def close() -> None:
        forget()
        if not closed and not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(close_client())
        loop.close = original_close  # type: ignore[method-assign]
        loop.shutdown_asyncgens = original_shutdown  # type: ignore[method-assign]
        original_close()

    loop.shutdown_asyncgens = shutdown_asyncgens  # type: ignore[method-assign]
    loop.close = close  # type: ignore[method-assign]


def get_async_client() -> PooledAsyncMongoClient:
    """The ``AsyncMongoClient`` of the running event loop (built on first use)."""
    override = active_test_clients()  # process.use_test_client(): the mongomock tier
    if override is not None and override[1] is not None:
        return override[1]  # type: ignore[no-any-return]
    loop = asyncio.get_running_loop()
    pinned = current.get()  # the client of this request's amongo_session()
    if pinned is not None and pinned.loop is loop and usable(pinned.async_client):
        return pinned.async_client  # type: ignore[no-any-return]
    entry = _clients.get(id(loop))
    if entry is not None and entry[0] is loop:
        return entry[1]
    with _lock:
        entry = _clients.get(id(loop))
        if entry is None or entry[0] is not loop:
            pool = PoolMetrics(f"async loop {next(_loop_numbers)}")
            client = PooledAsyncMongoClient(conf.client_config, pool, process_counters())
            _clients[id(loop)] = (loop, client)
            _close_with_loop(loop, client)
            entry = _clients[id(loop)]
    return entry[1]


def hold_async_client() -> PooledAsyncMongoClient:
    """This loop's client, counted as used by one more request until ``release()``."""
    while True:
        client = get_async_client()
        if not isinstance(client, PooledClientMixin) or client.hold():
            return client  # a test client (use_test_client) is never retired


def get_async_database(name: str | None = None) -> AsyncDatabase[Any]:
    """A database of this loop's async client: ``name`` or ``MONGOPOOL_DATABASE``."""
    return get_async_client()[database_name(name, "get_async_database")]


def reset_async_clients() -> None:
    """Retire every loop's client (settings changed): each is closed on its own loop once
    no request uses it (or after the grace period), like the sync client."""
    with _lock:
        entries = list(_clients.values())
        _clients.clear()
    for loop, client in entries:
        # A loop that is not running then closes its client when it closes (_close_with_loop).
        client.retire(functools.partial(run_on_loop, client.close, loop, wait=False))


def run_on_loop(
    make: Callable[[], Coroutine[Any, Any, Any]], loop: asyncio.AbstractEventLoop, *, wait: bool
) -> None:
    """Run the coroutine ``make()`` on ``loop`` from wherever this is called.

    On that loop itself: as a task. From another thread while it runs: handed over
    (and, with ``wait``, waited for up to 10 s). A closed or idle loop runs nothing.
    """
    if loop.is_closed():
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(make())
    elif loop.is_running():
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        if wait:
            future.result(timeout=10)
