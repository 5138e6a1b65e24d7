"""Wrappers for streamed responses that end the request's sessions when the stream ends or closes.

While a chunk is produced, the request's scope (:class:`~django_mongopool.scope.RequestScope`)
is current again: its clients, so a stream that uses ``request.mongo_session`` keeps
the client that session came from even if a settings change retired it after the
view returned, and its leak-tracking list, so sessions started while the stream is
sent are checked when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from django_mongopool.scope import RequestScope, current


class ClosingIterator:
    """Wraps a sync stream; calls ``on_close`` on exhaustion, error or ``close()``."""

    def __init__(
        self,
        iterator: Iterator[bytes],
        on_close: Callable[[], None],
        scope: RequestScope | None = None,
    ) -> None:
        self._iterator = iterator
        self._on_close = on_close
        self._scope = scope

    def __iter__(self) -> ClosingIterator:
        return self

    def __next__(self) -> bytes:
        token = current.set(self._scope)
        try:
            return next(self._iterator)
        except BaseException:
            self.close()
            raise
        finally:
            current.reset(token)

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
        scope: RequestScope | None = None,
    ) -> None:
        self._iterator = iterator
        self._on_end = on_end
        self._on_close = on_close
        self._scope = scope

    def __aiter__(self) -> AsyncClosingIterator:
        return self

    async def __anext__(self) -> bytes:
        token = current.set(self._scope)
        try:
            return await self._iterator.__anext__()
        except BaseException:
            await self._on_end()
            raise
        finally:
            current.reset(token)

    def close(self) -> None:
        self._on_close()
