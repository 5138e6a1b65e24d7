"""Shared by the fleet's tests: ``budgeted``, this process alone under a fleet budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_mongopool.client.process import get_database
from django_mongopool.fleet import heartbeat
from tests.helpers import HoldConnection


@pytest.fixture
def budgeted(request, mongo, settings, monkeypatch) -> Iterator[HoldConnection]:
    """This process under ``MONGOPOOL_FLEET_BUDGET`` = the test module's ``BUDGET``, its pool capped
    at the module's ``MAX_POOL``, beating every second, with an empty heartbeat collection and a
    warm pool. The test's own publisher is the process's only one (no background thread beats
    too). Yields the listener that holds a command tagged ``comment="hold"`` until released."""
    heartbeat.stop()
    monkeypatch.setattr(heartbeat, "running_here", True)
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": request.module.MAX_POOL,
        "waitQueueTimeoutMS": 300,
        "event_listeners": [hold],
    }
    settings.MONGOPOOL_FLEET_BUDGET = request.module.BUDGET
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    get_database()["items"].insert_one({"_id": "warm-up"})  # the pool exists from here
    heartbeat.collection().drop()
    yield hold
    hold.release.set()
    heartbeat.collection().drop()
