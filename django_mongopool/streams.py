"""Wrappers for streamed responses that end the request's sessions when the stream ends or closes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator


class ClosingIterator:
    """Wraps a sync stream; calls ``on_close`` on exhaustion, error or ``close()``."""

    def __init__(self, iterator: Iterator[bytes], on_close: Callable[[], None]) -> None:
        self._iterator = iterator
        self._on_close = on_close

    def __iter__(self) -> ClosingIterator:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._iterator)
        except BaseException:
            self.close()
            raise

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
    ) -> None:
        self._iterator = iterator
        self._on_end = on_end
        self._on_close = on_close

    def __aiter__(self) -> AsyncClosingIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._iterator.__anext__()
        except BaseException:
            await self._on_end()
            raise

    def close(self) -> None:
        self._on_close()
