"""``request.mongo_session`` and ``await request.amongo_session()``: sessions that always end.

The session is created the first time a view touches ``request.mongo_session``
(like ``request.user``; the view gets pymongo's real ``ClientSession``) or awaits
``request.amongo_session()`` (an ``AsyncClientSession`` of the running loop's
client), and ended after the response, when the view raises or is cancelled, or,
for streaming responses, when the stream is exhausted or closed by the server.
pymongo errors that mean "the database is unreachable or the pool is
exhausted" become an HTTP 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from pymongo.client_session import ClientSession
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


class RequestSession:
    """The sessions of one request: created on first use, ended exactly once.

    It also holds the sessions user code started during the request, checked
    for leaks when the request (or its stream) ends.
    """

    __slots__ = ("session", "async_entry", "ended", "tracked")

    def __init__(self) -> None:
        self.session: ClientSession | None = None
        self.async_entry: tuple[Any, asyncio.AbstractEventLoop] | None = None
        self.ended = False
        self.tracked: list[sessions.Tracked] = []

    @property
    def started(self) -> bool:
        return self.session is not None

    def get(self) -> ClientSession:
        with _create_lock:
            if self.ended:
                raise RuntimeError("request.mongo_session was used after its request ended.")
            if self.session is None:
                self.session = get_client().start_request_session()
            return self.session

    async def aget(self) -> Any:
        if self.ended:
            raise RuntimeError("request.amongo_session() was used after its request ended.")
        if self.async_entry is None:
            from django_mongopool.async_client import get_async_client

            self.async_entry = (
                get_async_client().start_request_session(),
                asyncio.get_running_loop(),
            )
        return self.async_entry[0]

    async def aend(self, request: HttpRequest | None = None, may_raise: bool = False) -> None:
        """End both sessions from the event loop (ASGI)."""
        entry, self.async_entry = self.async_entry, None
        if entry is not None:
            await _end_async(entry[0])
        self.end(request, may_raise)

    def end(self, request: HttpRequest | None = None, may_raise: bool = False) -> None:
        if self.ended:
            return
        with _create_lock:
            session, self.session = self.session, None
            async_entry, self.async_entry = self.async_entry, None
            self.ended = True
        if async_entry is not None:
            _end_async_from_thread(*async_entry)
        if session is not None:
            try:
                session.end_session()
            except PyMongoError:
                logger.warning("Ending request.mongo_session failed", exc_info=True)
        if self.tracked:
            where = (
                f"{request.method} {request.path}" if request is not None else "a streamed response"
            )
            sessions.report(sessions.leaked(self.tracked), where, may_raise=may_raise)


class _MongoSessionAttribute:
    """``request.mongo_session``: starts the real ``ClientSession`` on first access, then caches it.

    A non-data descriptor (like ``cached_property``): once created, the session sits in
    the request's ``__dict__`` and later reads are plain attribute reads. pymongo gets the
    real ``ClientSession``, not a proxy.
    """

    def __get__(self, request: Any, owner: type | None = None) -> Any:
        if request is None:
            return self
        session = request.__dict__["_mongopool"].get()
        request.__dict__["mongo_session"] = session
        return session


_request_classes: dict[type, type] = {}


def _with_session_attribute(cls: type) -> type:
    """A subclass of the request's class that adds ``mongo_session`` (made once per class)."""
    if "mongo_session" in cls.__dict__:
        return cls
    subclass = _request_classes.get(cls)
    if subclass is None:
        subclass = _request_classes[cls] = type(
            cls.__name__,
            (cls,),
            {"mongo_session": _MongoSessionAttribute(), "__module__": cls.__module__},
        )
    return subclass


async def _end_async(session: Any) -> None:
    try:
        await session.end_session()
    except PyMongoError:
        logger.warning("Ending request.amongo_session() failed", exc_info=True)


def _end_async_from_thread(session: Any, loop: asyncio.AbstractEventLoop) -> None:
    """End an async session from outside its loop (a sync close of a streamed response)."""
    from django_mongopool.async_client import run_on_loop

    # A closed loop closed its client, and the session with it.
    run_on_loop(lambda: _end_async(session), loop, wait=True)


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
        self._on_close = holder.end

    def __aiter__(self) -> _AsyncClosingIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._iterator.__anext__()
        except BaseException:
            await self._holder.aend()
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
        token = sessions.current.set(holder.tracked)
        try:
            response = self.get_response(request)
        except BaseException:
            holder.end()
            raise
        finally:
            sessions.current.reset(token)
        return self._finish(request, response, holder)

    async def __acall__(self, request: HttpRequest) -> Any:
        holder = self._attach(request)
        token = sessions.current.set(holder.tracked)
        try:
            response = await self.get_response(request)
        except BaseException:  # including asyncio.CancelledError on client disconnect
            await holder.aend()
            raise
        finally:
            sessions.current.reset(token)
        if not isinstance(response, StreamingHttpResponse):
            await holder.aend(request, may_raise=True)
            return response
        return self._finish(request, response, holder)

    def _attach(self, request: HttpRequest) -> RequestSession:
        if not heartbeat.running_here:
            heartbeat.ensure_started()
        holder = RequestSession()
        state = request.__dict__
        state["_mongopool"] = holder
        state["amongo_session"] = holder.aget
        request.__class__ = _with_session_attribute(request.__class__)
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
                    holder.end,
                )
        else:
            holder.end(request, may_raise=True)
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
