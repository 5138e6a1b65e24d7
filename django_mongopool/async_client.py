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
import os
import threading
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from django_mongopool.client import PooledClientMixin, database_name, get_config, get_metrics


class PooledAsyncMongoClient(PooledClientMixin, AsyncMongoClient):  # type: ignore[type-arg]
    """The app's async client: counts the sessions it starts and ends."""

    def _counted_end(self, session: AsyncClientSession, end: Any) -> Any:
        metrics = self._mongopool_metrics

        @functools.wraps(end)
        async def counted_end(lock: bool) -> None:
            was_open = not session.has_ended
            await end(lock)
            if was_open:
                metrics.count("sessions_ended")

        return counted_end


_lock = threading.Lock()
_clients: dict[int, tuple[asyncio.AbstractEventLoop, PooledAsyncMongoClient]] = {}


def _forget_all() -> None:
    # A forked child gets fresh clients; the parent's are neither used nor closed here.
    _clients.clear()


os.register_at_fork(after_in_child=_forget_all)


def _close_with_loop(loop: asyncio.AbstractEventLoop, client: PooledAsyncMongoClient) -> None:
    original_close = loop.close

    @functools.wraps(original_close)
    def close() -> None:
        with _lock:
            entry = _clients.get(id(loop))
            if entry is not None and entry[1] is client:
                del _clients[id(loop)]
        if not loop.is_closed() and not loop.is_running():
            with contextlib.suppress(Exception):  # the loop is going away anyway
                loop.run_until_complete(client.close())
        loop.close = original_close  # type: ignore[method-assign]
        original_close()

    loop.close = close  # type: ignore[method-assign]


def get_async_client() -> PooledAsyncMongoClient:
    """The ``AsyncMongoClient`` of the running event loop (built on first use)."""
    loop = asyncio.get_running_loop()
    entry = _clients.get(id(loop))
    if entry is not None and entry[0] is loop:
        return entry[1]
    with _lock:
        entry = _clients.get(id(loop))
        if entry is None or entry[0] is not loop:
            client = PooledAsyncMongoClient(get_config(), get_metrics())
            _clients[id(loop)] = (loop, client)
            _close_with_loop(loop, client)
            entry = _clients[id(loop)]
    return entry[1]


def get_async_database(name: str | None = None) -> AsyncDatabase:  # type: ignore[type-arg]
    """A database of this loop's async client: ``name`` or ``MONGOPOOL_DATABASE``."""
    return get_async_client()[database_name(name, "get_async_database")]


def reset_async_clients() -> None:
    """Forget every loop's client (settings changed); each is closed on its own loop."""
    with _lock:
        entries = list(_clients.values())
        _clients.clear()
    for loop, client in entries:
        # A loop that is not running now closes its client when it closes (see _close_with_loop).
        run_on_loop(client.close, loop, wait=False)


def run_on_loop(make: Any, loop: asyncio.AbstractEventLoop, *, wait: bool) -> None:
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
