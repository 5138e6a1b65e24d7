"""200 concurrent requests with maxPoolSize=5: every write lands, every session ends,
and the process never holds more than 5 pooled + monitor connections to the server."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from django_mongopool.client import pools
from django_mongopool.client.process import get_config, get_database
from django_mongopool.testing import assert_max_connections, assert_no_leaked_sessions
from tests.helpers import MONITORS_PER_SERVER, established_to

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]

REQUESTS = 200
POOL = 5


def test_200_concurrent_requests_stay_within_the_pool(mongo, mongo_server, settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": POOL, "waitQueueTimeoutMS": 120_000}
    database = get_database()  # the client was rebuilt for the new options
    keys = [uuid.uuid4().hex for _ in range(REQUESTS)]
    barrier = threading.Barrier(REQUESTS, timeout=120)  # a request that never starts: a failure
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(established_to(mongo_server.ports))
            done.wait(0.002)
        samples.append(established_to(mongo_server.ports))

    def request(key: str) -> int:
        client = Client()
        barrier.wait()
        return client.get(f"/t/insert/?key={key}").status_code

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with (
            assert_max_connections(POOL),
            assert_no_leaked_sessions(),
            ThreadPoolExecutor(max_workers=REQUESTS) as pool,
        ):
            statuses = list(pool.map(request, keys))
    finally:
        done.set()
        sampler.join()

    assert statuses == [200] * REQUESTS
    stored = {doc["key"] for doc in database["items"].find({}, {"key": 1})}
    assert stored == set(keys)

    snapshot = pools.snapshot()
    assert snapshot.sessions_started == REQUESTS
    assert snapshot.sessions_ended == REQUESTS
    bound = len(get_config().hosts) * (POOL + MONITORS_PER_SERVER)
    assert samples and max(samples) <= bound, (max(samples), bound)
    # Exact, not sampled: the pool's own peak from the listener.
    assert all(server.peak_open <= POOL for server in snapshot.servers)
    assert sum(server.checkouts for server in snapshot.servers) >= REQUESTS
