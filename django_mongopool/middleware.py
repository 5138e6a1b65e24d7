"""``request.mongo_session``: a lazily started ``ClientSession`` that always ends.

The session is created the first time a view touches ``request.mongo_session``
(like ``request.user``) and ended in a ``finally`` after the response, or, for
streaming responses, when the stream is exhausted or closed by the server.
pymongo errors that mean "the database is unreachable or the pool is
exhausted" become an HTTP 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.functional import SimpleLazyObject
from pymongo.client_session import ClientSession
from pymongo.errors import ConnectionFailure, PyMongoError

from django_mongopool import heartbeat, sessions
from django_mongopool.client import get_client, get_config, get_metrics

logger = logging.getLogger("django_mongopool")

UNAVAILABLE_MESSAGE = (
    "The database is temporarily unavailable (it could not be reached, or every pooled "
    "connection is busy). Please retry shortly."
)


class RequestSession:
    """Owns the lazily created session of one request; ending is idempotent.

    It also holds the list of sessions user code started during the request,
    checked for leaks when the request (or its stream) ends.
    """

    def __init__(self, tracked: list[sessions.Tracked]) -> None:
        self._lock = threading.Lock()
        self._session: ClientSession | None = None
        self._ended = False
        self.tracked = tracked

    @property
    def started(self) -> bool:
        return self._session is not None

    def get(self) -> ClientSession:
        with self._lock:
            if self._ended:
                raise RuntimeError("request.mongo_session was used after its request ended.")
            if self._session is None:
                self._session = get_client().start_request_session()
            return self._session

    def end(self, where: str = "a streamed response", may_raise: bool = False) -> None:
        with self._lock:
            session, self._session = self._session, None
            already, self._ended = self._ended, True
        if session is not None:
            try:
                session.end_session()
            except PyMongoError:
                logger.warning("Ending request.mongo_session failed", exc_info=True)
        if not already:
            sessions.report(sessions.leaked(self.tracked), where, may_raise=may_raise)


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
    """Wraps an async stream; ends the session on exhaustion, error or ``close()``."""

    def __init__(self, iterator: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        self._iterator = iterator
        self._on_close = on_close

    def __aiter__(self) -> _AsyncClosingIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._iterator.__anext__()
        except BaseException:
            self._on_close()
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
        holder, token = self._attach(request)
        try:
            response = self.get_response(request)
        except BaseException:
            holder.end()
            raise
        finally:
            sessions.stop(token)
        return self._finish(request, response, holder)

    async def __acall__(self, request: HttpRequest) -> Any:
        holder, token = self._attach(request)
        try:
            response = await self.get_response(request)
        except BaseException:  # including asyncio.CancelledError on client disconnect
            holder.end()
            raise
        finally:
            sessions.stop(token)
        return self._finish(request, response, holder)

    def _attach(self, request: HttpRequest) -> tuple[RequestSession, Any]:
        heartbeat.ensure_started()
        tracked, token = sessions.start()
        holder = RequestSession(tracked)
        request.mongo_session = SimpleLazyObject(holder.get)  # type: ignore[attr-defined]
        request._mongopool_session = holder  # type: ignore[attr-defined]
        return holder, token

    def _finish(
        self, request: HttpRequest, response: HttpResponseBase, holder: RequestSession
    ) -> HttpResponseBase:
        # A stream may touch request.mongo_session only while it is consumed,
        # so every stream ends the session when it finishes or is closed.
        if isinstance(response, StreamingHttpResponse):
            if response.is_async:
                response.streaming_content = _AsyncClosingIterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    holder.end,
                )
            else:
                response.streaming_content = _ClosingIterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    holder.end,
                )
        else:
            holder.end(f"{request.method} {request.path}", may_raise=True)
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
