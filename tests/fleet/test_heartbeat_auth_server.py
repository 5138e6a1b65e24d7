"""Forged heartbeats against the real server: they never shrink a share and are shown as forged.

Anyone who can write to the app's database can insert heartbeat documents. Without the
app's secret their MAC does not verify: they never count as live processes, so they cannot
shrink a process's share of the fleet budget, and they are shown as forged.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from django_mongopool.client.process import get_client, get_database
from django_mongopool.fleet import heartbeat

pytestmark = [pytest.mark.server, pytest.mark.django_db]

BUDGET = 40
MAX_POOL = 10
FORGED = 60


def _pool():
    (server,) = get_client()._topology._servers.values()
    return server.pool


def _forge(publisher: heartbeat.Publisher, count: int) -> list[str]:
    """Well-formed documents as this app writes them, dated a few seconds ahead, claiming an
    interval of an hour: what a writer without the app's secret can produce."""
    template = heartbeat.build_document(publisher.beat_id, publisher.started_at, 0)
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    forged = [
        {
            **template,
            "_id": f"forged:{n}:0",
            "pid": 10_000 + n,
            "updated_at": ahead,
            "interval": 3600,
        }
        for n in range(count)
    ]
    for n, doc in enumerate(forged[::2]):  # half of them without any MAC at all
        doc.pop("mac", None)
        doc["host"] = f"forged-{n}"
    heartbeat.collection().insert_many(forged)
    return [doc["_id"] for doc in forged]


def test_forged_beats_do_not_shrink_the_share_and_ready_stays_200(budgeted):
    publisher = heartbeat.Publisher()
    publisher.beat()  # alone: the whole budget less the monitors, capped at maxPoolSize
    assert _pool().max_pool_size == MAX_POOL
    _forge(publisher, FORGED)
    publisher.beat()
    assert _pool().max_pool_size == MAX_POOL  # 61 "live" processes would make it 1

    hold = budgeted
    holder = threading.Thread(
        target=lambda: get_database()["items"].find_one({}, comment="hold"), daemon=True
    )
    holder.start()
    assert hold.holding.wait(30)
    try:
        response = Client().get("/mongopool/ready")
    finally:
        hold.release.set()
        holder.join(30)
    assert response.status_code == 200, response.content


def test_forged_beats_are_shown_as_forged(budgeted, admin_client):
    publisher = heartbeat.Publisher()
    publisher.beat()
    ids = _forge(publisher, FORGED)

    reading = heartbeat.read_fleet()
    assert [p["id"] for p in reading.processes] == [publisher.beat_id]
    assert reading.forged == FORGED

    page = admin_client.get("/admin/django_mongopool/poolhealth/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"{FORGED} forged heartbeat document(s)" in text
    data = admin_client.get("/admin/django_mongopool/poolhealth/?format=json").json()
    fleet = data["fleet"]
    assert (fleet["alive"], fleet["forged"]) == (1, FORGED)
    assert set(fleet["forged_ids"]) <= set(ids) and fleet["forged_ids"]
    assert any("forged" in note for note in data["notes"])

    out = StringIO()
    call_command("mongo_connections", stdout=out)
    assert f"{FORGED} forged heartbeat document(s)" in out.getvalue()
    out = StringIO()
    call_command("mongo_connections", "--format", "json", stdout=out)
    assert json.loads(out.getvalue())["fleet"]["forged"] == FORGED
