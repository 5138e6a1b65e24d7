"""The pool figures against the real server: counted by the counting pools, read from pymongo's."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import Client
from pymongo import monitoring

from django_mongopool.client import pools
from django_mongopool.client.process import get_client
from tests.helpers import HoldConnection

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db]


def _server():
    (server,) = [s for s in pools.snapshot().servers if s.pool == "sync"]
    return server


def _until(predicate, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_gauges_counters_and_reasons_follow_the_real_pool(mongo, settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 1, "waitQueueTimeoutMS": 60_000}
    client = get_client()
    client.admin.command("ping")
    (address,) = client.nodes
    pool = client._topology._servers[address].pool
    assert (_server().open, _server().idle, _server().checkouts) == (1, 1, 1)

    hold = pool.checkout()
    hold.__enter__()  # the only connection is checked out
    waiter = threading.Thread(target=lambda: client.admin.command("ping"))
    try:
        server = _server()
        assert (server.open, server.in_use, server.idle, server.waiting) == (1, 1, 0, 0)
        waiter.start()
        _until(lambda: _server().waiting == 1)  # blocked on maxPoolSize
    finally:
        hold.__exit__(None, None, None)
    waiter.join()
    server = _server()
    assert (server.in_use, server.waiting, server.checkouts) == (0, 0, 3)
    assert server.peak_in_use == 1 and server.peak_open == 1
    assert server.wait_ms_max is not None and server.wait_ms_max > 0  # the waiter's wait

    pool.reset()  # what pymongo does after a network error: idle connections are stale
    server = _server()
    assert server.pool_clears == 1
    assert server.connections_closed == {"stale": 1}
    assert (server.open, server.connections_created) == (0, 1)
    assert server.checkout_failures == {}


def test_a_failed_check_out_stops_counting_as_waiting(mongo, settings):
    """pymongo 4.18 leaves its own operation count raised after a wait-queue timeout; the
    figure here comes from the app's own begun/finished counters, so it goes back to 0."""
    from pymongo.errors import WaitQueueTimeoutError

    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 1, "waitQueueTimeoutMS": 50}
    client = get_client()
    client.admin.command("ping")
    (address,) = client.nodes
    pool = client._topology._servers[address].pool
    hold = pool.checkout()
    hold.__enter__()
    try:
        with pytest.raises(WaitQueueTimeoutError), pool.checkout():
            pass
    finally:
        hold.__exit__(None, None, None)
    server = _server()
    assert server.checkout_failures == {"timeout": 1}
    assert (server.waiting, server.in_use) == (0, 0)


class BlockConnect(monitoring.ConnectionPoolListener):
    """Once armed, the next connection pymongo opens blocks at its start (inside the pool's
    ``connect()``, in the check-out that needs it) until released; later ones go through."""

    def __init__(self) -> None:
        self.armed = False
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.check_outs = 0

    def connection_check_out_started(self, event: object) -> None:
        self.check_outs += 1

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        if self.armed:
            self.armed = False
            self.blocked.set()
            self.release.wait(60)

    def _ignored(self, event: object) -> None:
        pass

    pool_created = pool_ready = pool_cleared = pool_closed = _ignored
    connection_ready = connection_closed = _ignored
    connection_check_out_failed = connection_checked_out = connection_checked_in = _ignored


def _held(collection, count: int, hold: HoldConnection) -> list[threading.Thread]:
    """``count`` threads each holding one connection checked out (a command blocked)."""
    threads = []
    for _ in range(count):
        hold.holding.clear()
        thread = threading.Thread(target=lambda: collection.find_one({}, comment="hold"))
        thread.start()
        threads.append(thread)
        assert hold.holding.wait(30)
    return threads


def test_opening_a_connection_is_connecting_not_waiting(mongo, settings):
    """A check-out opening a new connection (TCP, TLS, auth run inside it)
    while the pool has room is "connecting"; "waiting" is only for a full pool, and /ready
    stays 200."""
    hold, connect = HoldConnection(), BlockConnect()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 10,
        "waitQueueTimeoutMS": 60_000,
        "event_listeners": [hold, connect],
    }
    collection = get_client()[mongo.name]["items"]
    collection.find_one({})  # discovery done, one connection idle
    holders = _held(collection, 2, hold)  # 2 of 10 in use
    connect.armed = True
    opener = threading.Thread(target=lambda: collection.find_one({}))
    opener.start()
    try:
        assert connect.blocked.wait(30)  # the third check-out is opening its connection
        assert (_server().in_use, _server().waiting) == (3, 0)
        response = Client().get("/mongopool/ready")
        assert response.status_code == 200, response.content
        assert _server().connecting == 1
        assert pools.snapshot().as_dict()["connecting"] == 1
    finally:
        connect.release.set()
        hold.release.set()
        opener.join()
        for thread in holders:
            thread.join()
    server = _server()
    assert (server.waiting, server.connecting) == (0, 0)


def test_a_check_out_queued_behind_max_connecting_is_not_waiting(mongo, settings):
    hold, connect = HoldConnection(), BlockConnect()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 10,
        "maxConnecting": 1,
        "waitQueueTimeoutMS": 60_000,
        "event_listeners": [hold, connect],
    }
    collection = get_client()[mongo.name]["items"]
    collection.find_one({})  # discovery done, one connection idle
    holders = _held(collection, 1, hold)  # and checked out: the next check-outs must open one
    connect.armed = True
    opener = threading.Thread(target=lambda: collection.find_one({}))
    queued = threading.Thread(target=lambda: collection.find_one({}))
    try:
        opener.start()
        assert connect.blocked.wait(30)  # opening the one connection maxConnecting allows
        queued.start()
        _until(lambda: connect.check_outs == 4)  # the warm-up, the holder, both threads
        server = _server()
        assert (server.waiting, server.connecting, server.in_use) == (0, 1, 2)
    finally:
        connect.release.set()
        hold.release.set()
        for thread in (opener, queued, *holders):
            thread.join()


def test_a_full_pool_is_waiting_and_not_ready(mongo, settings):
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 1,
        "waitQueueTimeoutMS": 60_000,
        "event_listeners": [hold],
    }
    collection = get_client()[mongo.name]["items"]
    collection.find_one({})
    (holder,) = _held(collection, 1, hold)
    waiter = threading.Thread(target=lambda: collection.find_one({}))
    try:
        waiter.start()
        _until(lambda: _server().waiting == 1)
        assert _server().connecting == 0
        response = Client().get("/mongopool/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "pool saturated"
    finally:
        hold.release.set()
        holder.join()
        waiter.join()
    assert _server().waiting == 0


def _timed_out(action) -> None:
    from pymongo.errors import WaitQueueTimeoutError

    with pytest.raises(WaitQueueTimeoutError):
        action()


def test_a_read_that_pymongo_retries_counts_one_check_out_timeout(mongo, settings):
    """pymongo retries a read once after a check-out timeout (two failed
    check-outs); a write is not retried. The app counts one timed-out operation for each."""
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 1,
        "waitQueueTimeoutMS": 50,
        "event_listeners": [hold],
    }
    collection = get_client()[mongo.name]["items"]
    collection.find_one({})
    (holder,) = _held(collection, 1, hold)
    try:
        _timed_out(lambda: collection.find_one({}))
        assert pools.snapshot().as_dict()["checkout_timeouts"] == 1
        assert _server().checkout_failures == {"timeout": 2}  # pymongo's two check-outs
        _timed_out(lambda: collection.insert_one({}))
        assert pools.snapshot().as_dict()["checkout_timeouts"] == 2
        assert _server().checkout_failures == {"timeout": 3}
        assert _server().checkout_timeouts == 2
        response = Client().get("/t/raises/")  # a view that reads first: one 503, one timeout
        assert response.status_code == 503
    finally:
        hold.release.set()
        holder.join()
    snapshot = pools.snapshot()
    assert snapshot.servers[0].checkout_failures == {"timeout": 5}
    assert snapshot.as_dict()["checkout_timeouts"] == 3
    assert snapshot.unavailable_responses == 1


def _async_server():
    (server,) = [s for s in pools.snapshot().servers if s.pool.startswith("async")]
    return server


async def test_async_pools_count_waiting_and_one_timeout_per_read(mongo, settings):
    import asyncio

    from pymongo.errors import WaitQueueTimeoutError

    from django_mongopool import get_async_client

    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 1, "waitQueueTimeoutMS": 60_000}
    collection = get_async_client()[mongo.name]["items"]
    await collection.find_one({})
    (member,) = get_async_client()._topology._servers.values()
    async with member.pool.checkout():  # the pool's one connection, held
        waiter = asyncio.create_task(collection.find_one({}))
        deadline = time.monotonic() + 30
        while _async_server().waiting != 1:
            assert time.monotonic() < deadline, "never waiting"
            await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (_async_server().waiting, _async_server().connecting) == (0, 0)

    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 1, "waitQueueTimeoutMS": 50}
    collection = get_async_client()[mongo.name]["items"]
    await collection.find_one({})
    (member,) = get_async_client()._topology._servers.values()
    async with member.pool.checkout():
        with pytest.raises(WaitQueueTimeoutError):
            await collection.find_one({})  # retried by pymongo: two failed check-outs
        with pytest.raises(WaitQueueTimeoutError):
            await collection.insert_one({})
    server = _async_server()
    assert server.checkout_failures == {"timeout": 3}
    assert server.checkout_timeouts == 2
