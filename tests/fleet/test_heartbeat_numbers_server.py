"""A heartbeat with a huge number (``open: 1e308``) breaks no output.

Whether the document is signed with the app's key (then it is "odd": counted as
unreadable) or not (then it is forged), the page, its JSON, /metrics and every format of
``mongo_connections`` answer, and the fleet's figures are those of the real processes.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.fleet import heartbeat
from tests.helpers import strict_json

pytestmark = [pytest.mark.server, pytest.mark.django_db]

TOKEN = "a-token-of-sixteen-chars"


@pytest.fixture
def publisher(mongo, settings, monkeypatch):
    heartbeat.stop()
    monkeypatch.setattr(heartbeat, "running_here", True)
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    settings.MONGOPOOL_FLEET_BUDGET = 100
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    heartbeat.collection().drop()
    publisher = heartbeat.Publisher()
    publisher.beat()
    yield publisher
    heartbeat.collection().drop()


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_a_beat_with_open_1e308_breaks_no_output(publisher, admin_client, signed):
    huge = heartbeat.build_document("huge:1:0", publisher.started_at, 0)
    for name in ("open", "in_use", "waiting", "pools", "max_pool_size", "checkout_timeouts"):
        huge[name] = 1e308
    for name in ("recent_checkout_timeouts", "sessions_started", "sessions_ended"):
        huge[name] = 1e308
    huge["servers"] = [
        {"pool": "sync", "address": "db:1", "open": 1e308, "in_use": 1e308, "waiting": 1e308}
    ] * 2
    huge["fleet_budget"] = {"share": 1e308}
    if signed:
        heartbeat.sign(huge)
    heartbeat.collection().insert_one(huge)
    publisher.beat()  # reads the fleet for its share: the huge beat is not a live process

    page_url = reverse("admin:django_mongopool_poolhealth_changelist")
    page = admin_client.get(page_url)
    response = admin_client.get(page_url, {"format": "json"})
    metrics = Client().get(
        reverse("mongopool:metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    outputs = {}
    for fmt in ("text", "json", "prometheus"):
        out = StringIO()
        try:
            call_command("mongo_connections", "--format", fmt, stdout=out)
        except Exception as exc:  # collected: every output is checked before any assertion
            outputs[fmt] = repr(exc)
        else:
            outputs[fmt] = out.getvalue()
    statuses = (page.status_code, response.status_code, metrics.status_code)
    assert statuses == (200, 200, 200), statuses
    assert not [fmt for fmt, text in outputs.items() if text.startswith(("OverflowError", "Value"))]
    list(text_string_to_metric_families(metrics.content.decode()))
    list(text_string_to_metric_families(outputs["prometheus"]))
    assert strict_json(outputs["json"])["fleet"]["alive"] == 1

    fleet = strict_json(response.content.decode())["fleet"]
    assert [p["id"] for p in fleet["processes"]] == [publisher.beat_id]
    assert (fleet["unreadable"], fleet["forged"]) == ((1, 0) if signed else (0, 1))
    assert fleet["open"] < 10**6
