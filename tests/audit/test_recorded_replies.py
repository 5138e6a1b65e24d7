"""The audit against recorded real-mongod replies, served over a real socket by mockupdb."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from bson import json_util
from django.core.management import CommandError, call_command
from mockupdb import OpMsg
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.audit import prometheus, report
from tests import prometheus_figures

REPLIES = Path(__file__).parent / "replies"


def _reply(name: str):
    return json_util.loads((REPLIES / name).read_text())


def _cursor(docs):
    return {"ok": 1, "cursor": {"id": 0, "ns": "admin.$cmd.aggregate", "firstBatch": docs}}


def grouped(rows):
    """What mongod's ``$group`` stage of the audit's pipeline returns for these $currentOp rows.

    Mirrors django_mongopool.audit.members.current_op_pipeline: idle sessions and rows without a
    client are dropped; the client's port is cut; one document per (appName, client host).
    """
    groups = {}
    for row in rows:
        client = row.get("client", row.get("client_s"))
        if row.get("type") == "idleSession" or not isinstance(client, str):
            continue
        host = client.rsplit(":", 1)[0] if client.rsplit(":", 1)[-1].isdigit() else client
        key = (row.get("appName"), host)
        group = groups.setdefault(
            key,
            {"_id": {"app": key[0], "host": host}, "connections": 0, "active": 0, "drivers": []},
        )
        group["connections"] += 1
        group["active"] += 1 if row.get("active") is True else 0
        driver = ((row.get("clientMetadata") or {}).get("driver") or {}).get("name")
        if driver not in group["drivers"]:
            group["drivers"].append(driver)
    return list(groups.values())


def _serve(server, status=None, current_op=None, heartbeats=()):
    server.autoresponds("ping", {"ok": 1})
    if status is not None:
        server.autoresponds("serverStatus", status)
    if current_op is not None:
        server.autoresponds(OpMsg("aggregate"), current_op)
    server.autoresponds(
        OpMsg("find", "mongopool_heartbeats"),
        {
            "ok": 1,
            "cursor": {"id": 0, "ns": "shop.mongopool_heartbeats", "firstBatch": list(heartbeats)},
        },
    )


def _json(*args: str) -> dict:
    out = StringIO()
    call_command("mongo_connections", "--format", "json", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize(
    ("fixture", "current", "available", "percent"),
    [
        ("serverstatus_mongod6.json", 412, 838448, 0.0),
        ("serverstatus_mongod7.json", 796, 204, 79.6),
        ("serverstatus_mongod8.json", 95, 51105, 0.2),
    ],
)
def test_server_status_connections(recorded, fixture, current, available, percent):
    _serve(
        recorded,
        status=_reply(fixture),
        current_op=_cursor(grouped(_reply("currentop_mongod7.json"))),
    )
    result = _json()
    connections = result["server"]["connections"]
    assert connections["current"] == current and connections["available"] == available
    assert "establishmentRateLimit" not in connections  # nested sections are left out
    assert result["server"]["utilisation_percent"] == percent
    assert result["budget"]["server_capacity"] == current + available
    assert result["budget"]["server_capacity_source"] == "serverStatus"
    assert result["budget"]["fleet_ceiling_per_server"] == 8 * (10 + 2)


def test_current_op_totals_per_application(recorded):
    _serve(
        recorded,
        status=_reply("serverstatus_mongod7.json"),
        current_op=_cursor(grouped(_reply("currentop_mongod7.json"))),
    )
    apps = _json()["server"]["applications"]
    assert apps["server_current"] == 796
    first = apps["apps"][0]
    assert first["app"] == "shop-web" and first["drivers"] == ["PyMongo|django-mongopool"]
    assert first["top_hosts"][0] == {"host": "10.0.1.11", "connections": 6, "active": 2}
    billing = next(a for a in apps["apps"] if a["app"] == "billing-worker")
    assert billing["connections"] == 4 and billing["active"] == 0 and billing["idle"] == 4
    assert billing["drivers"] == ["nodejs"] and billing["hosts"] == 1
    assert apps["no_appname"]["connections"] == 1 and apps["no_appname"]["drivers"] == ["mongosh"]
    # internal threads and idle sessions excluded
    assert apps["connections"] == 14 == sum(a["connections"] for a in apps["apps"]) + 1
    counts = [a["connections"] for a in apps["apps"]]
    assert counts == sorted(counts, reverse=True)


def test_grouping_runs_on_the_server(recorded):
    sent = []
    _serve(recorded, status=_reply("serverstatus_mongod7.json"), current_op=_cursor([]))
    recorded.subscribe(lambda request: sent.append(request.doc) and None)
    _json()
    (aggregate,) = [doc for doc in sent if "aggregate" in doc]
    stages = [next(iter(stage)) for stage in aggregate["pipeline"]]
    assert stages[0] == "$currentOp" and stages[-1] == "$group"
    assert aggregate["pipeline"][0]["$currentOp"] == {"allUsers": True, "idleConnections": True}


def test_text_output_and_warnings(recorded):
    _serve(
        recorded,
        status=_reply("serverstatus_mongod7.json"),
        current_op=_cursor(grouped(_reply("currentop_mongod7.json"))),
    )
    out = StringIO()
    call_command("mongo_connections", stdout=out)
    text = out.getvalue()
    assert "appname=auditor" in text
    assert "current 796" in text and "Utilisation           79.6%" in text
    assert "shop-web" in text and "billing-worker" in text
    assert "rejected 57 connections" in text


def test_unauthorized_user_gets_plain_lines_and_the_rest(recorded):
    _serve(recorded, status=_reply("unauthorized.json"), current_op=_reply("unauthorized.json"))
    result = _json()
    assert result["server"]["reachable"] is True
    assert result["server"]["connections"] is None and result["server"]["applications"] is None
    notes = " ".join(result["notes"])
    assert "serverStatus: not authorized" in notes and "$currentOp: not authorized" in notes
    assert result["topology"]["type"] == "Single"


def test_fail_over_exits_1_when_utilisation_exceeds(recorded):
    _serve(recorded, status=_reply("serverstatus_mongod7.json"), current_op=_cursor([]))
    with pytest.raises(CommandError, match="server utilisation 79.6% > 50%") as info:
        call_command("mongo_connections", "--fail-over", "50", stdout=StringIO())
    assert info.value.returncode == 1
    call_command("mongo_connections", "--fail-over", "90", stdout=StringIO())  # under: exit 0


def test_fail_over_on_fleet_ceiling_with_configured_capacity(recorded, settings):
    settings.MONGOPOOL_SERVER_MAX_CONNECTIONS = 100
    _serve(recorded, status={"ok": 1, "version": "7.0.14"}, current_op=_cursor([]))
    with pytest.raises(CommandError, match="fleet ceiling 480.0% > 100%") as info:
        call_command(
            "mongo_connections", "--processes", "40", "--fail-over", "100", stdout=StringIO()
        )
    assert info.value.returncode == 1


def test_prometheus_output_parses(recorded):
    _serve(recorded, status=_reply("serverstatus_mongod8.json"), current_op=_cursor([]))
    out = StringIO()
    call_command("mongo_connections", "--format", "prometheus", stdout=out)
    families = {f.name: f for f in text_string_to_metric_families(out.getvalue())}
    states = {s.labels["state"]: s.value for s in families["mongopool_server_connections"].samples}
    assert states["current"] == 95 and "rejected" not in states and "totalCreated" not in states
    # The fields that only grow are counters, per member.
    (rejected,) = families["mongopool_member_connections_rejected"].samples
    assert (rejected.name, rejected.value) == ("mongopool_member_connections_rejected_total", 0)
    assert families["mongopool_member_connections_rejected"].type == "counter"
    assert families["mongopool_server_up"].samples[0].value == 1
    assert families["mongopool_fleet_ceiling_connections"].samples[0].value == 96


def test_prometheus_carries_every_figure_of_a_recorded_mongod(recorded, settings):
    """mongod 8's serverStatus.connections: levels as gauges, totalCreated and rejected as
    counters; every other figure of the report with its series."""
    _serve(recorded, status=_reply("serverstatus_mongod8.json"), current_op=_cursor([]))
    result = report.build_report(role="command", timeout=2)
    connections = result["server"]["connections"]
    assert connections["totalCreated"] == 1203 and connections["current"] == 95
    scrape = prometheus_figures.check(result, prometheus.render(result))
    assert scrape.total("mongopool_member_connections_created") == 1203
    assert scrape.total("mongopool_server_connections", state="current") == 95
    assert scrape.samples("mongopool_server_connections", state="totalCreated") == []


def test_prometheus_leaves_out_numbers_that_are_no_sample_value(recorded):
    """A figure that is not finite, too large for a float, or not a number at all is left out
    of its family; the rest of the output stands."""
    _serve(recorded, status=_reply("serverstatus_mongod8.json"), current_op=_cursor([]))
    result = report.build_report(role="command", timeout=2)
    result["budget"]["server_capacity"] = 10**400
    result["server"]["utilisation_percent"] = float("nan")
    result["budget"]["fleet_ceiling_percent"] = float("inf")
    result["config"]["heartbeat_seconds"] = "ten"
    families = {f.name: f for f in text_string_to_metric_families(prometheus.render(result))}
    for name in (
        "mongopool_server_capacity_connections",
        "mongopool_server_utilisation_ratio",
        "mongopool_fleet_ceiling_ratio",
        "mongopool_heartbeat_interval_seconds",
    ):
        assert families[name].samples == [], name
    assert families["mongopool_server_up"].samples[0].value == 1
