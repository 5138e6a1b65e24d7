"""The fleet's liveness filter and aggregation, on mongomock (fast tier: no session involved)."""

from __future__ import annotations

import datetime as dt

import mongomock
import pytest

from django_mongopool.audit import report
from django_mongopool.fleet import heartbeat, reading

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _beat(pid: int, age: float, interval: float = 10, **pool) -> dict:
    return heartbeat.sign(
        {
            "_id": f"web-1:{pid}:1",
            "host": "web-1",
            "pid": pid,
            "app": "shop",
            "interval": interval,
            "updated_at": (NOW - dt.timedelta(seconds=age)).replace(
                tzinfo=None
            ),  # as pymongo returns it
            "started_at": NOW - dt.timedelta(hours=1),
            "max_pool_size": 10,
            "open": pool.get("open", 3),
            "in_use": pool.get("in_use", 1),
            "waiting": pool.get("waiting", 0),
            "checkout_timeouts": pool.get("timeouts", 0),
            "recent_checkout_timeouts": pool.get("timeouts", 0),
            "sessions_started": 5,
            "sessions_ended": 5,
            "servers": [
                {
                    "address": "db:27017",
                    "open": pool.get("open", 3),
                    "in_use": pool.get("in_use", 1),
                    "waiting": pool.get("waiting", 0),
                }
            ],
        }
    )


def _read(docs):
    return reading.read(docs, now=NOW, secrets=heartbeat.secrets())


@pytest.fixture
def beats(monkeypatch):
    collection = mongomock.MongoClient().db.mongopool_heartbeats
    monkeypatch.setattr(heartbeat, "collection", lambda: collection)
    return collection


def test_only_processes_that_beat_recently_are_live(beats):
    beats.insert_many([_beat(1, age=5), _beat(2, age=29), _beat(3, age=32), _beat(4, age=500)])
    live = _read(beats.find()).processes
    assert [doc["pid"] for doc in live] == [1, 2]  # within 3 intervals (+1 s)
    assert live[0]["age_seconds"] == 5.0


def test_fleet_totals_busiest_saturated_and_timing_out(beats, monkeypatch):
    monkeypatch.setattr(heartbeat, "read_fleet", lambda: _read(beats.find()))
    beats.insert_many(
        [
            _beat(1, age=1, open=3, in_use=1),
            _beat(2, age=1, open=10, in_use=10, waiting=4),
            _beat(3, age=1, open=5, in_use=2, timeouts=7),
        ]
    )
    notes: list[str] = []
    fleet = report._fleet(notes)
    assert (fleet["alive"], fleet["open"], fleet["in_use"], fleet["waiting"]) == (3, 18, 13, 4)
    assert fleet["busiest"]["pid"] == 2
    assert fleet["saturated"] == ["web-1:2:1"]
    assert fleet["timing_out"] == ["web-1:3:1"]
    assert notes == []
