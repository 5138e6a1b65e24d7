"""The pool figures against the real server: counted by the counting pools, read from pymongo's."""

from __future__ import annotations

import threading
import time

import pytest

from django_mongopool import pools
from django_mongopool.client import get_client

pytestmark = [pytest.mark.server, pytest.mark.django_db]


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
