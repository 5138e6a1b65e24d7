"""The readiness probe: it answers within its timeout, even against a server that never answers."""

from __future__ import annotations

import time

import pytest
from django.test import Client

# --- the probe answers within its timeout; POST is 405 ---


@pytest.mark.urls("tests.failure_urls")
def test_probe_answers_within_its_timeout_against_a_silent_server(settings, silent_server):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{silent_server}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 5000}
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.2
    client = Client()
    for _ in range(3):  # also while an earlier ping is still in flight
        started = time.monotonic()
        response = client.get("/mongopool/ready")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 1.0, elapsed


@pytest.mark.urls("tests.failure_urls")
def test_probe_is_not_rounded_up_to_pymongos_half_second_selection_loop(settings, silent_server):
    """pymongo's server selection re-checks its deadline every 0.5 s: a probe that relied on
    pymongo.timeout() alone answered after 0.5 s whatever its timeout (0.51 s for 0.2 s)."""
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{silent_server}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 5000}
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.05
    client = Client()
    for _ in range(3):
        started = time.monotonic()
        assert client.get("/mongopool/ready").status_code == 503
        assert time.monotonic() - started < 0.4


@pytest.mark.urls("tests.failure_urls")
def test_post_to_the_probe_is_405(settings):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/mongopool/ready").status_code == 405
    assert client.get("/mongopool/ready").status_code in (200, 503)
