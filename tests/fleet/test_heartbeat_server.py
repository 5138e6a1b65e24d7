"""Heartbeats from real processes, aggregated by the command."""

from __future__ import annotations

import datetime as dt
import json
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from django_mongopool.client import pools
from django_mongopool.fleet import heartbeat, history
from tests.helpers import bound_child, closed_port, wait_child

pytestmark = [pytest.mark.server, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _stop_publisher():
    yield
    heartbeat.stop()


def _wait(predicate, attempts=600):
    import time

    for _ in range(attempts):
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_first_request_starts_the_publisher(mongo, settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    assert Client().get("/t/untouched/").status_code == 200
    publisher = heartbeat.ensure_started()  # started by that request (or by an earlier test's)
    # Two beats from now: the second describes a pool the first beat's own write opened.
    assert heartbeat.wait_for_beats(publisher.beats + 2)
    docs = list(heartbeat.collection().find({"pid": os.getpid()}))
    assert len(docs) == 1  # one document per process, updated in place
    doc = docs[0]
    assert doc["app"] == "django-mongopool" and doc["interval"] == 1
    assert doc["options"]["maxPoolSize"] == 10
    assert "updated_at" in doc and doc["servers"]
    assert len(doc["mac"]) == 64  # HMAC-SHA256 (verified in test_heartbeat_auth)
    keys = [spec["key"] for spec in heartbeat.collection().index_information().values()]
    assert [("updated_at", 1)] in [[tuple(k) for k in key] for key in keys]
    # The publisher prunes beats no process can count: undated, and older than any window.
    day_old = doc["updated_at"] - dt.timedelta(days=1)
    heartbeat.collection().insert_many(
        [{"_id": "gone:1:1", "updated_at": day_old}, {"_id": "undated:1:1"}]
    )
    beats = publisher.beats
    assert heartbeat.wait_for_beats(beats + 2)  # one full beat after the insert
    assert (
        heartbeat.collection().count_documents({"_id": {"$in": ["gone:1:1", "undated:1:1"]}}) == 0
    )


def test_heartbeats_off_publish_nothing_but_history_is_sampled(mongo):
    Client().get("/t/insert/")
    publisher = heartbeat.ensure_started()
    assert _wait(lambda: len(history.samples()) >= 1)
    assert publisher.beats == 0
    assert heartbeat.collection().count_documents({}) == 0
    sample = history.samples()[-1]
    assert set(sample) == {"t", "open", "in_use", "waiting"}


def test_publisher_survives_the_server_being_away(settings):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{closed_port()}/hb"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 100}
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    publisher = heartbeat.ensure_started()
    assert publisher is not None
    assert _wait(lambda: publisher.failures >= 2)
    assert publisher.is_alive()
    assert publisher.beats == 0


def _worker(requests: int, write) -> int:
    client = Client()
    for n in range(requests):
        if client.get(f"/t/insert/?key=w{os.getpid()}-{n}").status_code != 200:
            return 3
    publisher = heartbeat.ensure_started()
    publisher.beat()
    write.write(json.dumps({"pid": os.getpid(), **pools.snapshot().as_dict()}))
    write.flush()
    return 0


def test_fleet_totals_match_what_each_process_reports(mongo, settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 60
    reports = []
    for requests in (2, 4, 6):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                bound_child()  # a hung child ends, and with it the parent's read below
                os.close(read_fd)
                with os.fdopen(write_fd, "w") as write:
                    code = _worker(requests, write)
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd) as read:
            data = read.read()
        assert wait_child(pid) == 0
        reports.append(json.loads(data))

    out = StringIO()
    call_command("mongo_connections", "--format", "json", stdout=out)
    fleet = json.loads(out.getvalue())["fleet"]
    assert fleet["alive"] == 3
    by_pid = {p["pid"]: p for p in fleet["processes"]}
    assert set(by_pid) == {r["pid"] for r in reports}
    for own in reports:
        seen = by_pid[own["pid"]]
        for key in ("open", "in_use", "waiting", "sessions_started", "sessions_ended"):
            assert seen[key] == own[key], (key, seen, own)
    assert fleet["open"] == sum(r["open"] for r in reports)
    assert fleet["in_use"] == sum(r["in_use"] for r in reports)
    assert [by_pid[r["pid"]]["sessions_started"] for r in reports] == [2, 4, 6]
    assert fleet["busiest"]["pid"] in by_pid

    text = StringIO()
    call_command("mongo_connections", stdout=text)
    assert "Fleet (3 live processes)" in text.getvalue()


# --- a heartbeat dated in the future is not live, and the publisher prunes it ---


def test_a_beat_dated_an_hour_ahead_is_not_live_and_is_pruned(mongo, settings):
    from django_mongopool.fleet import heartbeat, reading

    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    heartbeat.collection().drop()
    publisher = heartbeat.Publisher()
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    # Signed with the app's key: a verified beat, dated an hour ahead of the server.
    future = heartbeat.build_document("elsewhere:4242:0", publisher.started_at, 0, ahead)
    heartbeat.collection().insert_one(future)

    assert heartbeat.read_fleet().processes == []  # not even fetched: outside the live window
    every = reading.read(
        heartbeat.collection().find({}), dt.datetime.now(dt.UTC), secrets=heartbeat.secrets()
    )
    assert (every.processes, every.future, every.forged) == ([], [future["_id"]], 0)
    assert reading.summary(every)["future_dated"] == 1

    publisher.beat()
    assert heartbeat.collection().find_one({"_id": future["_id"]}) is None
    live = [p["id"] for p in heartbeat.read_fleet().processes]
    assert live == [publisher.beat_id]
