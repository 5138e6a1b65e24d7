"""The audit at fleet scale, against mockupdb servers shaped like mongod and mongos.

A 3-member replica set (each member with its own serverStatus and $currentOp
replies, one member not answering), two mongos routers, and one server holding
~5,000 connections from ~40 applications over ~300 hosts (the reply shape of the
audit's ``$group`` stage). mockupdb records every command, so the tests also
prove what the page and /metrics do not send.
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.audit import prometheus, report
from tests import prometheus_figures
from tests.audit.mockup import Server, cursor_reply, group_doc, server_status, start_servers
from tests.helpers import closed_port

TOKEN = "t" * 40


# A 3-member replica set: primary at 90%, secondary at 30%, the third member down.
PRIMARY_GROUPS = [
    group_doc("shop-web", "10.0.1.11", 500, 40),
    group_doc("shop-web", "10.0.1.12", 250, 10),
    group_doc("billing", "10.0.2.20", 100, 0, "nodejs"),
    group_doc(None, "10.0.3.5", 40, 1, "mongosh"),
]
SECONDARY_GROUPS = [
    group_doc("reports", "10.0.4.1", 200, 5),
    group_doc("shop-web", "10.0.1.11", 50, 0),
]


@pytest.fixture
def replica_set(point_at) -> list[Server]:
    primary, secondary = start_servers(2)
    down = f"localhost:{closed_port()}"
    hosts = [primary.address, secondary.address, down]
    base = {"setName": "rs0", "setVersion": 1, "hosts": hosts, "primary": primary.address}
    primary.serve(
        {
            **base,
            "ismaster": True,
            "isWritablePrimary": True,
            "secondary": False,
            "me": primary.address,
        },
        server_status(900, 100),
        cursor_reply(PRIMARY_GROUPS),
    )
    secondary.serve(
        {**base, "ismaster": False, "secondary": True, "me": secondary.address},
        server_status(300, 700),
        cursor_reply(SECONDARY_GROUPS),
    )
    point_at(
        f"mongodb://{primary.address},{secondary.address}/shop?replicaSet=rs0&appname=auditor",
        [primary, secondary],
    )
    return [primary, secondary]


def _command(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("mongo_connections", "--timeout", "1", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue() + f"\nERROR: {exc}", exc.returncode
    return out.getvalue(), 0


def _json(*args: str) -> dict[str, Any]:
    text, _status_code = _command("--format", "json", *args)
    return json.loads(text.split("\nERROR: ")[0])


def test_every_replica_set_member_is_asked_directly(replica_set):
    primary, secondary = replica_set
    result = _json()
    members = {m["address"]: m for m in result["server"]["members"]}
    assert len(members) == 3
    assert members[primary.address]["type"] == "RSPrimary"
    assert members[primary.address]["utilisation_percent"] == 90.0
    assert members[secondary.address]["type"] == "RSSecondary"
    assert members[secondary.address]["utilisation_percent"] == 30.0
    (down,) = [
        m for m in members.values() if m["address"] not in {primary.address, secondary.address}
    ]
    assert down["answered"] is False and down["status_problem"] == "no_answer"
    assert any(f"Member {down['address']} did not answer" in n for n in result["notes"])
    assert result["server"]["utilisation_percent"] == 90.0  # the busiest member
    assert result["server"]["connections"]["current"] == 1200  # summed over members
    assert primary.count("serverStatus") == 1 and secondary.count("serverStatus") == 1
    assert primary.count("aggregate") == 1 and secondary.count("aggregate") == 1


def test_replica_set_totals_per_application_and_per_member(replica_set):
    primary, secondary = replica_set
    result = _json()
    apps = result["server"]["applications"]
    assert [a["app"] for a in apps["apps"]] == ["shop-web", "reports", "billing"]
    shop = apps["apps"][0]
    assert shop["connections"] == 800 and shop["active"] == 50 and shop["idle"] == 750
    assert shop["hosts"] == 2 and shop["share_percent"] == round(100 * 800 / 1200, 1)
    assert shop["top_hosts"][0] == {"host": "10.0.1.11", "connections": 550, "active": 40}
    assert apps["no_appname"]["connections"] == 40
    assert apps["members_asked"] == 2 and apps["members"] == 3
    members = {m["address"]: m for m in result["server"]["members"]}
    on_secondary = members[secondary.address]["applications"]["apps"]
    assert [(a["app"], a["connections"]) for a in on_secondary] == [
        ("reports", 200),
        ("shop-web", 50),
    ]


def test_budget_per_member(replica_set):
    primary, secondary = replica_set
    budget = _json("--processes", "50")["budget"]
    per_member = {m["address"]: m for m in budget["members"]}
    assert per_member[primary.address]["capacity"] == 1000
    assert per_member[primary.address]["fleet_ceiling"] == 50 * (10 + 2)
    assert per_member[primary.address]["fleet_ceiling_percent"] == 60.0
    assert per_member[secondary.address]["fleet_ceiling_percent"] == 60.0
    (down,) = [m for m in budget["members"] if m["capacity"] is None]
    assert down["fleet_ceiling_percent"] is None


def test_text_leads_with_applications_and_names_the_missing_member(replica_set):
    text, status = _command("--hosts", "1", "--fail-over", "95", "--accept-unknown-capacity")
    assert status == 0
    sections = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert (
        sections[1]
        == "Applications (1140 connections of 1200 current, from $currentOp, 2 of 3 members)"
    )
    assert "shop-web" in text and "(no application name)" in text
    assert "NOT ANSWERING" in text
    assert "shop-web: 10.0.1.11 550 (40 active), +1 more" in text


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        ((), 0, "MongoDB connection audit"),
        (("--fail-over", "80"), 1, "server utilisation on localhost:"),
        (("--fail-over", "95"), 3, "could not be evaluated"),
        (("--fail-over", "95", "--accept-unknown-capacity"), 0, "only the known figures checked"),
        (("--fail-over", "20", "--accept-unknown-capacity"), 1, "Over the limit"),
    ],
)
def test_exit_statuses_on_a_replica_set_with_a_member_down(replica_set, args, status, needle):
    text, code = _command(*args)
    assert code == status
    assert needle in text


def test_status_3_says_which_figure_is_missing_and_how_to_supply_it(point_at, settings):
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, {"ok": 1, "version": "7.0.14"}, cursor_reply([]))
    point_at(f"mongodb://{server.address}/shop?directConnection=true", [server])
    text, code = _command("--fail-over", "90")
    assert code == 3
    assert "server capacity unknown; set MONGOPOOL_SERVER_MAX_CONNECTIONS" in text
    assert "does not report serverStatus.connections" in text
    # The budget alone, accepted explicitly, against a configured capacity:
    settings.MONGOPOOL_SERVER_MAX_CONNECTIONS = 1000
    text, code = _command("--fail-over", "90", "--accept-unknown-capacity")
    assert code == 0 and "only the known figures checked" in text
    text, code = _command("--fail-over", "5", "--accept-unknown-capacity", "--processes", "10")
    assert code == 1 and "fleet ceiling 12.0% > 5%" in text


def test_refused_server_status_names_the_role(point_at):
    (server,) = start_servers(1)
    refused = {"ok": 0, "code": 13, "codeName": "Unauthorized", "errmsg": "not authorized on admin"}
    server.serve({"ismaster": True}, refused, refused)
    point_at(f"mongodb://{server.address}/shop?directConnection=true", [server])
    text, code = _command("--fail-over", "90")
    assert code == 3
    assert "grant the clusterMonitor role" in text


def test_unreachable_and_refused_authentication_exit_2(point_at):
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, server_status(1, 1), cursor_reply([]))
    server.mock.autoresponds(
        "ping",
        {
            "ok": 0,
            "code": 18,
            "codeName": "AuthenticationFailed",
            "errmsg": "Authentication failed.",
        },
    )
    point_at(f"mongodb://{server.address}/shop?directConnection=true", [server])
    text, code = _command()
    assert code == 2
    assert "refused authentication (AuthenticationFailed, code 18)" in text
    assert "could not be reached" not in text
    point_at(f"mongodb://127.0.0.1:{closed_port()}/shop?serverSelectionTimeoutMS=300", [])
    text, code = _command("--fail-over", "50")
    assert code == 2 and "could not be reached" in text


def test_two_mongos_routers(point_at):
    first, second = start_servers(2)
    hello = {"ismaster": True, "msg": "isdbgrid"}
    first.serve(
        hello, server_status(400, 600), cursor_reply([group_doc("shop-web", "10.0.1.11", 300)])
    )
    second.serve(
        hello, server_status(100, 900), cursor_reply([group_doc("shop-web", "10.0.1.12", 80)])
    )
    point_at(f"mongodb://{first.address},{second.address}/shop", [first, second])
    sent: list[dict[str, Any]] = []
    first.mock.subscribe(lambda request: sent.append(request.doc) and None)
    result = _json()
    assert result["topology"]["type"] == "Sharded"
    members = {m["address"]: m for m in result["server"]["members"]}
    assert members[first.address]["type"] == "Mongos"
    assert members[first.address]["utilisation_percent"] == 40.0
    assert members[second.address]["utilisation_percent"] == 10.0
    assert result["server"]["applications"]["apps"][0]["connections"] == 380
    (aggregate,) = [doc for doc in sent if "aggregate" in doc]
    assert aggregate["pipeline"][0]["$currentOp"]["localOps"] is True


# ~5,000 connections from 40 applications over 300 client hosts ----------------------


def _fleet_scale_groups() -> tuple[list[dict[str, Any]], dict[str, int]]:
    groups, totals = [], {}
    for a in range(40):
        app = f"app-{a:02d}"
        hosts = range(a * 7, a * 7 + 10 + (a % 3))  # overlapping ranges over 300 hosts
        for h in hosts:
            connections = 2 + (a * 13 + h) % 17 + (80 if a == 17 else 0)
            groups.append(
                group_doc(app, f"10.1.{h // 100}.{h % 100}", connections, connections // 3)
            )
            totals[app] = totals.get(app, 0) + connections
    groups.append(group_doc(None, "10.9.9.9", 12, 0, "mongosh"))
    return groups, totals


def test_five_thousand_connections_from_forty_applications(point_at):
    groups, totals = _fleet_scale_groups()
    connections = sum(totals.values()) + 12
    assert 4000 < connections < 6000 and len({g["_id"]["host"] for g in groups}) >= 280
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, server_status(connections + 8, 20000), cursor_reply(groups))
    point_at(f"mongodb://{server.address}/shop?directConnection=true", [server])
    result = _json("--hosts", "3")
    apps = result["server"]["applications"]
    assert len(apps["apps"]) == 40
    assert apps["connections"] == connections
    ordered = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    assert [(a["app"], a["connections"]) for a in apps["apps"]] == ordered
    assert apps["apps"][0]["app"] == "app-17"
    assert all(len(a["top_hosts"]) == 3 for a in apps["apps"])
    assert apps["no_appname"] == {
        "app": None,
        "connections": 12,
        "active": 0,
        "idle": 12,
        "share_percent": round(100 * 12 / (connections + 8), 1),
        "hosts": 1,
        "drivers": ["mongosh"],
        "top_hosts": [{"host": "10.9.9.9", "connections": 12, "active": 0}],
    }
    out = StringIO()
    call_command("mongo_connections", "--format", "prometheus", stdout=out)
    families = {f.name: f for f in text_string_to_metric_families(out.getvalue())}
    by_app = {s.labels["app"]: s.value for s in families["mongopool_app_connections"].samples}
    assert by_app == {app: float(n) for app, n in totals.items()}
    assert families["mongopool_no_appname_connections"].samples[0].value == 12
    assert len(families["mongopool_app_host_connections"].samples) == 40 * 5  # default --hosts
    assert out.getvalue().index("mongopool_app_connections") < out.getvalue().index(
        "mongopool_server_up"
    )


# The page and /metrics: bounded cost ---------------------------------------------------


@pytest.mark.django_db
def test_page_and_metrics_never_run_current_op_and_share_one_server_status(
    replica_set, settings, admin_client
):
    primary, secondary = replica_set
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    metrics = reverse("mongopool:metrics")
    for _ in range(3):
        assert admin_client.get(page).status_code == 200
        assert admin_client.get(page, {"format": "json"}).status_code == 200
        scrape = Client().get(metrics, headers={"Authorization": f"Bearer {TOKEN}"})
        assert scrape.status_code == 200
    for server in replica_set:
        assert server.count("aggregate") == 0
        assert server.count("serverStatus") == 1  # one per member per cache period
    text = scrape.content.decode()
    assert "mongopool_member_up" in text and "mongopool_app_connections" not in text
    result = admin_client.get(page, {"format": "json"}).json()
    assert result["server"]["applications"] is None
    assert result["process"]["role"] == "web"
    # An explicit request runs it once (and is cached apart from the plain page).
    shown = admin_client.get(page, {"format": "json", "current_op": "1"}).json()
    assert shown["server"]["applications"]["apps"][0]["app"] == "shop-web"
    assert primary.count("aggregate") == 1 and secondary.count("aggregate") == 1
    html = admin_client.get(page, {"current_op": "1"}).content.decode()
    assert "shop-web" in html and "not answering" in html


@pytest.mark.django_db
def test_cache_period_is_the_setting(replica_set, settings, admin_client):
    primary, _secondary = replica_set
    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = 0
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    for _ in range(3):
        admin_client.get(page, {"format": "json"})
    assert primary.count("serverStatus") == 3


def test_cache_setting_is_validated(settings):
    from django.core.exceptions import ImproperlyConfigured

    from django_mongopool.conf import conf

    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = -1
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_SERVER_STATUS_CACHE_SECONDS"):
        _ = conf.server_status_cache_seconds
    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = 2.5
    assert conf.server_status_cache_seconds == 2.5


def test_command_labels_its_own_pool(replica_set):
    result = _json()
    assert result["process"]["role"] == "command"
    out = StringIO()
    call_command("mongo_connections", "--timeout", "1", "--format", "prometheus", stdout=out)
    names = {f.name for f in text_string_to_metric_families(out.getvalue())}
    assert "mongopool_command_pool_open_connections" in names
    assert "mongopool_pool_open_connections" not in names
    assert "mongopool_command_sessions_started" in names  # a counter: samples end in _total
    assert (
        "mongopool_sessions_started" not in names and "mongopool_unavailable_responses" not in names
    )


def test_member_clients_pass_stray_detection(replica_set, settings, recwarn):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    result = _json()
    assert len([m for m in result["server"]["members"] if m["answered"]]) == 2


@pytest.mark.parametrize(
    ("uri", "username", "options"),
    [
        ("mongodb://u:p%40ss@a:1,b:2/shop?replicaSet=rs0&appname=x", "u", {"appname": "x"}),
        ("mongodb://a,b/?directConnection=false;tls=true;REPLICASET=rs0", None, {"tls": True}),
        ("mongodb://a:1?replicaSet=rs0", None, {}),
    ],
)
def test_member_clients_keep_credentials_and_options_but_not_the_topology(
    settings, uri, username, options
):
    from django_mongopool.audit.members import member_client

    settings.MONGOPOOL_URI = uri
    settings.MONGOPOOL_CLIENT_OPTIONS = (
        {"tlsAllowInvalidCertificates": True} if "tls" in uri else {}
    )
    client = member_client("b:2", timeout=0.5)
    try:
        assert client._topology_settings.seeds == {("b", 2)}
        assert client.options.replica_set_name is None
        assert client.options.direct_connection is True
        assert client.options.pool_options.max_pool_size == 1
        credentials = client.options.pool_options._credentials
        assert (credentials.username if credentials else None) == username
        if username:
            assert credentials.password == "p@ss"
        for name, value in options.items():
            assert client.options._options[name.lower()] == value
    finally:
        client.close()


@pytest.mark.parametrize(
    "address",
    [
        "evil/?authMechanism=PLAIN&tls=false:27017",
        "a@b:27017",
        "host:99999",
        "host",
        "ho st:1",
        "%2F:1",
    ],
)
def test_member_names_that_could_smuggle_uri_syntax_are_refused(address):
    from django_mongopool.audit.members import Member, _ask_directly, split_address

    with pytest.raises(ValueError):
        split_address(address)
    member = _ask_directly(Member(address=address, type="Unknown"), timeout=0.1, current_op=False)
    assert member.status_problem == "no_answer" and member.error.startswith("not asked")


def test_replica_set_without_a_primary_is_still_audited(point_at):
    first, second = start_servers(2)
    down = f"localhost:{closed_port()}"
    hosts = [first.address, second.address, down]
    base = {"setName": "rs0", "setVersion": 1, "hosts": hosts, "ismaster": False, "secondary": True}
    first.serve({**base, "me": first.address}, server_status(10, 990), cursor_reply([]))
    second.serve({**base, "me": second.address}, server_status(20, 980), cursor_reply([]))
    point_at(f"mongodb://{first.address}/shop?replicaSet=rs0", [first, second])
    result = _json()
    assert result["server"]["reachable"] is True
    assert result["topology"]["type"] == "ReplicaSetNoPrimary"
    answered = sorted(
        m["utilisation_percent"] for m in result["server"]["members"] if m["answered"]
    )
    assert answered == [1.0, 2.0]


def test_prometheus_carries_every_figure_of_the_command_report(replica_set):
    """Every figure of the command's report (applications, each member, the one that does not
    answer) has its series, type and help text, with the report's values."""
    # 3 s per member: the two recorded members answer at once, even on a loaded machine.
    result = report.build_report(role="command", timeout=3)
    members = result["server"]["members"]  # in address order: the member down may be first
    assert result["server"]["applications"] and any(m["connections"] for m in members)
    scrape = prometheus_figures.check(result, prometheus.render(result))
    assert scrape.total("mongopool_server_members_unanswered") == 1
    assert scrape.total("mongopool_member_connections_created") == 2 * 9000  # two answered
    assert scrape.families["mongopool_member_connections_created"].type == "counter"


def test_docs_list_the_families_of_mongo_connections_only(replica_set):
    """docs/prometheus.md marks the families /metrics never exports ($currentOp): the command
    exports them, with the documented types and labels."""
    from tests import ops_kit

    result = report.build_report(role="command", timeout=1)
    exported = {f.name: f for f in text_string_to_metric_families(prometheus.render(result))}
    only = {n: row for n, row in ops_kit.documented_families().items() if row[2]}
    assert only and set(only) <= set(exported)
    assert {n for n in exported if "_app" in n or "current_op" in n} == set(only)
    for name, (type_, labels, _) in only.items():
        assert exported[name].type == type_
        assert {label for s in exported[name].samples for label in s.labels} == labels, name
