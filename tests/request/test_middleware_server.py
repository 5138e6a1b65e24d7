"""request.mongo_session against the real server: lazily started, always ended."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from django.test import AsyncClient, Client

from django_mongopool.client import pools
from django_mongopool.client.process import get_client
from tests.helpers import HoldConnection, closed_port
from tests.views import Boom

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db]


def _sessions():
    snap = pools.snapshot()
    return snap.sessions_started, snap.sessions_ended


def test_normal_response_ends_the_session(mongo):
    response = Client().get("/t/insert/?key=abc")
    assert response.status_code == 200
    assert response.json() == {"key": "abc"}
    assert mongo["items"].count_documents({"key": "abc"}) == 1
    assert _sessions() == (1, 1)


def test_untouched_request_starts_no_session(mongo):
    response = Client().get("/t/untouched/")
    assert response.status_code == 200
    assert _sessions() == (0, 0)
    assert pools.snapshot().servers == ()  # not even a pool was created


def test_untouched_request_builds_no_session_state_and_holds_no_client(mongo):
    from django_mongopool.client import process
    from django_mongopool.client.sessions import RequestSession

    process.close_clients()  # start from a process that has no client yet
    request = Client().get("/t/untouched/").wsgi_request
    session = request.mongo_session
    assert type(session) is RequestSession
    assert "_client" not in vars(session)  # pymongo's state was never built
    assert process.built_client() is None  # and no client was built or held for it
    assert session.client is get_client()  # built on first read, already ended
    assert session.has_ended and get_client().requests_in_flight() == 0


def test_outside_sessions_alone_get_a_finalizer(mongo):
    from django_mongopool.client.scope import tracking
    from django_mongopool.client.sessions import (
        CountedClientSession,
        RequestSession,
        WatchedClientSession,
    )

    outside = get_client().start_session()  # no request: reported if collected unended
    assert type(outside) is WatchedClientSession and hasattr(outside, "__del__")
    outside.end_session()
    with tracking():  # like a request: checked when the block ends instead
        inside = get_client().start_session()
    assert type(inside) is CountedClientSession
    assert not hasattr(inside, "__del__") and not hasattr(RequestSession, "__del__")
    inside.end_session()


def test_view_that_raises_still_ends_the_session(mongo):
    client = Client(raise_request_exception=False)
    response = client.get("/t/raises/")
    assert response.status_code == 500
    assert _sessions() == (1, 1)


def test_exception_propagating_through_test_client_ends_the_session(mongo):
    with pytest.raises(Boom):
        Client().get("/t/raises/")
    assert _sessions() == (1, 1)


def test_streaming_response_ends_session_only_after_consumption(mongo):
    response = Client().get("/t/stream/")
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"chunk 0\n"
    assert _sessions() == (1, 0)  # still streaming: the session is alive
    rest = list(chunks)
    assert len(rest) == 4
    assert _sessions() == (1, 1)
    response.close()
    assert _sessions() == (1, 1)


def test_abandoned_stream_ends_session_when_closed(mongo):
    response = Client().get("/t/stream/")
    next(iter(response.streaming_content))
    assert _sessions() == (1, 0)
    response.close()  # what a WSGI server does when the client goes away
    assert _sessions() == (1, 1)


def test_stream_closed_before_first_chunk_leaves_nothing_open(mongo):
    response = Client().get("/t/stream/")  # the middleware produced the first chunk (a 503 if
    assert _sessions() == (1, 0)  # MongoDB could not serve it) and holds it for the server
    response.close()  # the client went away before it was sent
    assert _sessions() == (1, 1)


def test_session_used_after_request_is_refused(mongo):
    from pymongo.errors import InvalidOperation

    response = Client().get("/t/untouched/")
    session = response.wsgi_request.mongo_session
    assert session.has_ended
    with pytest.raises(InvalidOperation, match="ended session"):
        mongo["items"].find_one({}, session=session)


def test_views_get_the_real_client_session(mongo):
    from django.core.handlers.wsgi import WSGIRequest
    from pymongo.client_session import ClientSession

    response = Client().get("/t/insert/")
    request = response.wsgi_request
    assert isinstance(request.mongo_session, ClientSession)  # not a proxy: pymongo's own class
    assert "mongo_session" in request.__dict__  # an ordinary attribute
    assert request.mongo_session.has_ended
    assert type(request) is WSGIRequest  # the request's class is untouched


async def test_async_view_uses_and_ends_the_session(mongo):
    response = await AsyncClient().get("/t/async/")
    assert response.status_code == 200
    key = response.json()["key"]
    assert mongo["items"].count_documents({"key": key}) == 1
    assert _sessions() == (1, 1)


async def test_async_streaming_response_ends_the_session(mongo):
    response = await AsyncClient().get("/t/async-stream/")
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    assert _sessions() == (1, 1)


def test_server_down_gives_503_with_retry_after(settings):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{closed_port()}/down"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 300}
    settings.MONGOPOOL_RETRY_AFTER = 7
    started = time.monotonic()
    response = Client().get("/t/insert/")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert b"temporarily unavailable" in response.content
    assert elapsed < 0.3 + 10  # bounded by serverSelectionTimeoutMS, never a hung worker
    assert pools.snapshot().unavailable_responses == 1
    assert _sessions() == (0, 0)  # the session never ran a command


def test_503_is_json_when_the_client_asks_for_json(settings):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{closed_port()}/down"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 200}
    response = Client().get("/t/insert/", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_file_response_ends_session_when_closed(mongo):
    response = Client().get("/t/file/")
    assert response.status_code == 200
    assert _sessions() == (1, 0)  # the file is still being sent
    body = b"".join(response.streaming_content)
    assert body.endswith(b"0")
    response.close()
    assert _sessions() == (1, 1)


def test_saturated_pool_gives_503_after_wait_queue_timeout(mongo, settings):
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 1,
        "waitQueueTimeoutMS": 200,
        "event_listeners": [hold],
    }
    collection = get_client()[mongo.name]["items"]
    holder = threading.Thread(target=lambda: collection.find_one({}, comment="hold"))
    holder.start()
    try:
        assert hold.holding.wait(30)
        started = time.monotonic()
        response = Client().get("/t/insert/")
        elapsed = time.monotonic() - started
    finally:
        hold.release.set()
        holder.join()
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert elapsed < 0.2 + 10
    (server,) = pools.snapshot().servers
    assert server.checkout_failures == {"timeout": 1}
    assert _sessions() == (0, 0)  # the session never got a connection, so never ran a command
    # the failed check-out shows on the page's JSON and in the command
    from django.contrib.auth.models import User
    from django.core.management import call_command

    staff = User.objects.create_superuser("saturation", password="pw")
    viewer = Client()
    viewer.force_login(staff)
    page = viewer.get("/admin/django_mongopool/poolhealth/?format=json").json()
    assert page["process"]["servers"][0]["checkout_failures"] == {"timeout": 1}
    assert page["process"]["checkout_timeouts"] == 1
    out = io.StringIO()
    call_command("mongo_connections", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["process"]["checkout_timeouts"] == 1
