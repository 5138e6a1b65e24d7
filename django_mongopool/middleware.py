"""``request.mongo_session``: a lazily started ``ClientSession`` that always ends.

The session is created the first time a view touches ``request.mongo_session``
(like ``request.user``) and ended in a ``finally`` after the response, or, for
streaming responses, when the stream is exhausted or closed by the server.
pymongo errors that mean "the database is unreachable or the pool is
exhausted" become an HTTP 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.functional import SimpleLazyObject, empty
from pymongo.errors import ConnectionFailure, PyMongoError

from django_mongopool import heartbeat, sessions
from django_mongopool.client import get_client, get_config, get_metrics

logger = logging.getLogger("django_mongopool")

UNAVAILABLE_MESSAGE = (
    "The database is temporarily unavailable (it could not be reached, or every pooled "
    "connection is busy). Please retry shortly."
)


# Guards the rare race of two threads creating (or ending) one request's session.
_create_lock = threading.Lock()


class RequestSession(SimpleLazyObject):
    """``request.mongo_session`` itself: a lazy proxy to a ``ClientSession`` that it also ends.

    One small object per request (built for every request, so it goes around
    LazyObject's slow Python-level attribute hooks). Its own state lives under
    ``_mongopool_*`` names, which no ``ClientSession`` attribute uses.
    """

    def __init__(self) -> None:
        state = object.__getattribute__(self, "__dict__")
        state["_wrapped"] = empty
        state["_mongopool_ended"] = False
        state["_mongopool_tracked"] = []
        state["_mongopool_async"] = None  # (AsyncClientSession, its loop) once asked for

    def _setup(self) -> None:
        with _create_lock:
            state = object.__getattribute__(self, "__dict__")
            if state["_mongopool_ended"]:
                raise RuntimeError("request.mongo_session was used after its request ended.")
            if state["_wrapped"] is empty:
                state["_wrapped"] = get_client().start_request_session()

    def __copy__(self) -> RequestSession:
        return self  # one request, one session

    def __deepcopy__(self, memo: dict[int, Any]) -> RequestSession:
        return self

    def _mongopool_started(self) -> bool:
        return object.__getattribute__(self, "__dict__")["_wrapped"] is not empty

    async def _mongopool_asession(self) -> Any:
        """``await request.amongo_session()``: this request's AsyncClientSession (this loop's client)."""
        state = object.__getattribute__(self, "__dict__")
        if state["_mongopool_ended"]:
            raise RuntimeError("request.amongo_session() was used after its request ended.")
        entry = state["_mongopool_async"]
        if entry is None:
            from django_mongopool.async_client import get_async_client

            entry = state["_mongopool_async"] = (
                get_async_client().start_request_session(),
                asyncio.get_running_loop(),
            )
        return entry[0]

    async def _mongopool_aend(
        self, request: HttpRequest | None = None, may_raise: bool = False
    ) -> None:
        """End both sessions from the event loop (async responses, ASGI)."""
        state = object.__getattribute__(self, "__dict__")
        entry, state["_mongopool_async"] = state["_mongopool_async"], None
        if entry is not None:
            await _end_async(entry[0])
        RequestSession._mongopool_end(self, request, may_raise)

    def _mongopool_end(self, request: HttpRequest | None = None, may_raise: bool = False) -> None:
        state = object.__getattribute__(self, "__dict__")
        if state["_mongopool_ended"]:
            return
        with _create_lock:
            session, state["_wrapped"] = state["_wrapped"], empty
            state["_mongopool_ended"] = True
            async_entry, state["_mongopool_async"] = state["_mongopool_async"], None
        if async_entry is not None:
            _end_async_from_thread(*async_entry)
        if session is not empty:
            try:
                session.end_session()
            except PyMongoError:
                logger.warning("Ending request.mongo_session failed", exc_info=True)
        tracked = state["_mongopool_tracked"]
        if tracked:
            where = (
                f"{request.method} {request.path}" if request is not None else "a streamed response"
            )
            sessions.report(sessions.leaked(tracked), where, may_raise=may_raise)


async def _end_async(session: Any) -> None:
    try:
        await session.end_session()
    except PyMongoError:
        logger.warning("Ending request.amongo_session() failed", exc_info=True)


def _end_async_from_thread(session: Any, loop: asyncio.AbstractEventLoop) -> None:
    """End an async session from outside its loop (a sync close of a streamed response)."""
    if loop.is_closed():
        return  # its client was closed with the loop
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(_end_async(session))
    elif loop.is_running():
        asyncio.run_coroutine_threadsafe(_end_async(session), loop).result(timeout=10)


def _tracked(proxy: RequestSession) -> list[sessions.Tracked]:
    return object.__getattribute__(proxy, "__dict__")["_mongopool_tracked"]  # type: ignore[no-any-return]


class _ClosingIterator:
    """Wraps a sync stream; ends the session on exhaustion or ``close()``."""

    def __init__(self, iterator: Iterator[bytes], on_close: Callable[[], None]) -> None:
        self._iterator = iterator
        self._on_close = on_close

    def __iter__(self) -> _ClosingIterator:
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


class _AsyncClosingIterator:
    """Wraps an async stream; ends the sessions on exhaustion, error or ``close()``."""

    def __init__(self, iterator: AsyncIterator[bytes], holder: RequestSession) -> None:
        self._iterator = iterator
        self._holder = holder
        self._on_close = functools.partial(RequestSession._mongopool_end, holder)

    def __aiter__(self) -> _AsyncClosingIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._iterator.__anext__()
        except BaseException:
            await RequestSession._mongopool_aend(self._holder)
            raise

    def close(self) -> None:
        self._on_close()


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 a request gets when MongoDB cannot serve it in time."""
    retry_after = str(get_config().retry_after)
    if "application/json" in request.headers.get("Accept", ""):
        response = HttpResponse(
            json.dumps({"error": "database_unavailable", "detail": UNAVAILABLE_MESSAGE}),
            status=503,
            content_type="application/json",
        )
    else:
        response = HttpResponse(
            UNAVAILABLE_MESSAGE, status=503, content_type="text/plain; charset=utf-8"
        )
    response["Retry-After"] = retry_after
    return response


def is_unavailable_error(exc: BaseException) -> bool:
    """True for errors that mean 'retry later': unreachable server, exhausted pool, timeouts."""
    return isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout)


class MongoSessionMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        holder = self._attach(request)
        token = sessions.current.set(_tracked(holder))
        try:
            response = self.get_response(request)
        except BaseException:
            RequestSession._mongopool_end(holder)
            raise
        finally:
            sessions.current.reset(token)
        return self._finish(request, response, holder)

    async def __acall__(self, request: HttpRequest) -> Any:
        holder = self._attach(request)
        token = sessions.current.set(_tracked(holder))
        try:
            response = await self.get_response(request)
        except BaseException:  # including asyncio.CancelledError on client disconnect
            await RequestSession._mongopool_aend(holder)
            raise
        finally:
            sessions.current.reset(token)
        if not isinstance(response, StreamingHttpResponse):
            await RequestSession._mongopool_aend(holder, request, may_raise=True)
            return response
        return self._finish(request, response, holder)

    def _attach(self, request: HttpRequest) -> RequestSession:
        if not heartbeat.running_here:
            heartbeat.ensure_started()
        holder = request.mongo_session = RequestSession()  # type: ignore[attr-defined]
        request.amongo_session = types.MethodType(RequestSession._mongopool_asession, holder)  # type: ignore[attr-defined]
        return holder

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, holder: RequestSession
    ) -> HttpResponseBase:
        # A stream may touch request.mongo_session only while it is consumed,
        # so every stream ends the session when it finishes or is closed.
        if isinstance(response, StreamingHttpResponse):
            if response.is_async:
                response.streaming_content = _AsyncClosingIterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    holder,
                )
            else:
                response.streaming_content = _ClosingIterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    functools.partial(RequestSession._mongopool_end, holder),
                )
        else:
            RequestSession._mongopool_end(holder, request, may_raise=True)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_unavailable_error(exception):
            return None
        get_metrics().count("unavailable_responses")
        logger.warning(
            "MongoDB unavailable for %s %s: %s",
            request.method,
            request.path,
            type(exception).__name__,
        )
        return unavailable_response(request)
