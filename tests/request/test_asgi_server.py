"""The example project under a real ASGI server (uvicorn) with load from another process."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from pymongo import MongoClient

from tests.helpers import MONITORS_PER_SERVER, established_to
from tests.live import ExampleServer, Load

pytestmark = [
    pytest.mark.server,
    pytest.mark.reliability,
    pytest.mark.usefixtures("checking_client"),  # reads what the web server wrote
]


POOL = 5
REQUESTS = 200


def test_200_concurrent_async_requests_under_uvicorn(mongo_server, tmp_path):
    web = ExampleServer(
        mongo_server.url,
        tmp_path,
        asgi=True,
        MONGODB_MAX_POOL_SIZE=str(POOL),
        MONGODB_WAIT_QUEUE_TIMEOUT_MS="60000",
        MONGODB_HEARTBEAT_SECONDS="0",  # only the loop's async client talks to the server
    ).start()
    try:
        load = Load(
            web.base,
            tmp_path,
            workers=REQUESTS,
            seconds=120,
            path="/api/async-sign/",
            max_requests=REQUESTS,
        )
        samples = []
        while load.process.poll() is None:
            samples.append(established_to(mongo_server.ports, web.process.pid))
            time.sleep(0.02)
        results = load.finish()
        metrics = web.metrics()
    finally:
        web.stop()
    statuses = Counter(r[1] for r in results)
    assert statuses == {201: REQUESTS}, statuses
    with MongoClient(mongo_server.url) as client:
        stored = {
            d["_id"] for d in client[web.env["MONGODB_DATABASE"]]["entries"].find({}, {"_id": 1})
        }
    assert {r[0] for r in results} <= stored
    assert (
        metrics["mongopool_sessions_started_total"]
        == metrics["mongopool_sessions_ended_total"]
        >= REQUESTS
    )
    # The sync client (readiness probe, before the load) keeps its own few connections; the
    # loop's async client added at most maxPoolSize + monitors on top of them.
    per_client = len(mongo_server.ports) * (POOL + MONITORS_PER_SERVER)
    assert samples and max(samples) - samples[0] <= per_client
    assert max(samples) <= 2 * per_client


def test_client_disconnect_mid_stream_ends_the_session_under_uvicorn(mongo_server, tmp_path):
    import json as _json
    import socket
    import urllib.request

    web = ExampleServer(
        mongo_server.url, tmp_path, asgi=True, MONGODB_HEARTBEAT_SECONDS="0"
    ).start()
    try:
        for n in range(20):
            body = _json.dumps({"id": f"e{n:03d}", "name": "n", "message": "m"}).encode()
            request = urllib.request.Request(
                web.base + "/api/async-sign/", body, {"Content-Type": "application/json"}
            )
            assert urllib.request.urlopen(request, timeout=30).status == 201
        before = web.metrics()
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
            sock.sendall(b"GET /api/entries/stream/?delay=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while b'"e001"' not in received:  # the stream has started: a session is open
                chunk = sock.recv(4096)
                assert chunk, received  # the server answered something else and closed
                received += chunk
        # the client is gone; the stream still had 18 entries to send, 1 s apart, so only the
        # cancellation can end the session within the 10 s this waits
        ended = None
        for _ in range(100):
            after = web.metrics()
            if after["mongopool_sessions_ended_total"] == after["mongopool_sessions_started_total"]:
                ended = after
                break
            time.sleep(0.1)
    finally:
        web.stop()
    assert ended is not None, "the cancelled stream did not end its session"
    assert (
        ended["mongopool_sessions_started_total"] == before["mongopool_sessions_started_total"] + 1
    )
