"""A server's replies to the heartbeats' own commands are untrusted (mockupdb, over a real socket).

A reply to the read of the heartbeat collection that is not a cursor of documents
(``fleet/reading.py``) is reported in a note: the page, its JSON, ``/metrics`` and
``mongo_connections`` answer, none with a 500 or a traceback. A malformed reply to
``listIndexes`` (``fleet/heartbeat.py``, checking the TTL index) never stops the publisher.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from mockupdb import OpMsg

from django_mongopool.fleet import heartbeat, shares

NS = "shop.mongopool_heartbeats"
HOSTILE_FINDS = {
    "no cursor": {"ok": 1},
    "firstBatch not a list": {"ok": 1, "cursor": {"id": 0, "ns": NS, "firstBatch": 5}},
    "not documents": {"ok": 1, "cursor": {"id": 0, "ns": NS, "firstBatch": ["a", 5]}},
    "getMore without a cursor": {"ok": 1, "cursor": {"id": 77, "ns": NS, "firstBatch": []}},
}
PAGE = "/admin/django_mongopool/poolhealth/"


def _serve_basics(server):
    server.autoresponds("ping", {"ok": 1})
    server.autoresponds("serverStatus", {"ok": 1, "connections": {"current": 3, "available": 97}})


@pytest.mark.parametrize("case", sorted(HOSTILE_FINDS))
def test_a_malformed_heartbeat_read_is_reported(recorded, settings, staff, case):
    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = 0
    settings.MONGOPOOL_FLEET_BUDGET = 40
    _serve_basics(recorded)
    recorded.autoresponds(OpMsg("find", "mongopool_heartbeats"), HOSTILE_FINDS[case])
    recorded.autoresponds(OpMsg("getMore"), {"ok": 1})
    for url in (PAGE, PAGE + "?format=json", "/mongopool/metrics"):
        assert staff.get(url).status_code == 200, url
    out = StringIO()
    call_command("mongo_connections", format="json", stdout=out)
    assert json.loads(out.getvalue())["server"]
    if case == "getMore without a cursor":
        return  # pymongo ends that cursor quietly: nothing to report, and nothing broke
    notes = json.loads(staff.get(PAGE + "?format=json").content)["notes"]
    assert any("malformed" in note or "unreadable" in note for note in notes), notes


@pytest.mark.parametrize(
    "indexes",
    [
        [{"v": 2, "key": 5, "name": "x"}],
        [{"v": 2, "key": {"updated_at": 1}}],
        [{"v": 2, "key": {"updated_at": 1}, "name": "x", "expireAfterSeconds": "soon"}],
        ["not an index"],
    ],
    ids=["key not a document", "no name", "ttl a string", "not a document"],
)
def test_a_malformed_index_list_never_stops_the_heartbeats(recorded, settings, indexes):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    settings.MONGOPOOL_FLEET_BUDGET = 40
    _serve_basics(recorded)
    recorded.autoresponds(
        OpMsg("listIndexes", "mongopool_heartbeats"),
        {"ok": 1, "cursor": {"id": 0, "ns": NS, "firstBatch": indexes}},
    )
    recorded.autoresponds(
        OpMsg("find", "mongopool_heartbeats"),
        {"ok": 1, "cursor": {"id": 0, "ns": NS, "firstBatch": []}},
    )
    publisher = heartbeat.Publisher()
    try:
        for _ in range(2):
            publisher.tick()
            publisher._next_beat = 0
        assert publisher.beats == 2 and publisher.failures == 0
        assert publisher.indexed is not None
        assert shares.report()["share"] is not None
    finally:
        heartbeat.stop()
