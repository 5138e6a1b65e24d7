"""The process client on the real server: a client setting changed while requests run never
gives a 500; a stream keeps its client across the change."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.test import Client
from django.test.utils import override_settings

pytestmark = [pytest.mark.server]


# --- a client setting changed while requests run never gives a 500 ---


def test_changing_client_options_under_load_never_gives_500(mongo, settings):
    base = {"serverSelectionTimeoutMS": 3000, "waitQueueTimeoutMS": 3000}
    settings.MONGOPOOL_CLIENT_OPTIONS = {**base, "maxPoolSize": 4}
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def requests() -> None:
        client = Client(raise_request_exception=False)
        while not stop.is_set():
            response = client.get("/t/insert/")
            statuses[response.status_code] += 1
            if response.status_code == 500:
                errors.append(response.content.decode(errors="replace")[:300])

    workers = [threading.Thread(target=requests) for _ in range(4)]
    for worker in workers:
        worker.start()
    flips = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            flips += 1
            with override_settings(MONGOPOOL_CLIENT_OPTIONS={**base, "maxPoolSize": 3 + flips % 2}):
                time.sleep(0.02)
            time.sleep(0.02)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert flips > 20
    assert statuses[200] > 20, statuses
    assert set(statuses) <= {200, 503}, (statuses, errors[:3])


def test_a_stream_keeps_its_client_across_a_settings_change(mongo, settings):
    from django_mongopool.client.process import get_client

    response = Client().get("/t/stream/")  # the view returned; its chunks are not made yet
    before = get_client()
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 3}  # retires the client
    assert get_client() is not before
    chunks = b"".join(response.streaming_content)  # each chunk queries with mongo_session
    assert chunks.count(b"chunk") == 5  # exhausted: the stream ended the request's session
    deadline = time.monotonic() + 5
    while not before._closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert before._closed  # closed once the stream (its request) was finished
