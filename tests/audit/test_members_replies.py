"""What members reply to ``serverStatus`` and to the ``$currentOp`` aggregate is untrusted.

``audit/members.py`` reads every count where it parses a reply: a whole number from 0 to
2**53 - 1. Anything else (huge such as ``1e308``, fractional, NaN, infinite, a boolean, a
string), a document of the wrong shape, or a reply that is not a cursor, is left out and named
in a note. The command's text, JSON and Prometheus output, the page, its JSON and ``/metrics``
all still answer (``connections: {current: 1e308}`` once gave them a 500 or an ``OverflowError``).
"""

from __future__ import annotations

import json
import math

import pytest
from bson.int64 import Int64
from django.test import Client
from django.urls import reverse
from mockupdb import OpMsg
from prometheus_client.parser import text_string_to_metric_families

from tests.audit.mockup import command_output, cursor_reply, heartbeat_doc, serve_one
from tests.helpers import strict_json

TOKEN = "t" * 40
BIG = 2**53 - 1
INF = math.inf
NAN = math.nan
PAGE = "admin:django_mongopool_poolhealth_changelist"


# --- huge counts ----------------------------------------------------------------------------

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


def _serve_connections(point_at, connections, groups) -> None:
    serve_one(point_at, {"ok": 1, "connections": connections}, cursor_reply(groups), [])


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(HUGE_STATUS))
def test_huge_numbers_never_break_any_output(point_at, admin_client, settings, name):
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    _serve_connections(point_at, HUGE_STATUS[name], HUGE_GROUPS)
    text = command_output()
    assert "MongoDB connection audit" in text
    report = strict_json(command_output("--format", "json"))
    connections = report["server"]["connections"] or {}
    assert all(isinstance(v, int) and 0 <= v <= BIG for v in connections.values())
    assert any("not a count" in note for note in report["notes"])  # named, not silently dropped
    list(text_string_to_metric_families(command_output("--format", "prometheus")))
    apps = {a["app"]: a for a in report["server"]["applications"]["apps"]}
    assert set(apps) == {"biggest"}  # the odd groups are left out, and counted
    assert apps["biggest"]["connections"] == BIG
    assert any("3 $currentOp group(s)" in note for note in report["notes"])
    page = reverse(PAGE)
    for query in ({}, {"format": "json"}, {"format": "json", "current_op": "1"}):
        response = admin_client.get(page, query)
        assert response.status_code == 200
        if query:
            strict_json(response.content.decode())
    scrape = Client().get(
        reverse("mongopool:metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert scrape.status_code == 200
    list(text_string_to_metric_families(scrape.content.decode()))


def test_the_largest_believable_count_is_kept(point_at):
    _serve_connections(point_at, {"current": BIG, "available": BIG}, [])
    report = strict_json(command_output("--format", "json"))
    assert report["server"]["connections"] == {"current": BIG, "available": BIG}
    assert report["budget"]["server_capacity"] == 2 * BIG
    families = {
        f.name: f for f in text_string_to_metric_families(command_output("--format", "prometheus"))
    }
    states = {s.labels["state"]: s.value for s in families["mongopool_server_connections"].samples}
    assert states["current"] == float(BIG)


# --- counts and documents of the wrong type -------------------------------------------------

MALFORMED_STATUS = {
    "string current": {"ok": 1, "connections": {"current": "lots", "available": 5}},
    "infinite current": {"ok": 1, "connections": {"current": INF, "available": 10}},
    "nan available": {"ok": 1, "connections": {"current": 10, "available": NAN}},
    "bool and negative": {"ok": 1, "connections": {"current": True, "available": -3}},
    "connections a string": {"ok": 1, "connections": "many"},
    "connections null": {"ok": 1, "connections": None},
    "huge counts": {"ok": 1, "connections": {"current": 1e300, "available": 1e300}},
    "mixed": {"ok": 1, "connections": {"current": 10, "available": "5", "rejected": [1]}},
}
MALFORMED_GROUPS = {
    "id not a document": [{"_id": "x", "connections": 1}],
    "non-string app and host": [
        {"_id": {"app": 123, "host": ["10.0.0.1"]}, "connections": 3, "drivers": "nodejs"}
    ],
    "string counts": [{"_id": {"app": "a", "host": "h"}, "connections": "3", "active": "1"}],
    "infinite count": [{"_id": {"app": "a", "host": "h"}, "connections": INF}],
    "nested app, null host, odd drivers": [
        {"_id": {"app": {"x": 1}, "host": None}, "connections": 2, "drivers": [None, 5]}
    ],
    "active above connections": [{"_id": {"app": "a", "host": "h"}, "connections": 1, "active": 9}],
    "no _id": [{"connections": 4}],
}
# Served beside each case: the fleet section skips them, whatever the members said.
MALFORMED_BEATS = [
    {"_id": "a", "updated_at": "yesterday", "host": None, "pid": "1", "servers": [1, 2]},
    heartbeat_doc(_id="b", interval=INF),
    heartbeat_doc(_id="c", open=None, servers="all"),
    heartbeat_doc(_id="d", pid=True, max_pool_size=-1),
]
CASES = [(name, status, cursor_reply([])) for name, status in MALFORMED_STATUS.items()] + [
    (name, {"ok": 1, "connections": {"current": 10, "available": 90}}, cursor_reply(groups))
    for name, groups in MALFORMED_GROUPS.items()
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "status", "groups"), CASES, ids=[c[0] for c in CASES])
def test_odd_replies_never_crash_any_output(point_at, admin_client, name, status, groups):
    serve_one(point_at, status, groups, MALFORMED_BEATS)
    text = command_output()
    assert "MongoDB connection audit" in text
    assert "4 unreadable heartbeat document(s) skipped" in text
    report = strict_json(command_output("--format", "json"))
    assert report["fleet"]["unreadable"] == 4
    list(text_string_to_metric_families(command_output("--format", "prometheus")))
    page = reverse(PAGE)
    for query in ({"format": "json"}, {"format": "json", "current_op": "1"}):
        response = admin_client.get(page, query)
        assert response.status_code == 200
        strict_json(response.content.decode())
    assert admin_client.get(page, {"current_op": "1"}).status_code == 200
    if name in MALFORMED_STATUS and name != "huge counts":
        assert report["server"]["utilisation_percent"] is None or name == "mixed"
    if name in {"string counts", "infinite count", "id not a document", "no _id"}:
        assert any("$currentOp group(s) with unexpected types" in n for n in report["notes"])


def test_odd_counts_are_named_in_a_note(point_at):
    serve_one(point_at, MALFORMED_STATUS["mixed"], cursor_reply([]), [])
    report = strict_json(command_output("--format", "json"))
    assert report["server"]["connections"] == {"current": 10}
    assert any(
        "serverStatus.connections.available, rejected not a count" in n for n in report["notes"]
    )


# --- a $currentOp reply that is not a cursor -------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [{"ok": 1}, {"ok": 1, "cursor": {"id": 0, "ns": "admin.$cmd.aggregate", "firstBatch": 7}}],
    ids=["no cursor", "firstBatch not a list"],
)
def test_a_malformed_current_op_reply_is_a_note(recorded, settings, staff, reply):
    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = 0
    recorded.autoresponds("ping", {"ok": 1})
    recorded.autoresponds("serverStatus", {"ok": 1, "connections": {"current": 3, "available": 97}})
    recorded.autoresponds(OpMsg("aggregate", 1), reply)
    response = staff.get(reverse(PAGE) + "?format=json&current_op=1")
    assert response.status_code == 200
    if "cursor" not in reply:
        return  # pymongo reads a reply without a cursor as no documents: nothing broke
    notes = json.loads(response.content)["notes"]
    assert any("$currentOp" in note and "malformed" in note for note in notes), notes
