"""Wrappers for streamed responses that end the request's sessions when the stream ends or closes.

While a chunk is produced, the request's context is current again: its clients
(:class:`~django_mongopool.client.RequestClients`), so a stream that uses
``request.mongo_session`` keeps the client that session came from even if a
settings change retired it after the view returned, and its leak-tracking list,
so sessions started while the stream is sent are checked when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from django_mongopool import leaks
from django_mongopool.client import RequestClients, request_clients


class _RequestContext:
    """The request's clients and tracking list, made current around each chunk."""

    __slots__ = ("clients", "tracked")

    def __init__(self, clients: RequestClients | None, tracked: list[leaks.Tracked] | None) -> None:
        self.clients = clients
        self.tracked = tracked


class ClosingIterator:
    """Wraps a sync stream; calls ``on_close`` on exhaustion, error or ``close()``."""

    def __init__(
        self,
        iterator: Iterator[bytes],
        on_close: Callable[[], None],
        clients: RequestClients | None = None,
        tracked: list[leaks.Tracked] | None = None,
    ) -> None:
        self._iterator = iterator
        self._on_close = on_close
        self._context = _RequestContext(clients, tracked)

    def __iter__(self) -> ClosingIterator:
        return self

    def __next__(self) -> bytes:
        pinned = request_clients.set(self._context.clients)
        tracking = leaks.current.set(self._context.tracked)
        try:
            return next(self._iterator)
        except BaseException:
            self.close()
            raise
        finally:
            leaks.current.reset(tracking)
            request_clients.reset(pinned)

    def close(self) -> None:
        try:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close()


class AsyncClosingIterator:
    """Wraps an async stream; awaits ``on_end`` on exhaustion or error, calls ``on_close`` on ``close()``."""

    def __init__(
        self,
        iterator: AsyncIterator[bytes],
        on_end: Callable[[], Awaitable[None]],
        on_close: Callable[[], None],
        clients: RequestClients | None = None,
        tracked: list[leaks.Tracked] | None = None,
    ) -> None:
        self._iterator = iterator
        self._on_end = on_end
        self._on_close = on_close
        self._context = _RequestContext(clients, tracked)

    def __aiter__(self) -> AsyncClosingIterator:
        return self

    async def __anext__(self) -> bytes:
        pinned = request_clients.set(self._context.clients)
        tracking = leaks.current.set(self._context.tracked)
        try:
            return await self._iterator.__anext__()
        except BaseException:
            await self._on_end()
            raise
        finally:
            leaks.current.reset(tracking)
            request_clients.reset(pinned)

    def close(self) -> None:
        self._on_close()
