"""What the server and the heartbeat collection say is untrusted (issue 12 items 3 and 4).

Control characters in application names, driver names, client hosts, heartbeat
fields and server messages are shown escaped in text output, one line per value;
odd replies (non-numeric or infinite counts, wrong types) never crash the command's
text, JSON or Prometheus output, nor the page's JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from mockupdb import OpMsg
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.fleet import heartbeat
from django_mongopool.guards.terminal import safe
from tests.audit.mockup import cursor_reply, start_servers

INF = math.inf
NAN = math.nan
EVIL_APP = "evil\x1b]0;owned\x07\nFAKE: all connections healthy"
EVIL_HOST = "10.0.0.1\x1b[2J\x1b[H"
EVIL_DRIVER = "drv\r\x1b[1A\u202e"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("shop-web", "shop-web"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("title\x1b]0;x\x07", "title\\x1b]0;x\\x07"),
        ("two\nlines\r", "two\\nlines\\r"),
        ("tab\there", "tab\\there"),
        ("c1\x9b2J", "c1\\x9b2J"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("line\u2028sep", "line\\u2028sep"),
        ("back\\slash", "back\\\\slash"),
        ("café 東京", "café 東京"),
        (42, "42"),
        (None, "None"),
    ],
)
def test_safe(text: Any, shown: str) -> None:
    assert safe(text) == shown
    assert safe(text).isprintable()


def _beat(**fields: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "_id": "web-1:100",
        "host": "web-1",
        "pid": 100,
        "app": "shop-web",
        "started_at": now,
        "updated_at": now,
        "interval": 10,
        "max_pool_size": 10,
        "open": 1,
        "in_use": 0,
        "waiting": 0,
        "checkout_timeouts": 0,
        "recent_checkout_timeouts": 0,
        "sessions_started": 0,
        "sessions_ended": 0,
        "servers": [{"pool": "sync", "address": "db:27017", "open": 1, "in_use": 0, "waiting": 0}],
        **fields,
    }


def _heartbeats(server: Any, docs: list[dict[str, Any]]) -> None:
    # Signed with the app's key: what they test is how their values are read.
    signed = [heartbeat.sign(dict(doc)) for doc in docs]
    server.mock.autoresponds(
        OpMsg("find", "mongopool_heartbeats"),
        {"ok": 1, "cursor": {"id": 0, "ns": "shop.mongopool_heartbeats", "firstBatch": signed}},
    )


def _serve_one(point_at: Any, status: Any, groups: Any, beats: list[dict[str, Any]]) -> None:
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, status, groups)
    _heartbeats(server, beats)
    point_at(f"mongodb://{server.address}/shop?directConnection=true&appname=auditor", [server])


def _run(*args: str) -> str:
    out = StringIO()
    call_command("mongo_connections", "--timeout", "1", *args, stdout=out)
    return out.getvalue()


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_text_output_escapes_everything_from_outside(point_at):
    groups = [
        {
            "_id": {"app": EVIL_APP, "host": EVIL_HOST},
            "connections": 3,
            "active": 1,
            "drivers": [EVIL_DRIVER],
        },
        {"_id": {"app": "shop-web", "host": "10.0.0.2"}, "connections": 2, "active": 0},
    ]
    refused = {"ok": 0, "code": 2, "errmsg": "bad\x1b[31m\nforged: utilisation 1%"}
    beat = _beat(host="web\x1b]52;c;ZXZpbA==\x07", app="a\nFAKE: line", _id="id\x1b[8m")
    _serve_one(point_at, refused, cursor_reply(groups), [beat])
    text = _run()
    for raw in ("\x1b", "\x07", "\r", "\u202e", "\x9b"):
        assert raw not in text
    assert not any(
        line.startswith("FAKE") or line.startswith("forged") for line in text.splitlines()
    )
    assert "evil\\x1b]0;owned\\x07\\nFAKE: all connections healthy" in text
    assert "10.0.0.1\\x1b[2J\\x1b[H" in text
    assert "drv\\r\\x1b[1A\\u202e" in text
    assert "web\\x1b]52;c;ZXZpbA==\\x07" in text and "a\\nFAKE: line" in text
    assert "bad\\x1b[31m" in text  # the server's message, first line, escaped
    prometheus = _run("--format", "prometheus")
    assert "\x1b" not in prometheus and "\x07" not in prometheus
    families = {f.name: f for f in text_string_to_metric_families(prometheus)}
    apps = {s.labels["app"] for s in families["mongopool_app_connections"].samples}
    assert safe(EVIL_APP) in apps  # one line, visible escapes, parsed back intact
    report = _strict_json(_run("--format", "json"))
    assert report["server"]["applications"]["apps"][0]["app"] == EVIL_APP  # JSON escapes itself


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
MALFORMED_BEATS = [
    {"_id": "a", "updated_at": "yesterday", "host": None, "pid": "1", "servers": [1, 2]},
    _beat(_id="b", interval=INF),
    _beat(_id="c", open=None, servers="all"),
    _beat(_id="d", pid=True, max_pool_size=-1),
]
CASES = [(name, status, cursor_reply([])) for name, status in MALFORMED_STATUS.items()] + [
    (name, {"ok": 1, "connections": {"current": 10, "available": 90}}, cursor_reply(groups))
    for name, groups in MALFORMED_GROUPS.items()
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "status", "groups"), CASES, ids=[c[0] for c in CASES])
def test_odd_replies_never_crash_any_output(point_at, admin_client, name, status, groups):
    _serve_one(point_at, status, groups, MALFORMED_BEATS)
    text = _run()
    assert "MongoDB connection audit" in text
    assert "4 unreadable heartbeat document(s) skipped" in text
    report = _strict_json(_run("--format", "json"))
    assert report["fleet"]["unreadable"] == 4
    list(text_string_to_metric_families(_run("--format", "prometheus")))
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    for query in ({"format": "json"}, {"format": "json", "current_op": "1"}):
        response = admin_client.get(page, query)
        assert response.status_code == 200
        _strict_json(response.content.decode())
    assert admin_client.get(page, {"current_op": "1"}).status_code == 200
    if name in MALFORMED_STATUS and name != "huge counts":
        assert report["server"]["utilisation_percent"] is None or name == "mixed"
    if name in {"string counts", "infinite count", "id not a document", "no _id"}:
        assert any("$currentOp group(s) with unexpected types" in n for n in report["notes"])


def test_odd_counts_are_named_in_a_note(point_at):
    _serve_one(point_at, MALFORMED_STATUS["mixed"], cursor_reply([]), [])
    report = _strict_json(_run("--format", "json"))
    assert report["server"]["connections"] == {"current": 10}
    assert any(
        "serverStatus.connections.available, rejected not a count" in n for n in report["notes"]
    )
