"""The heartbeat thread degrades cleanly: said once, no traceback, the share kept.

Without a default database name a fleet-budget process says once, clearly, that it cannot
publish, keeps the minimum share and logs no traceback; any failure that repeats is logged
once, then at most every LOG_EVERY_SECONDS, and the recovery is said once.
"""

from __future__ import annotations

import logging
import time

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from django_mongopool.fleet import heartbeat, shares


@pytest.fixture(autouse=True)
def _only_the_tests_publisher(monkeypatch):
    heartbeat.stop()  # a thread an earlier test's request started would log too
    monkeypatch.setattr(heartbeat, "running_here", True)


@pytest.fixture
def no_database(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/"  # what `ferretdb serve --url-file` writes
    settings.MONGOPOOL_DATABASE = None
    settings.MONGOPOOL_FLEET_BUDGET = 100
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1


def test_without_a_database_name_the_thread_says_so_once(no_database, caplog):
    publisher = heartbeat.Publisher()
    with caplog.at_level(logging.DEBUG, logger="django_mongopool"):
        publisher.start()
        deadline = time.monotonic() + 30
        while publisher.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        publisher.stop()
        publisher.join(30)
    assert publisher.failures >= 3
    records = [r for r in caplog.records if r.name == "django_mongopool.heartbeat"]
    assert len(records) == 1, [r.getMessage() for r in records]
    (record,) = records
    assert record.levelno == logging.WARNING and record.exc_info is None
    message = record.getMessage()
    assert "no default database name" in message and "MONGOPOOL_DATABASE" in message
    assert "minimum share of MONGOPOOL_FLEET_BUDGET" in message
    report = shares.report()
    assert report["share"] == 1 and report["source"] == "minimum share (heartbeats unreadable)"
    budget_lines = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(budget_lines) == 1


def test_a_repeated_failure_is_logged_again_only_after_a_while(settings, monkeypatch, caplog):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    publisher = heartbeat.Publisher()
    outcome: list[Exception | None] = [ServerSelectionTimeoutError("db:27017: timed out")]

    def beat() -> None:
        if outcome[0] is not None:
            raise outcome[0]

    monkeypatch.setattr(publisher, "beat", beat)
    with caplog.at_level(logging.WARNING, logger="django_mongopool.heartbeat"):
        for _ in range(10):
            publisher._next_beat = 0.0  # a beat is due at every turn
            publisher.tick()
        publisher._logged_at -= heartbeat.LOG_EVERY_SECONDS  # as if that much time went by
        publisher._next_beat = 0.0
        publisher.tick()
        outcome[0] = None
        for _ in range(2):
            publisher._next_beat = 0.0
            publisher.tick()
    messages = [r.getMessage() for r in caplog.records if r.name == "django_mongopool.heartbeat"]
    assert messages == [
        "Heartbeat skipped: ServerSelectionTimeoutError: db:27017: timed out",
        "Heartbeat skipped: ServerSelectionTimeoutError: db:27017: timed out "
        "(9 more since the last report)",
        "Heartbeats published again (after ServerSelectionTimeoutError).",
    ]
    assert publisher.failures == 11


def test_an_unexpected_error_has_its_traceback_once(settings, monkeypatch, caplog):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    publisher = heartbeat.Publisher()

    def beat() -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(publisher, "beat", beat)
    with caplog.at_level(logging.WARNING, logger="django_mongopool.heartbeat"):
        for _ in range(5):
            publisher._next_beat = 0.0
            publisher.tick()
    records = [r for r in caplog.records if r.name == "django_mongopool.heartbeat"]
    assert len(records) == 1 and records[0].exc_info is not None
    assert publisher.failures == 5


def test_a_beat_failing_while_the_thread_stops_is_not_reported(settings, monkeypatch, caplog):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    publisher = heartbeat.Publisher()

    def beat() -> None:  # what a beat running into the closed client at exit sees
        publisher.stop()
        raise ServerSelectionTimeoutError("Cannot use MongoClient after close")

    monkeypatch.setattr(publisher, "beat", beat)
    with caplog.at_level(logging.DEBUG, logger="django_mongopool"):
        publisher.tick()
    assert caplog.records == [] and publisher.failures == 0
