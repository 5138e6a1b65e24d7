"""A streamed response during a MongoDB outage: a 503 or a clean end, never a traceback.

Before its first byte, the stream's outage gets the same 503 + ``Retry-After`` as any
view's (the middleware produces the first non-empty chunk before handing the response
on); after it, the stream ends there and one WARNING without credentials says so,
instead of a traceback in the server's log. The request's sessions are ended either
way. Sync streams under WSGI (the test client and a real WSGI server) and ASGI, async
streams under ASGI.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from asgiref.sync import sync_to_async
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, StreamingHttpResponse
from django.test import AsyncClient, AsyncRequestFactory, Client

from django_mongopool.client import pools
from django_mongopool.request import unavailable
from tests.helpers import closed_port, outcome
from tests.streaming_urls import NotAnOutage

pytestmark = pytest.mark.urls("tests.streaming_urls")

PASSWORD = "Str3am-s3cret-pw"


@pytest.fixture
def outage(settings) -> None:
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@127.0.0.1:{closed_port()}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 200}
    unavailable.log_stream_cut.last = float("-inf")
    unavailable.log_unavailable.last = float("-inf")


@pytest.fixture
def async_outage(outage, settings) -> None:
    """For the async client: a name that never resolves (RFC 6761 ``.invalid``). pymongo's async
    monitor leaves its socket open when its client closes during a connect to a closed port
    (a ResourceWarning in whichever later test collects it); a failed lookup opens none."""
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@mongopool-outage.invalid:27017/shop"


def _sessions_ended(response) -> bool:
    """The request's scope has ended, and with it every session the request used."""
    request = getattr(response, "wsgi_request", None) or response.asgi_request
    session = request.mongo_session
    ended = session._mongopool_scope.ended and session.has_ended
    async_session = getattr(request, "async_session_for_tests", None)
    return ended and (async_session is None or async_session.has_ended)


def _cut_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "while streaming" in r.getMessage()]


def _assert_503(response) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"temporarily unavailable" in response.content


# WSGI (Django's test client) ------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?empty=1"], ids=["first-chunk", "after-an-empty-chunk"])
def test_sync_stream_outage_before_the_first_byte_is_a_503(outage, caplog, query):
    response = Client().get(f"/s/sync/{query}")
    _assert_503(response)
    assert pools.snapshot().unavailable_responses == 1
    assert _sessions_ended(response)
    assert not _cut_lines(caplog)
    assert any("MongoDB unavailable for GET /s/sync/" in r.getMessage() for r in caplog.records)


def test_sync_stream_outage_after_the_first_byte_ends_the_stream_logged_once(outage, caplog):
    response = Client().get("/s/sync/?after=1")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"first\n"
    (line,) = _cut_lines(caplog)
    message = line.getMessage()
    assert line.levelno == logging.WARNING and not line.exc_info
    assert "GET /s/sync/" in message and "ended after 1 chunk(s)" in message
    assert "ServerSelectionTimeoutError" in message and PASSWORD not in message
    assert _sessions_ended(response)


def test_other_errors_before_the_first_byte_are_the_views_own(outage):
    with pytest.raises(NotAnOutage):
        Client().get("/s/sync/?other=1")
    assert Client(raise_request_exception=False).get("/s/sync/?other=1").status_code == 500
    assert pools.snapshot().unavailable_responses == 0


def test_other_errors_after_the_first_byte_still_raise(outage, caplog):
    response = Client().get("/s/sync/?after=1&other=1")
    with pytest.raises(NotAnOutage):
        b"".join(response.streaming_content)
    assert not _cut_lines(caplog)


# ASGI ------------------------------------------------------------------------------------


async def test_async_stream_outage_before_the_first_byte_is_a_503(async_outage, caplog):
    response = await AsyncClient().get("/s/async/")
    _assert_503(response)
    assert not _cut_lines(caplog)
    assert _sessions_ended(response)


async def test_async_stream_outage_after_the_first_byte_ends_the_stream(async_outage, caplog):
    response = await AsyncClient().get("/s/async/?after=1")
    assert response.status_code == 200
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == b"first\n"
    (line,) = _cut_lines(caplog)
    assert "GET /s/async/" in line.getMessage() and PASSWORD not in line.getMessage()
    assert _sessions_ended(response)


async def test_sync_stream_under_asgi_outage_before_the_first_byte_is_a_503(outage):
    response = await AsyncClient().get("/s/sync/")
    _assert_503(response)
    assert _sessions_ended(response)


async def test_sync_stream_under_asgi_outage_after_the_first_byte(outage, caplog):
    response = await AsyncClient().get("/s/sync/?after=1")
    assert response.status_code == 200
    body = await sync_to_async(b"".join)(response.streaming_content)
    assert body == b"first\n"
    assert len(_cut_lines(caplog)) == 1


# A real WSGI server ---------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:  # no access log on stderr
        pass


@pytest.fixture
def wsgi_server() -> Iterator[WSGIServer]:
    server = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _get(server: WSGIServer, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_under_a_real_wsgi_server_no_traceback_is_logged(outage, wsgi_server, caplog, capfd):
    before = _get(wsgi_server, "/s/sync/")
    assert before.startswith(b"HTTP/1.0 503") and b"Retry-After: 5" in before
    after = _get(wsgi_server, "/s/sync/?after=1")
    assert after.startswith(b"HTTP/1.0 200") and after.endswith(b"\r\n\r\nfirst\n")
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and PASSWORD not in stderr  # the server logged nothing
    assert len(_cut_lines(caplog)) == 1


# The client goes away before the first byte ----------------------------------------------


async def _cancel_before_the_first_chunk(view) -> HttpRequest:
    from django_mongopool.request.middleware import MongoSessionMiddleware

    request = AsyncRequestFactory().get("/s/")
    middleware = MongoSessionMiddleware(view)
    task = asyncio.ensure_future(middleware(request))
    try:
        async with asyncio.timeout(30):  # a stream that never starts fails here, not the run
            while not hasattr(request, "first_chunk_started"):  # the middleware is producing it
                if task.done():  # it gave a response (or failed) without starting the stream
                    pytest.fail(f"the stream never started: the middleware {outcome(task)}")
                await asyncio.sleep(0.01)
    except TimeoutError:
        task.cancel()
        pytest.fail("the stream never started: no first chunk within 30 s")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return request


async def test_a_cancelled_async_stream_ends_its_sessions(outage):
    async def view(request):
        async def chunks():
            assert request.mongo_session.client is not None  # built: it must be ended
            request.first_chunk_started = True
            await asyncio.Event().wait()  # a first event that never comes
            yield b"never\n"

        return StreamingHttpResponse(chunks())

    request = await _cancel_before_the_first_chunk(view)
    assert request.mongo_session._mongopool_scope.ended and request.mongo_session.has_ended


async def test_a_cancelled_sync_stream_under_asgi_ends_its_sessions(outage):
    release = threading.Event()

    async def view(request):
        def chunks():
            assert request.mongo_session.client is not None
            request.first_chunk_started = True
            release.wait(30)  # produced in a thread while the request is cancelled
            yield b"late\n"

        return StreamingHttpResponse(chunks())

    try:
        request = await _cancel_before_the_first_chunk(view)
        assert request.mongo_session._mongopool_scope.ended
    finally:
        release.set()
