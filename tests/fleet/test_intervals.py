"""Each beat's interval is believed only up to the reader's settings, and the heartbeats' TTL
index prunes after the longest time a beat is believed (an earlier, shorter one is replaced)."""

from __future__ import annotations

import datetime as dt

import mongomock
import pytest

from django_mongopool.conf import conf
from django_mongopool.fleet import heartbeat, reading

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _beat(_id: str, age: float, interval: float) -> dict:
    return heartbeat.sign(
        {
            "_id": _id,
            "host": "web-1",
            "pid": 7,
            "interval": interval,
            "updated_at": NOW - dt.timedelta(seconds=age),
            "max_pool_size": 10,
        }
    )


def _live(docs: list[dict]) -> list[str]:
    found = reading.read(
        docs, NOW, secrets=heartbeat.secrets(), max_interval=conf.heartbeat_max_seconds
    )
    return [p["id"] for p in found.processes]


def test_an_hour_long_interval_is_believed_only_up_to_the_readers_maximum(settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    docs = [_beat("hourly", age=1000, interval=3600), _beat("slow", age=250, interval=100)]
    # Default MONGOPOOL_HEARTBEAT_MAX_SECONDS = 300: alive for 3 x 300 + 1 s at most.
    assert _live(docs) == ["slow"]
    settings.MONGOPOOL_HEARTBEAT_MAX_SECONDS = 3600
    assert sorted(_live(docs)) == ["hourly", "slow"]


def test_the_maximum_is_never_below_the_readers_own_interval(settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 600
    settings.MONGOPOOL_HEARTBEAT_MAX_SECONDS = 60
    assert conf.heartbeat_max_seconds == 600
    assert _live([_beat("peer", age=1500, interval=600)]) == ["peer"]


def test_max_seconds_is_validated(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.MONGOPOOL_HEARTBEAT_MAX_SECONDS = 0
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_HEARTBEAT_MAX_SECONDS must be"):
        conf.heartbeat_max_seconds  # noqa: B018


def test_a_shorter_ttl_index_of_an_earlier_version_is_replaced():
    target = mongomock.MongoClient().db.mongopool_heartbeats
    # What 0.1.0 created: beats deleted 6 intervals (at least 60 s) after the creator's interval.
    target.create_index("updated_at", expireAfterSeconds=60, name="mongopool_ttl")
    heartbeat.ensure_index(target)
    indexes = target.index_information()
    assert "mongopool_ttl" not in indexes
    assert indexes[heartbeat.INDEX_NAME]["expireAfterSeconds"] == reading.PRUNE_AFTER_SECONDS
    heartbeat.ensure_index(target)  # idempotent
    assert set(target.index_information()) == {"_id_", heartbeat.INDEX_NAME}
