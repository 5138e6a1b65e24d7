"""Regression tests for issue 12 (hardening) against the real server."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from django.test import Client
from django.test.utils import override_settings

pytestmark = [pytest.mark.server]


# --- 10: a client setting changed while requests run never gives a 500 ---


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
