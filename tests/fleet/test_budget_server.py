"""MONGOPOOL_FLEET_BUDGET against the real server: shares follow the fleet in the heartbeats,
pools are resized, idle connections above a shrunken share are closed, requests above the
share wait and get the usual 503, and an unreadable heartbeat collection keeps the last share.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from django_mongopool.client import pools
from django_mongopool.client.process import get_client, get_database
from django_mongopool.fleet import heartbeat, shares
from tests.helpers import HoldConnection, established_to, outcome

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db]

BUDGET = 24
MAX_POOL = 8


@pytest.fixture(autouse=True)
def _one_publisher():
    """``_beat()`` publishes as one publisher per test, as a process has one."""
    _publishers.clear()
    yield
    _publishers.clear()


def _pool():
    (server,) = get_client()._topology._servers.values()
    return server.pool


def _other_processes(count: int) -> None:
    now = dt.datetime.now(dt.UTC)
    heartbeat.collection().insert_many(
        [
            heartbeat.sign(
                {
                    "_id": f"other:{pid}:1",
                    "host": "other",
                    "pid": 1000 + pid,
                    "interval": 1,
                    "updated_at": now,
                    "max_pool_size": MAX_POOL,
                }
            )
            for pid in range(count)
        ]
    )


_publishers: list[heartbeat.Publisher] = []


def _beat() -> heartbeat.Publisher:
    """Beat as this process's one publisher (one heartbeat document per process)."""
    if not _publishers:
        _publishers.append(heartbeat.Publisher())
    _publishers[0].beat()
    return _publishers[0]


def test_a_new_process_starts_at_the_minimum_share(budgeted):
    assert _pool().max_pool_size == 1  # MONGOPOOL_FLEET_MIN_SHARE, never maxPoolSize
    report = shares.report()
    assert report["share"] == 1 and report["source"].startswith("minimum share")


def test_the_share_follows_the_live_processes(budgeted):
    _other_processes(3)
    _beat()  # 4 live processes: 24 // 4 - 2 monitors = 4
    assert _pool().max_pool_size == 4
    assert shares.report()["live_processes"] == 4
    heartbeat.collection().delete_many({"host": "other"})
    _beat()  # alone again: 24 - 2 = 22, capped at maxPoolSize
    assert _pool().max_pool_size == MAX_POOL
    assert shares.report()["source"] == "fleet"


def test_idle_connections_above_a_shrunken_share_are_closed(budgeted, mongo_server):
    _beat()
    assert _pool().max_pool_size == MAX_POOL
    collection = get_database()["items"]
    hold = budgeted
    with ThreadPoolExecutor(MAX_POOL) as executor:
        futures = [
            executor.submit(collection.find_one, {}, comment="hold") for _ in range(MAX_POOL)
        ]
        try:
            deadline = time.monotonic() + 30
            while _pool().active_sockets < MAX_POOL:
                assert time.monotonic() < deadline, (
                    f"the {MAX_POOL} held commands never all had a connection checked out "
                    f"({_pool().active_sockets} had; finished early: "
                    f"{[outcome(f) for f in futures if f.done()]})"
                )
                hold.holding.wait(0.05)
        finally:  # leaving the executor waits for the held commands
            hold.release.set()
        [f.result(timeout=30) for f in futures]
    assert len(_pool().conns) > 2, (len(_pool().conns), _pool().active_sockets)  # back, idle
    _other_processes(5)  # 6 live: 24 // 6 - 2 = 2
    _beat()
    assert _pool().max_pool_size == 2
    assert len(_pool().conns) + _pool().active_sockets <= 2
    # The share plus the monitors, once the operating system has torn the closed sockets down
    # (a socket another thread is still closing can show as established for a moment).
    deadline = time.monotonic() + 10
    while established_to(mongo_server.ports) > 2 + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert established_to(mongo_server.ports) <= 2 + 2


def test_requests_above_the_share_wait_then_get_503(budgeted):
    _other_processes(7)  # 8 live: 24 // 8 - 2 = 1
    _beat()
    assert _pool().max_pool_size == 1
    hold = budgeted
    holder = threading.Thread(
        target=lambda: get_database()["items"].find_one({}, comment="hold"), daemon=True
    )
    holder.start()
    assert hold.holding.wait(30)
    try:
        response = Client().get("/t/insert/")
    finally:
        hold.release.set()
        holder.join(30)
    assert response.status_code == 503 and response["Retry-After"]
    (server,) = pools.snapshot().servers
    assert server.budget_refusals == 1  # refused because the share, not maxPoolSize, was full
    assert shares.report()["refusals"] == 1


def test_growing_share_wakes_waiting_requests(budgeted, settings):
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        **settings.MONGOPOOL_CLIENT_OPTIONS,
        "waitQueueTimeoutMS": 5000,
        "event_listeners": [hold],
    }
    get_database()["items"].find_one({})
    assert _pool().max_pool_size == 1
    holder = threading.Thread(
        target=lambda: get_database()["items"].find_one({}, comment="hold"), daemon=True
    )
    holder.start()
    assert hold.holding.wait(30)
    try:
        waiter = ThreadPoolExecutor(1).submit(get_database()["items"].find_one, {"_id": "warm-up"})
        deadline = time.monotonic() + 30
        while pools.snapshot().servers[0].waiting == 0:
            assert not waiter.done(), (
                f"the request finished without waiting for a connection: {outcome(waiter)}"
            )
            assert time.monotonic() < deadline, "the request never waited for a connection"
            hold.holding.wait(0.02)
        shares.update(1)  # alone: the share grows to maxPoolSize and the waiter is let in
        assert waiter.result(timeout=10) == {"_id": "warm-up"}
    finally:
        hold.release.set()
        holder.join(30)


def test_unreadable_heartbeats_keep_the_last_share_and_say_so_once(budgeted, monkeypatch, caplog):
    from pymongo.errors import OperationFailure

    _other_processes(3)
    _beat()
    assert _pool().max_pool_size == 4

    def refuse(*args, **kwargs):
        raise OperationFailure("not authorized on test to execute command { find }", code=13)

    monkeypatch.setattr(heartbeat, "read_fleet", refuse)
    publisher = _publishers[0]
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        for _ in range(3):
            try:
                publisher.beat()
            except OperationFailure as exc:
                shares.fleet_unreadable(str(exc))
    assert _pool().max_pool_size == 4
    assert shares.report()["source"] == "last known share (heartbeats unreadable)"
    assert sum("cannot be read" in r.getMessage() for r in caplog.records) == 1


def test_budget_and_share_are_shown_everywhere(budgeted, admin_client, settings):
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    settings.MONGOPOOL_METRICS_TOKEN = "a-token-of-sixteen-chars"
    _other_processes(1)
    publisher = _beat()  # 2 live: 24 // 2 - 2 = 10, capped at 8
    publisher.beat()  # a beat publishes the share computed at the previous one
    own = heartbeat.collection().find_one({"_id": publisher.beat_id})
    assert own["fleet_budget"]["share"] == MAX_POOL and own["fleet_budget"]["budget"] == BUDGET

    page = admin_client.get(reverse("admin:django_mongopool_poolhealth_changelist"))
    assert b"Fleet budget" in page.content and b"mp-fleet-budget" in page.content
    report = admin_client.get(
        reverse("admin:django_mongopool_poolhealth_changelist") + "?format=json"
    ).json()
    assert report["fleet_budget"]["budget"] == BUDGET
    assert report["fleet_budget"]["this_process"]["share"] == MAX_POOL
    assert report["fleet_budget"]["processes_reporting"] == 1  # the fake process published none

    metrics = Client().get(
        reverse("mongopool:metrics"), headers={"Authorization": "Bearer a-token-of-sixteen-chars"}
    )
    text = metrics.content.decode()
    assert f"mongopool_fleet_budget_connections {float(BUDGET)}" in text
    assert f"mongopool_fleet_share_connections {float(MAX_POOL)}" in text

    out = StringIO()
    call_command("mongo_connections", stdout=out)
    assert "Fleet budget" in out.getvalue() and "SHARE" in out.getvalue()
    assert publisher.beats == 2
