"""pymongo's AsyncMongoClient: one per event loop, request sessions that always end."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient

from django_mongopool import get_async_client, get_async_database
from django_mongopool.client import pools
from django_mongopool.guards import stray

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db(transaction=True)]


def _sessions():
    snap = pools.snapshot()
    return snap.sessions_started, snap.sessions_ended


async def test_async_view_with_the_async_session(mongo):
    response = await AsyncClient().get("/t/async-native/")
    assert response.status_code == 200
    key = response.json()["key"]
    assert await get_async_database()["items"].count_documents({"key": key}) == 1
    assert _sessions() == (1, 1)


def test_async_view_under_wsgi_finds_its_session_through_the_context(mongo):
    from django.test import Client

    # The sync middleware runs the async view through async_to_sync, in another thread and
    # event loop: request.amongo_session() finds the request there through the context.
    response = Client().get("/t/async-native/")
    assert response.status_code == 200
    assert _sessions() == (1, 1)


async def test_async_stream_ends_the_async_session(mongo):
    response = await AsyncClient().get("/t/async-native-stream/")
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert body == b"chunk 0\nchunk 1\nchunk 2\n"
    assert _sessions() == (1, 1)


async def test_cancelled_request_still_ends_its_session(mongo):
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/t/async-native-slow/",
        "raw_path": b"/t/async-native-slow/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    disconnect = asyncio.Event()
    sent = []

    async def receive():
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        pass

    task = asyncio.ensure_future(ASGIHandler()(scope, receive, send))
    for _ in range(200):  # until the view has started its session
        if _sessions()[0] == 1:
            break
        await asyncio.sleep(0.01)
    assert _sessions() == (1, 0)
    disconnect.set()  # the client goes away: Django cancels the view
    await asyncio.wait_for(task, 10)
    assert _sessions() == (1, 1)


def test_each_event_loop_gets_its_own_client(mongo):
    clients, errors = [], []
    # Bounded: a thread that fails before it reaches the barrier must not leave the other
    # waiting forever (it also breaks the barrier at once, below).
    barrier = threading.Barrier(2, timeout=30)

    def run() -> None:
        async def work():
            client = get_async_client()
            assert get_async_client() is client
            barrier.wait()
            await client[mongo.name]["loops"].insert_one({"loop": id(asyncio.get_running_loop())})
            clients.append(client)

        try:
            asyncio.run(work())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "an event loop's thread never finished"
    assert errors == []
    assert len({id(c) for c in clients}) == 2
    assert mongo["loops"].count_documents({}) == 2
    assert all(c._closed for c in clients)  # closed when their loop closed


def test_async_client_is_not_a_stray(mongo, settings):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    assert stray.installed()

    async def build():
        return get_async_client()

    assert asyncio.run(build()) is not None


def test_async_connections_are_counted_in_the_same_metrics(mongo):
    async def work():
        await get_async_database()["counted"].insert_one({"a": 1})
        return pools.snapshot()

    snapshot = asyncio.run(work())
    assert snapshot.servers and snapshot.servers[0].checkouts >= 1
