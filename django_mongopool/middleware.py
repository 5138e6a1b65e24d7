"""``request.mongo_session`` and ``await request.amongo_session()``: sessions that always end.

``request.mongo_session`` is an ordinary attribute holding pymongo's real
``ClientSession`` of the process client, set before the view runs (pymongo
builds it without any I/O; it talks to the server only when a command uses it).
``await request.amongo_session()`` gives an ``AsyncClientSession`` of the running
loop's client, started on first use. Both are ended after the response, when the
view raises or is cancelled, or, for streaming responses, when the stream is
exhausted or closed. Errors meaning "MongoDB cannot serve this now" become a 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from pymongo.client_session import ClientSession
from pymongo.errors import PyMongoError

from django_mongopool import leaks
from django_mongopool.async_client import hold_async_client, run_on_loop
from django_mongopool.client import (
    RequestClients,
    get_config,
    process_counters,
    release_request,
    request_clients,
    request_session,
)
from django_mongopool.conf import conf
from django_mongopool.streams import AsyncClosingIterator, ClosingIterator
from django_mongopool.unavailable import (
    log_unavailable,
    reason,
    unavailable_cause,
    unavailable_response,
)

logger = logging.getLogger("django_mongopool")


class RequestSessions:
    """The sessions of one request, ended exactly once; also the sessions user code started."""

    __slots__ = ("session", "async_entry", "ended", "tracked", "clients")

    def __init__(self, session: ClientSession | None) -> None:
        self.session = session
        self.async_entry: tuple[Any, asyncio.AbstractEventLoop] | None = None
        self.ended = False
        self.tracked: list[leaks.Tracked] = []
        # The request keeps using the clients its sessions came from (see client.RequestClients).
        self.clients = RequestClients(getattr(session, "client", None))

    async def aget(self) -> Any:
        """``await request.amongo_session()``: this request's session of the loop's async client."""
        if self.ended:
            raise RuntimeError("request.amongo_session() was used after its request ended.")
        if self.async_entry is None:
            client = hold_async_client()
            self.async_entry = (client.start_request_session(), asyncio.get_running_loop())
            self.clients.async_client, self.clients.loop = client, self.async_entry[1]
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
        self.ended = True
        session, self.session = self.session, None
        async_entry, self.async_entry = self.async_entry, None
        if async_entry is not None:
            # A stream closed from a thread: end the session on its own loop.
            run_on_loop(lambda: _end_async(async_entry[0]), async_entry[1], wait=True)
        if session is not None:
            try:
                session.end_session()
            except PyMongoError:
                logger.warning("Ending request.mongo_session failed", exc_info=True)
            finally:
                release_request(session)  # a retired client closes after its last request
        found = leaks.leaked(self.tracked)
        if found:
            process_counters().count("leaked_sessions", len(found))
            where = (
                f"{request.method} {request.path}" if request is not None else "a streamed response"
            )
            leaks.report(found, where, may_raise=may_raise)


async def _end_async(session: Any) -> None:
    try:
        await session.end_session()
    except PyMongoError:
        logger.warning("Ending request.amongo_session() failed", exc_info=True)
    finally:
        release_request(session)


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
        sessions = self._attach(request)
        token = leaks.current.set(sessions.tracked)
        pinned = request_clients.set(sessions.clients)
        try:
            response = self.get_response(request)
        except BaseException:
            sessions.end()
            raise
        finally:
            request_clients.reset(pinned)
            leaks.current.reset(token)
        return self._finish(request, response, sessions)

    async def __acall__(self, request: HttpRequest) -> Any:
        sessions = self._attach(request)
        token = leaks.current.set(sessions.tracked)
        pinned = request_clients.set(sessions.clients)
        try:
            response = await self.get_response(request)
        except BaseException:  # including asyncio.CancelledError on client disconnect
            await sessions.aend()
            raise
        finally:
            request_clients.reset(pinned)
            leaks.current.reset(token)
        if not isinstance(response, StreamingHttpResponse):
            await sessions.aend(request, may_raise=True)
            return response
        return self._finish(request, response, sessions)

    @staticmethod
    def _attach(request: HttpRequest) -> RequestSessions:
        # Without MONGOPOOL_URI (check E001) requests that do not use MongoDB still work.
        sessions = RequestSessions(request_session() if conf.uri_is_set else None)
        request.mongo_session = sessions.session  # type: ignore[attr-defined]
        request.amongo_session = sessions.aget  # type: ignore[attr-defined]
        request._mongopool = sessions  # type: ignore[attr-defined]
        return sessions

    @staticmethod
    def _finish(
        request: HttpRequest, response: HttpResponseBase, sessions: RequestSessions
    ) -> HttpResponseBase:
        # A stream may use request.mongo_session while it is consumed, so every stream
        # ends the sessions when it finishes or is closed.
        if isinstance(response, StreamingHttpResponse):
            if response.is_async:
                response.streaming_content = AsyncClosingIterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    sessions.aend,
                    sessions.end,
                    sessions.clients,
                    sessions.tracked,
                )
            else:
                response.streaming_content = ClosingIterator(
                    response.streaming_content,  # type: ignore[arg-type]
                    sessions.end,
                    sessions.clients,
                    sessions.tracked,
                )
        else:
            sessions.end(request, may_raise=True)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        cause = unavailable_cause(exception)
        if cause is None:
            return None
        process_counters().count("unavailable_responses")
        log_unavailable(
            "MongoDB unavailable for %s %s: %s",
            request.method,
            request.path,
            reason(cause, get_config().secrets),
        )
        return unavailable_response(request)
