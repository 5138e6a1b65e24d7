"""Finite but absurd numbers in server replies (issue 25 item 5, the server side).

``connections: {current: 1e308}`` once gave the page, its JSON and ``/metrics`` a 500 and
every format of ``mongo_connections`` an ``OverflowError``. Every count read from
``serverStatus`` or ``$currentOp`` is now checked where it is parsed: a whole number from
0 to 2**53 - 1, anything else (huge, fractional, NaN, a boolean, a string) is left out and
named in a note.
"""

from __future__ import annotations

import json
import math
from io import StringIO
from typing import Any

import pytest
from bson.int64 import Int64
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.guards.untrusted import Unreadable
from django_mongopool.guards.untrusted import count as read_count
from tests.audit.mockup import cursor_reply, start_servers

TOKEN = "t" * 40
BIG = 2**53 - 1

HUGE_STATUS = {
    "1e308 current": {"current": 1e308, "available": 100},
    "1e308 both": {"current": 1e308, "available": 1e308},
    "1.7e308 available": {"current": 10, "available": 1.7e308},
    "int64 max": {"current": Int64(2**63 - 1), "available": Int64(2**63 - 1)},
    "just above the bound": {"current": 2**53, "available": 10},
    "fraction": {"current": 10.5, "available": 10},
    "negative zero and nan": {"current": -0.0, "available": math.nan},
}
HUGE_GROUPS = [
    {"_id": {"app": "huge", "host": "h1"}, "connections": 1e308, "active": 1e308},
    {"_id": {"app": "int64", "host": "h2"}, "connections": Int64(2**63 - 1), "active": 0},
    {"_id": {"app": "fine", "host": "h3"}, "connections": 7, "active": 1e308},
    {"_id": {"app": "biggest", "host": "h4"}, "connections": BIG, "active": 2},
]


def _serve(point_at: Any, connections: Any, groups: Any) -> None:
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, {"ok": 1, "connections": connections}, cursor_reply(groups))
    point_at(f"mongodb://{server.address}/shop?directConnection=true&appname=auditor", [server])


def _command(*args: str) -> str:
    out = StringIO()
    call_command("mongo_connections", "--timeout", "1", *args, stdout=out)
    return out.getvalue()


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (0, 0),
        (BIG, BIG),
        (Int64(5), 5),
        (12.0, 12),
        (1e308, None),
        (BIG + 1, None),
        (Int64(2**63 - 1), None),
        (-1, None),
        (0.5, None),
        (math.inf, None),
        (math.nan, None),
        (True, None),
        ("5", None),
        (None, None),
    ],
)
def test_a_count_is_a_whole_number_within_the_bound(value, count):
    if count is None:
        with pytest.raises(Unreadable):
            read_count(value, whole_floats=True)
    else:
        read = read_count(value, whole_floats=True)
        assert read == count and type(read) is int


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(HUGE_STATUS))
def test_huge_numbers_never_break_any_output(point_at, admin_client, settings, name):
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    _serve(point_at, HUGE_STATUS[name], HUGE_GROUPS)
    text = _command()
    assert "MongoDB connection audit" in text
    report = _strict(_command("--format", "json"))
    connections = report["server"]["connections"] or {}
    assert all(isinstance(v, int) and 0 <= v <= BIG for v in connections.values())
    assert any("not a count" in note for note in report["notes"])  # named, not silently dropped
    list(text_string_to_metric_families(_command("--format", "prometheus")))
    apps = {a["app"]: a for a in report["server"]["applications"]["apps"]}
    assert set(apps) == {"biggest"}  # the odd groups are left out, and counted
    assert apps["biggest"]["connections"] == BIG
    assert any("3 $currentOp group(s)" in note for note in report["notes"])
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    for query in ({}, {"format": "json"}, {"format": "json", "current_op": "1"}):
        response = admin_client.get(page, query)
        assert response.status_code == 200
        if query:
            _strict(response.content.decode())
    scrape = Client().get(
        reverse("mongopool:metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert scrape.status_code == 200
    list(text_string_to_metric_families(scrape.content.decode()))


def test_the_largest_believable_count_is_kept(point_at):
    _serve(point_at, {"current": BIG, "available": BIG}, [])
    report = _strict(_command("--format", "json"))
    assert report["server"]["connections"] == {"current": BIG, "available": BIG}
    assert report["budget"]["server_capacity"] == 2 * BIG
    families = {
        f.name: f for f in text_string_to_metric_families(_command("--format", "prometheus"))
    }
    states = {s.labels["state"]: s.value for s in families["mongopool_server_connections"].samples}
    assert states["current"] == float(BIG)
