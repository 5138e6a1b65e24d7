"""Mixed heartbeat intervals, pruning, and what a read fetches, against the real server."""

from __future__ import annotations

import datetime as dt

import pytest
from pymongo import monitoring

from django_mongopool.fleet import heartbeat, reading, shares

pytestmark = [pytest.mark.server]


class Finds(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == "mongopool_heartbeats":
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def fast(mongo, settings, monkeypatch):
    """This process beats every second; no background thread beats besides the test's."""
    heartbeat.stop()
    monkeypatch.setattr(heartbeat, "running_here", True)
    finds = Finds()
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 10, "event_listeners": [finds]}
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    settings.MONGOPOOL_FLEET_BUDGET = 100
    heartbeat.collection().drop()
    yield finds
    heartbeat.collection().drop()


def _server_now() -> dt.datetime:
    return heartbeat.server_clock(heartbeat.collection().database).now()


def _slow_beat(_id: str, age: float, interval: float) -> dict:
    """A beat of another process that beats every ``interval`` seconds, ``age`` seconds old."""
    publisher = heartbeat.Publisher()
    doc = heartbeat.build_document(_id, publisher.started_at, 0)
    doc.update(updated_at=_server_now() - dt.timedelta(seconds=age), interval=interval, pid=4242)
    return heartbeat.sign(doc)


def test_a_process_beating_every_second_keeps_one_beating_every_100_seconds(fast):
    slow = _slow_beat("slow:4242:0", age=70, interval=100)
    heartbeat.collection().insert_one(slow)
    publisher = heartbeat.Publisher()
    publisher.beat()
    assert heartbeat.collection().find_one({"_id": slow["_id"]}) is not None  # not pruned
    live = {p["id"] for p in heartbeat.read_fleet().processes}
    assert live == {publisher.beat_id, slow["_id"]}
    assert shares.report()["live_processes"] == 2  # the budget is split with it


def test_pruning_removes_undated_odd_and_stale_beats_alike(fast):
    week_old = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
    heartbeat.collection().insert_many(
        [
            {"_id": "undated:1:0", "host": "x", "pid": 1},
            {"_id": "text:1:0", "updated_at": "yesterday"},
            {"_id": "null:1:0", "updated_at": None},
            {"_id": "list:1:0", "updated_at": [1, 2]},
            {"_id": "stale:1:0", "host": "x", "pid": 1, "updated_at": week_old},
        ]
    )
    publisher = heartbeat.Publisher()
    publisher.beat()
    assert [d["_id"] for d in heartbeat.collection().find({})] == [publisher.beat_id]


def test_reads_fetch_only_live_beats_with_a_projection_and_an_index(fast):
    publisher = heartbeat.Publisher()
    publisher.beat()
    keys = [spec["key"] for spec in heartbeat.collection().index_information().values()]
    assert [("updated_at", 1)] in [[tuple(k) for k in key] for key in keys]
    fast.commands.clear()
    heartbeat.read_fleet()
    (find,) = fast.commands
    window = find["filter"]["updated_at"]
    assert set(window) == {"$gte", "$lte"}
    longest = reading.live_window(300)  # MONGOPOOL_HEARTBEAT_MAX_SECONDS' default
    assert (window["$lte"] - window["$gte"]).total_seconds() == pytest.approx(
        longest + reading.MAX_SKEW_SECONDS, abs=0.01
    )
    assert set(find["projection"]) == {*reading.FIELDS, reading.MAC_FIELD}


def test_creating_the_index_is_idempotent(fast):
    target = heartbeat.collection()
    target.insert_one({"_id": "seed"})
    heartbeat.ensure_index(target)
    heartbeat.ensure_index(target)
    on_updated = [
        name
        for name, spec in target.index_information().items()
        if [tuple(k) for k in spec["key"]] == [("updated_at", 1)]
    ]
    assert on_updated == [heartbeat.INDEX_NAME]
