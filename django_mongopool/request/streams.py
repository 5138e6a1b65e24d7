"""Wrappers for streamed responses that end the request's sessions when the stream ends or closes.

While a chunk is produced, the request's scope (:class:`~django_mongopool.client.scope.RequestScope`)
is current again: its clients, so a stream that uses ``request.mongo_session`` keeps
the client that session came from even if a settings change retired it after the
view returned, and its leak-tracking list, so sessions started while the stream is
sent are checked when it ends.

A MongoDB outage met by a stream: the middleware produces the stream's first non-empty
chunk (:meth:`ClosingIterator.prime`) before it hands the response on, so an error that
means "MongoDB cannot serve this now" raised before the first byte becomes the same 503
as any view's. One raised after the first byte ends the stream there, logged once without
credentials (:func:`~django_mongopool.request.unavailable.stream_cut`), instead of reaching the
server as a traceback.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from django.http import HttpRequest, HttpResponseBase

from django_mongopool.client.scope import RequestScope, current
from django_mongopool.request.unavailable import stream_cut, unavailable_cause


def _cuts_the_stream(exc: BaseException, chunks_sent: int) -> bool:
    """An outage after the first byte: the stream ends instead of raising."""
    return chunks_sent > 0 and isinstance(exc, Exception) and unavailable_cause(exc) is not None


def discard(response: HttpResponseBase) -> None:
    """Release a streamed response that is replaced before it was sent (the 503): its
    resources are closed, without the ``request_finished`` signal its ``close()`` would send
    (the response that replaces it sends that)."""
    closers = getattr(response, "_resource_closers", None) or []
    for closer in closers:
        with contextlib.suppress(Exception):  # as HttpResponseBase.close() does
            closer()
    closers.clear()


class ClosingIterator:
    """Wraps a sync stream; calls ``on_close`` on exhaustion, error or ``close()``."""

    def __init__(
        self,
        iterator: Iterator[bytes],
        on_close: Callable[[], None],
        scope: RequestScope | None = None,
        request: HttpRequest | None = None,
    ) -> None:
        self._iterator = iterator
        self._on_close = on_close
        self._scope = scope
        self._request = request
        self._ahead: deque[bytes] = deque()  # produced by prime(), not yet handed on
        self._chunks = 0  # non-empty chunks produced
        self._done = False

    def __iter__(self) -> ClosingIterator:
        return self

    def prime(self) -> None:
        """Produce the chunks up to the first non-empty one now; raises what the stream raises."""
        while not self._done:
            try:
                chunk = self._next()
            except StopIteration:
                return
            self._ahead.append(chunk)
            if chunk:
                return

    def __next__(self) -> bytes:
        if self._ahead:
            return self._ahead.popleft()
        if self._done:
            raise StopIteration
        return self._next()

    def _next(self) -> bytes:
        token = current.set(self._scope)
        try:
            chunk = next(self._iterator)
        except BaseException as exc:
            self._done = True
            self.close()
            if _cuts_the_stream(exc, self._chunks):
                stream_cut(self._request, exc, self._chunks)
                raise StopIteration from None
            raise
        finally:
            current.reset(token)
        if chunk:
            self._chunks += 1
        return chunk

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
        request: HttpRequest | None = None,
    ) -> None:
        self._iterator = iterator
        self._on_end = on_end
        self._on_close = on_close
        self._scope = scope
        self._request = request
        self._ahead: deque[bytes] = deque()
        self._chunks = 0
        self._done = False

    def __aiter__(self) -> AsyncClosingIterator:
        return self

    async def aprime(self) -> None:
        """Produce the chunks up to the first non-empty one now; raises what the stream raises."""
        while not self._done:
            try:
                chunk = await self._anext()
            except StopAsyncIteration:
                return
            self._ahead.append(chunk)
            if chunk:
                return

    async def __anext__(self) -> bytes:
        if self._ahead:
            return self._ahead.popleft()
        if self._done:
            raise StopAsyncIteration
        return await self._anext()

    async def _anext(self) -> bytes:
        token = current.set(self._scope)
        try:
            chunk = await self._iterator.__anext__()
        except BaseException as exc:
            self._done = True
            await self._on_end()
            if _cuts_the_stream(exc, self._chunks):
                stream_cut(self._request, exc, self._chunks)
                raise StopAsyncIteration from None
            raise
        finally:
            current.reset(token)
        if chunk:
            self._chunks += 1
        return chunk

    def close(self) -> None:
        self._on_close()
