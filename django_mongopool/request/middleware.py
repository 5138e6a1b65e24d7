"""``request.mongo_session`` and ``await request.amongo_session()``: sessions that always end.

``request.mongo_session`` is an ordinary attribute holding pymongo's real
``ClientSession`` of the process client, set before the view runs; its pymongo
state is built when the view first uses it (:class:`~django_mongopool.client.sessions.RequestSession`),
so a request that never touches MongoDB costs two small objects, one context
variable and no client work at all.
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

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from pymongo.errors import PyMongoError

from django_mongopool.client.event_loops import end_with_loop, hold_async_client, run_on_loop
from django_mongopool.client.process import (
    PooledClientMixin,
    active_test_clients,
    get_client,
    get_config,
    hold_for,
    pin_lock,
    process_counters,
    release_request,
)
from django_mongopool.client.scope import RequestScope, current
from django_mongopool.client.sessions import RequestSession
from django_mongopool.guards import leaks
from django_mongopool.request.streams import AsyncClosingIterator, ClosingIterator, discard
from django_mongopool.request.unavailable import (
    log_unavailable,
    reason,
    unavailable_cause,
    unavailable_response,
)

logger = logging.getLogger("django_mongopool")

# Bound once: these run for every request, and looking a method up allocates each time.
set_current, reset_current, pin_locked = current.set, current.reset, pin_lock.locked


class RequestSessions(RequestScope):
    """One request's scope and sessions, ended exactly once; also the sessions user code started.

    Made for every request, so it does only what every request needs: this object (no
    ``__init__``), an unbuilt :class:`RequestSession` and the request's two attributes.
    """

    session: Any = None  # request.mongo_session once built (the mongomock tier: at once)
    async_entry: tuple[Any, asyncio.AbstractEventLoop] | None = None

    @classmethod
    def open(cls, request: HttpRequest) -> RequestSessions:
        """Give ``request`` its ``mongo_session`` and ``amongo_session``; returns the scope."""
        sessions = cls()
        request.mongo_session = sessions.lazy_session()  # type: ignore[attr-defined]
        # Finds this scope in the context: nothing to allocate per request.
        request.amongo_session = amongo_session  # type: ignore[attr-defined]
        return sessions

    def lazy_session(self) -> Any:
        """This scope's ``mongo_session``: pymongo's ``__init__`` runs on first use (the
        mongomock tier's session is made at once)."""
        if active_test_clients() is None:
            return RequestSession.unbuilt(self)
        return self.start_test_session()

    def start_test_session(self) -> Any:
        """The mongomock tier (``process.use_test_client``) hands out its own session."""
        test_clients = active_test_clients()
        assert test_clients is not None
        self.session = test_clients[0].start_request_session()
        self.needs_end = True
        return self.session

    def session_client(self) -> tuple[Any, bool]:
        """The client ``request.mongo_session`` is built on, and whether the request has ended."""
        if self.ended:
            return get_client(), True
        return hold_for(self), False

    def adopt(self, session: Any) -> bool:
        """Called when ``request.mongo_session`` has been built: True if this scope will end it
        with its request, False if the request ended meanwhile (the session must be ended)."""
        with pin_lock:
            if self.ended:
                return False
            self.session = session
            return True

    async def aget(self) -> Any:
        """``await request.amongo_session()``: this request's session of the loop's async client."""
        if self.ended:
            raise RuntimeError("request.amongo_session() was used after its request ended.")
        if self.async_entry is None:
            client = hold_async_client()
            try:
                session = client.start_request_session()
            except BaseException:
                if isinstance(client, PooledClientMixin):
                    client.release()  # nothing would give this hold back
                raise
            self.needs_end = True
            self.async_entry = (session, asyncio.get_running_loop())
            self.async_client, self.loop = client, self.async_entry[1]
            end_with_loop(self.loop, self)
        return self.async_entry[0]

    async def aend(self, request: HttpRequest | None = None, may_raise: bool = False) -> None:
        """End both sessions from the event loop (ASGI)."""
        await self.end_async_session()
        self.end(request, may_raise)

    async def end_async_session(self) -> None:
        """End the async session, on its own loop (also when that loop winds down first)."""
        entry, self.async_entry = self.async_entry, None
        if entry is not None:
            await _end_async(entry[0])

    def end(self, request: HttpRequest | None = None, may_raise: bool = False) -> None:
        if self.ended:
            return
        self.ended = True
        # A thread of this request may be pinning the client right now (process.hold_for). The
        # lock is read first: a thread not yet in it will see `ended` and give its hold back;
        # one that has left it has set `needs_end`.
        if pin_locked() or self.needs_end:
            self.finish(request, may_raise)

    def finish(self, request: HttpRequest | None, may_raise: bool) -> None:
        """End what the request used: its sessions, its client hold; report leaked sessions."""
        try:
            async_entry = self.async_entry
            if async_entry is not None:
                # A stream closed from a thread: end the session on its own loop.
                self.async_entry = None
                run_on_loop(lambda: _end_async(async_entry[0]), async_entry[1], wait=True)
        finally:
            # Under the lock: a thread of this request building the session or pinning the
            # client right now either finishes first or sees `ended` (adopt(), hold_for()).
            # Dropping the session also breaks the cycle with its reference to this scope.
            with pin_lock:
                session, self.session = self.session, None
                held, self.held = self.held, None
            try:
                if session is not None:
                    session.end_session()
            except PyMongoError:
                logger.warning("Ending request.mongo_session failed", exc_info=True)
            finally:
                if held is not None:
                    held.release()  # a retired client closes after its last request
        if self.tracked:
            self._report_leaks(request, may_raise)

    def _report_leaks(self, request: HttpRequest | None, may_raise: bool) -> None:
        found = leaks.leaked(self.tracked or [])
        if found:
            process_counters().count("leaked_sessions", len(found))
            leaks.report(found, self.describe(request), may_raise=may_raise)

    def describe(self, request: HttpRequest | None) -> str:
        """What this scope is, in a leak report."""
        return f"{request.method} {request.path}" if request is not None else "a streamed response"


async def amongo_session() -> Any:
    """``await request.amongo_session()``: the running request's session of the loop's client."""
    sessions = current.get()
    if not isinstance(sessions, RequestSessions):
        raise RuntimeError(
            "request.amongo_session() was used outside its request: after the request ended, "
            "or in code that does not run in the request's context."
        )
    return await sessions.aget()


async def _end_async(session: Any) -> None:
    try:
        await session.end_session()
    except PyMongoError:
        logger.warning("Ending request.amongo_session() failed", exc_info=True)
    finally:
        release_request(session)


OWN_MONGOMOCK_HINT = (
    "A mongomock client of your own refuses every session, and django-mongopool passes "
    "request.mongo_session (session=) to it. Use django-mongopool's mock tier instead of "
    "patching one in: request the pytest fixture mongopool_mock (or set mongopool_mode = mock "
    "in your pytest ini); its client accepts session= and ignores it, behind get_client(), "
    "get_database() and request.mongo_session. Outside pytest: "
    "django_mongopool.testing.mock.mock_clients(). To call a view directly: "
    "view(mongo_request(RequestFactory().get('/'))) (django_mongopool.testing)."
)


def explain_refused_session(exc: BaseException) -> NotImplementedError | None:
    """mongomock's "does not handle sessions" error with what to use instead, else None
    (:meth:`MongoSessionMiddleware.process_exception` raises it from the original)."""
    if type(exc) is NotImplementedError and "does not handle sessions" in str(exc):
        return NotImplementedError(f"{exc}. {OWN_MONGOMOCK_HINT}")
    return None


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
        sessions = RequestSessions.open(request)
        token = set_current(sessions)
        try:
            response = self.get_response(request)
        except BaseException:
            sessions.end()
            raise
        finally:
            reset_current(token)
        if isinstance(response, StreamingHttpResponse):
            stream = self._stream(request, response, sessions)
            if isinstance(stream, ClosingIterator):  # an async stream under WSGI: not primed
                try:
                    stream.prime()
                except Exception as exc:
                    return self._failed_stream(request, response, exc)
                except BaseException:
                    discard(response)  # nothing will send or close it
                    raise
            return response
        sessions.end(request, may_raise=True)
        return response

    async def __acall__(self, request: HttpRequest) -> Any:
        sessions = RequestSessions.open(request)
        token = set_current(sessions)
        try:
            response = await self.get_response(request)
        except BaseException:  # including asyncio.CancelledError on client disconnect
            await sessions.aend()
            raise
        finally:
            reset_current(token)
        if not isinstance(response, StreamingHttpResponse):
            await sessions.aend(request, may_raise=True)
            return response
        stream = self._stream(request, response, sessions)
        try:
            if isinstance(stream, AsyncClosingIterator):
                await stream.aprime()
            else:
                await sync_to_async(stream.prime)()
        except Exception as exc:
            return self._failed_stream(request, response, exc)
        except BaseException:  # asyncio.CancelledError: the client went away before a byte
            discard(response)  # nothing will send or close it: its sessions end here
            raise
        return response

    @staticmethod
    def _stream(
        request: HttpRequest, response: StreamingHttpResponse, sessions: RequestSessions
    ) -> ClosingIterator | AsyncClosingIterator:
        # A stream may use request.mongo_session while it is consumed, so every stream
        # ends the sessions when it finishes or is closed.
        stream: ClosingIterator | AsyncClosingIterator
        if response.is_async:
            stream = AsyncClosingIterator(
                response.streaming_content,  # type: ignore[arg-type]
                sessions.aend,
                sessions.end,
                sessions,
                request,
            )
        else:
            stream = ClosingIterator(
                response.streaming_content,  # type: ignore[arg-type]
                sessions.end,
                sessions,
                request,
            )
        response.streaming_content = stream
        return stream

    def _failed_stream(
        self, request: HttpRequest, response: StreamingHttpResponse, exc: Exception
    ) -> HttpResponseBase:
        """The stream raised before its first byte (its sessions are ended): a MongoDB outage
        gets the 503 any view gets; another error propagates as the view's own would."""
        discard(response)
        unavailable = self.process_exception(request, exc)
        if unavailable is None:
            raise exc
        return unavailable

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        cause = unavailable_cause(exception)
        if cause is None:
            if isinstance(exception, NotImplementedError):  # a mongomock client of the user's own
                explained = explain_refused_session(exception)
                if explained is not None:
                    raise explained from exception
            return None
        process_counters().count("unavailable_responses")
        log_unavailable(
            "MongoDB unavailable for %s %s: %s",
            request.method,
            request.path,
            reason(cause, get_config().secrets),
        )
        return unavailable_response(request)
