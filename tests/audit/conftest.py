"""Shared by the audit's tests: ``point_at(uri, servers)`` points the app at mockupdb servers
(:mod:`tests.audit.mockup`) and stops them after the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_mongopool.audit import report
from tests.audit.mockup import Server


@pytest.fixture
def point_at(settings) -> Iterator[Any]:
    started: list[Server] = []

    def point(uri: str, servers: list[Server]) -> None:
        started.extend(servers)
        settings.MONGOPOOL_URI = uri
        settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 2000}
        settings.MONGOPOOL_PROCESSES = 8

    report.clear_cache()
    yield point
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/x"  # close the client before the servers stop
    report.clear_cache()
    for server in started:
        server.mock.stop()
