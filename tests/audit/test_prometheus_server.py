"""``/metrics`` on the real server: every figure of the page's JSON, by Prometheus' conventions.

A busy process (requests, a leaked session, a request refused because the fleet budget's share
was full, heartbeats of itself and of a worker) is measured once; the text ``/metrics`` makes of
that report carries every figure with its type, help text and value
(:mod:`tests.prometheus_figures`), and a real scrape exports the same families.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.audit import prometheus
from django_mongopool.audit.report import web_report
from django_mongopool.client import pools
from django_mongopool.client.figures import WAIT_BUCKETS
from django_mongopool.client.process import get_database
from django_mongopool.fleet import heartbeat
from tests import ops_kit, prometheus_figures
from tests.helpers import HoldConnection

pytestmark = [pytest.mark.server, pytest.mark.django_db]

TOKEN = "a-token-for-prometheus-scrapes"
METRICS = "/mongopool/metrics"


def scrape() -> str:
    response = Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"] == prometheus.CONTENT_TYPE
    return response.content.decode()


@pytest.fixture
def busy(mongo, settings, monkeypatch, caplog):
    """A web process that served requests, leaked a session, refused one request, and beat."""
    heartbeat.stop()  # the test's publisher is this process's only one
    monkeypatch.setattr(heartbeat, "running_here", True)
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "serverSelectionTimeoutMS": 1500,
        "waitQueueTimeoutMS": 200,
        "event_listeners": [hold],
    }
    settings.MONGOPOOL_FLEET_BUDGET = 24
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    settings.MONGOPOOL_SERVER_MAX_CONNECTIONS = 100
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    # Seven other live processes (workers and a command): 8 share the budget, 24 // 8 - 2 = 1.
    now = dt.datetime.now(dt.UTC)
    heartbeat.collection().insert_many(
        [
            heartbeat.sign(
                {
                    "_id": f"other:{pid}:1",
                    "host": "other",
                    "pid": pid,
                    "role": "command" if pid == 1 else "worker",
                    "interval": 1,
                    "updated_at": now,
                    "max_pool_size": 10,
                    "open": 3,
                }
            )
            for pid in range(1, 8)
        ]
    )
    publisher = heartbeat.Publisher()
    monkeypatch.setattr(heartbeat, "_publisher", publisher)
    publisher.beat()  # this process's share: 1 connection per pool
    for _ in range(3):
        assert Client().get("/t/insert/").status_code == 200
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert Client().get("/t/leak/").status_code == 200
    holder = threading.Thread(
        target=lambda: get_database()["items"].find_one({}, comment="hold"), daemon=True
    )
    holder.start()
    assert hold.holding.wait(30)
    try:
        assert Client().get("/t/insert/").status_code == 503  # the share is in use
    finally:
        hold.release.set()
        holder.join(30)
    publisher.beat()
    yield
    heartbeat.collection().drop()


def test_every_figure_of_the_page_has_its_series(busy):
    report = web_report()
    process = report["process"]
    (server,) = process["servers"]
    assert process["leaked_sessions"] == 1 and process["unavailable_responses"] == 1
    assert server["checkout_failures"] == {"timeout": 1} and server["budget_refusals"] == 1
    assert server["checkout_wait_count"] == server["checkouts"] > 3
    assert len(server["checkout_wait_buckets"]) == len(WAIT_BUCKETS)
    assert process["heartbeat"]["beats"] == 2 and process["heartbeat"]["last_beat_at"]
    assert sorted(p["role"] for p in report["fleet"]["processes"]) == [
        "command",
        *["web"],
        *["worker"] * 6,
    ]
    assert report["fleet_budget"]["this_process"]["share"] == 1
    assert report["budget"]["server_capacity"] == 100
    text = prometheus.render(report)
    checked = prometheus_figures.check(report, text)
    assert checked.total("mongopool_fleet_open_connections", role="worker") == 6 * 3
    assert checked.total("mongopool_leaked_sessions") == 1

    served = {f.name: f.type for f in text_string_to_metric_families(scrape())}
    rendered = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert served == rendered  # the endpoint exports exactly these families


def test_counters_follow_prometheus_conventions(busy):
    families = list(text_string_to_metric_families(scrape()))
    assert len({f.name for f in families}) == len(families)
    for family in families:
        assert family.name.startswith("mongopool_") and family.documentation, family.name
        names = {sample.name for sample in family.samples}
        if family.type == "counter":
            assert names <= {f"{family.name}_total"}, family.name
        elif family.type == "histogram":
            assert family.name.endswith("_seconds")
            assert names <= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}
        else:
            assert family.type == "gauge" and not family.name.endswith("_total"), family.name
    by_name = {f.name: f for f in families}
    (histogram,) = [f for f in families if f.type == "histogram"]
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets] == [*map(str, WAIT_BUCKETS), "+Inf"]
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)  # cumulative
    (count,) = [s for s in histogram.samples if s.name.endswith("_count")]
    assert count.value == buckets[-1].value > 3
    # Counts that only grow are counters, never gauges (a rate() of a gauge is meaningless).
    for name in (
        "mongopool_pool_checkouts",
        "mongopool_pool_connections_created",
        "mongopool_pool_checkout_failures",
        "mongopool_sessions_started",
        "mongopool_sessions_ended",
        "mongopool_leaked_sessions",
        "mongopool_unavailable_responses",
        "mongopool_pool_connections_closed",
    ):
        assert by_name[name].type == "counter", name


def test_a_scrape_is_cheap(busy, mongo_server, settings):
    """/metrics never runs $currentOp, and reuses the server section (serverStatus) for
    MONGOPOOL_SERVER_STATUS_CACHE_SECONDS."""
    from pymongo import monitoring

    commands: list[str] = []

    class Commands(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            commands.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = 60
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        **settings.MONGOPOOL_CLIENT_OPTIONS,
        "event_listeners": [Commands()],
    }
    for _ in range(3):
        scrape()
    assert commands.count("serverStatus") == 1
    assert "aggregate" not in commands  # $currentOp is an aggregation
    assert pools.snapshot().servers  # the scrapes used the app's pool


def _sample_names(text: str) -> set[str]:
    """The series names a scrape exports, empty families included (a counter's samples end
    in _total, a histogram's in _bucket, _sum and _count)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in suffixes.get(family.type, ("",))
    }


def test_every_query_of_the_ops_kit_names_an_exported_series(busy):
    """Each alert rule and each dashboard query reads only series that /metrics exports."""
    exported = _sample_names(scrape())
    read = set()
    for where, expr in ops_kit.queries():
        names = ops_kit.metric_names(expr)
        assert names, f"{where}: no metric name in {expr!r}"
        assert names <= exported, f"{where} reads {sorted(names - exported)}, not exported"
        read |= names
    assert "mongopool_pool_checkout_wait_seconds_bucket" in read
    assert "mongopool_leaked_sessions_total" in read


def test_docs_list_every_family_with_its_type_and_labels(busy):
    """docs/prometheus.md's tables: the families a scrape exports (those of mongo_connections
    only are checked against its output in tests/audit/test_members.py)."""
    documented = {name: row for name, row in ops_kit.documented_families().items() if not row[2]}
    exported = {f.name: f for f in text_string_to_metric_families(scrape())}
    assert set(documented) == set(exported)
    for name, (type_, labels, _) in documented.items():
        family = exported[name]
        assert family.type == type_, name
        seen = {label for s in family.samples for label in s.labels} - {"le"}
        assert seen <= labels, (name, seen, labels)


def _docs_series() -> set[str]:
    """Every concrete series name the metrics paragraphs of docs/pool-page.md and
    docs/audit.md show (`a_{x,y}_b` expanded, labels dropped)."""
    pool_page = (ops_kit.DOC.parent / "pool-page.md").read_text()
    audit = (ops_kit.DOC.parent / "audit.md").read_text()
    metrics = pool_page.split("## Readiness probe and Prometheus metrics", 1)[1].split("\n## ")[0]
    command = audit.split("With `--format prometheus`", 1)[1].split("\n\n")[0]
    names = set()
    for token in re.findall(r"`(mongopool_[^`]*)`", metrics + command):
        if "*" in token or "..." in token:
            continue
        token = re.sub(r"\{[^{}]*\}$", "", token)  # trailing {labels}
        expanded = [token]
        while any("{" in t for t in expanded):
            expanded = [
                t[: t.index("{")] + choice + t[t.index("}") + 1 :]
                for t in expanded
                for choice in t[t.index("{") + 1 : t.index("}")].split(",")
            ]
        names.update(expanded)
    return names


def test_every_series_the_docs_name_is_exported(busy):
    text = scrape()
    histograms = {f.name for f in text_string_to_metric_families(text) if f.type == "histogram"}
    exported = _sample_names(text) | histograms
    command_only = {
        name for name, row in ops_kit.documented_families().items() if row[2]
    }  # gauges: the sample name is the family's
    shown = _docs_series()
    assert len(shown) > 40
    for name in shown:
        web_name = name.replace("mongopool_command_", "mongopool_", 1)
        assert name in exported | command_only or web_name in exported, name
