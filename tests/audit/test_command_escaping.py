"""Text from outside the app in ``mongo_connections``' output: application names, driver names
and client hosts (``$currentOp``), heartbeat fields and a server's error message.

In the text output each is escaped (control characters, ANSI and OSC sequences, line breaks,
bidi overrides shown as visible escapes), one line per value, so a hostile name can neither
rewrite the terminal nor forge a line of the report. Prometheus labels carry the same escaped
text and parse back intact; JSON escapes by itself and keeps the value as it came.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.guards.terminal import safe
from tests.audit.mockup import command_output, cursor_reply, heartbeat_doc, serve_one
from tests.helpers import strict_json

EVIL_APP = "evil\x1b]0;owned\x07\nFAKE: all connections healthy"
EVIL_HOST = "10.0.0.1\x1b[2J\x1b[H"
EVIL_DRIVER = "drv\r\x1b[1A\u202e"


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
    beat = heartbeat_doc(host="web\x1b]52;c;ZXZpbA==\x07", app="a\nFAKE: line", _id="id\x1b[8m")
    serve_one(point_at, refused, cursor_reply(groups), [beat])
    text = command_output()
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
    prometheus = command_output("--format", "prometheus")
    assert "\x1b" not in prometheus and "\x07" not in prometheus
    families = {f.name: f for f in text_string_to_metric_families(prometheus)}
    apps = {s.labels["app"] for s in families["mongopool_app_connections"].samples}
    assert safe(EVIL_APP) in apps  # one line, visible escapes, parsed back intact
    report = strict_json(command_output("--format", "json"))
    assert report["server"]["applications"]["apps"][0]["app"] == EVIL_APP  # JSON escapes itself
