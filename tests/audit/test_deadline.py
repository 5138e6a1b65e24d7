"""The audit behind the page, its JSON and /metrics has a total deadline.

Members that accept connections and never answer must not make a scrape hang, nor make the
next reader queue behind it. The whole report is bounded by ``MONGOPOOL_AUDIT_DEADLINE``: what
has not answered by then is reported as such, and a reader that arrives while a measurement runs
shares it instead of queueing behind it, getting the previous period's figures marked stale
when even that one misses its deadline.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from mockupdb import OpMsg

from django_mongopool import get_client
from django_mongopool.audit import report
from django_mongopool.audit.report import web_report
from django_mongopool.conf import conf
from tests.audit.mockup import cursor_reply, server_status, start_servers
from tests.helpers import bound_child, wait_child

SILENT = 40
DEADLINE = 2.0
SLACK = 5.0  # a generous upper bound on top of the deadline, for a loaded machine


@pytest.fixture
def silent_ports() -> Iterator[list[int]]:
    """Loopback ports whose kernel completes the TCP handshake; nothing is ever read or sent."""
    listeners = []
    for _ in range(SILENT):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listeners.append(listener)
    try:
        yield [listener.getsockname()[1] for listener in listeners]
    finally:
        for listener in listeners:
            listener.close()


@pytest.fixture
def silent_members(point_at, settings, silent_ports):
    """A replica set: one primary that answers (mockupdb), 40 members that never do."""
    (primary,) = start_servers(1)
    hosts = [primary.address] + [f"127.0.0.1:{port}" for port in silent_ports]
    primary.serve(
        {
            "setName": "rs0",
            "setVersion": 1,
            "hosts": hosts,
            "primary": primary.address,
            "me": primary.address,
            "ismaster": True,
            "isWritablePrimary": True,
            "secondary": False,
        },
        server_status(40, 60),
        cursor_reply([]),
    )
    point_at(f"mongodb://{primary.address}/shop?replicaSet=rs0&appname=auditor", [primary])
    settings.MONGOPOOL_AUDIT_DEADLINE = DEADLINE
    get_client().admin.command("ping")  # the app's client knows the primary before the clock runs
    return primary


def _late(member: dict[str, Any]) -> bool:
    return member["status_problem"] == "no_answer" and (member["error"] or "").startswith(
        f"not answered within the audit's deadline ({DEADLINE:g} s)"
    )


@pytest.mark.django_db
def test_members_not_answered_by_the_deadline_are_shown_as_such(silent_members, admin_client):
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    started = time.monotonic()
    response = admin_client.get(page, {"format": "json"})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    result = response.json()
    members = {m["address"]: m for m in result["server"]["members"]}
    assert members[silent_members.address]["connections"]["current"] == 40  # answered in time
    late = [m for m in members.values() if m["address"] != silent_members.address]
    assert len(late) == SILENT and all(_late(m) for m in late)
    (note,) = [n for n in result["notes"] if "not answered within the audit's deadline" in n]
    assert note.startswith(f"{SILENT} member(s)") and "and 30 more" in note
    assert elapsed < DEADLINE + SLACK  # 40 silent members x 2 s per query, 8 at a time: 10 s
    html = admin_client.get(page).content.decode()
    assert "not answering" in html


def test_a_second_reader_shares_the_measurement_under_way(silent_members):
    asked_once = threading.Event()
    silent_members.mock.subscribe(
        lambda request: asked_once.set() if "serverStatus" in request.doc else None
    )
    results: dict[str, Any] = {}

    def read(name: str) -> None:
        started = time.monotonic()
        results[name] = web_report()
        results[f"{name} seconds"] = time.monotonic() - started

    first = threading.Thread(target=read, args=("first",))
    first.start()
    assert asked_once.wait(30)  # the first reader's measurement is under way
    second = threading.Thread(target=read, args=("second",))
    second.start()
    second.join(timeout=60)
    first.join(timeout=60)
    assert not second.is_alive() and not first.is_alive()
    assert silent_members.count("serverStatus") == 1  # one measurement for both readers
    for name in ("first", "second"):
        late = [m for m in results[name]["server"]["members"] if _late(m)]
        assert len(late) == SILENT
    assert results["second seconds"] < DEADLINE + SLACK  # not behind the first (10 s before)


@pytest.fixture
def stuck_measurement(monkeypatch) -> Iterator[threading.Event]:
    """Every measurement blocks in the middle (after the ping) until the event is set."""
    release = threading.Event()
    calls = []
    original = report.ask_members

    def blocked(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        release.wait(60)
        return original(*args, **kwargs)

    monkeypatch.setattr(report, "ask_members", blocked)
    release.calls = calls  # type: ignore[attr-defined]
    try:
        yield release
    finally:
        release.set()


@pytest.fixture
def one_server(point_at, settings):
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, server_status(40, 60), cursor_reply([]))
    server.mock.autoresponds(
        OpMsg("find", "mongopool_heartbeats"),
        {"ok": 1, "cursor": {"id": 0, "ns": "shop.mongopool_heartbeats", "firstBatch": []}},
    )
    point_at(f"mongodb://{server.address}/shop?directConnection=true&appname=auditor", [server])
    settings.MONGOPOOL_AUDIT_DEADLINE = 0.5
    get_client().admin.command("ping")  # connected before the clock runs
    return server


def _concurrently(count: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(web_report())) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_readers_never_wait_beyond_their_deadline_for_a_stuck_measurement(
    one_server, stuck_measurement
):
    reports = _concurrently(3)  # while the one measurement is stuck
    assert not stuck_measurement.is_set()
    calls = stuck_measurement.calls
    deadline = time.monotonic() + 30
    while not calls and time.monotonic() < deadline:  # its ping may still be under way
        time.sleep(0.01)
    assert len(calls) == 1  # shared: one measurement for the three readers
    for result in reports:
        server = result["server"]
        assert server["reachable"] is False and "deadline" in server["error"]
        assert any("did not answer within the audit's deadline" in n for n in result["notes"])
        assert any("did not answer" in w for w in result["warnings"])
    stuck_measurement.set()  # the measurement finishes; the next reader gets it
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and report._in_flight:
        time.sleep(0.01)
    result = web_report()
    assert result["server"]["reachable"] is True and result["server"]["stale"] is False


def test_the_previous_figures_are_served_marked_stale(one_server, settings, monkeypatch):
    settings.MONGOPOOL_SERVER_STATUS_CACHE_SECONDS = 0.2
    settings.MONGOPOOL_AUDIT_DEADLINE = 30  # the first measurement, whatever the machine's load
    fresh = web_report()
    settings.MONGOPOOL_AUDIT_DEADLINE = 0.5
    assert fresh["server"]["stale"] is False and fresh["server"]["connections"]["current"] == 40
    time.sleep(0.3)  # the period ends
    release = threading.Event()
    original = report.ask_members
    monkeypatch.setattr(
        report, "ask_members", lambda *a, **k: release.wait(60) and original(*a, **k)
    )
    try:
        (stale,) = _concurrently(1)
        assert not release.is_set()
    finally:
        release.set()
    assert stale["server"]["stale"] is True
    assert stale["server"]["connections"]["current"] == 40  # the previous period's figures
    assert stale["server"]["age_seconds"] >= 0.3
    assert "did not finish within the audit's deadline of 0.5 s" in stale["notes"][0]


def test_the_command_takes_a_deadline(silent_members):
    out = StringIO()
    call_command("mongo_connections", "--deadline", "2", "--format", "json", stdout=out)
    assert out.getvalue().count("not answered within the audit's deadline (2 s)") == SILENT


def test_the_deadline_setting_is_validated(settings):
    settings.MONGOPOOL_AUDIT_DEADLINE = 0
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_AUDIT_DEADLINE"):
        _ = conf.audit_deadline
    settings.MONGOPOOL_AUDIT_DEADLINE = 2.5
    assert conf.audit_deadline == 2.5


@pytest.mark.django_db
def test_metrics_are_bounded_too(silent_members, settings):
    settings.MONGOPOOL_METRICS_TOKEN = "t" * 40
    started = time.monotonic()
    scrape = Client().get(
        reverse("mongopool:metrics"), headers={"Authorization": "Bearer " + "t" * 40}
    )
    assert scrape.status_code == 200
    assert time.monotonic() - started < DEADLINE + SLACK
    text = scrape.content.decode()
    assert text.count("mongopool_member_up{") == SILENT + 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_wait_for_the_parents_measurement():
    from concurrent.futures import Future

    parent = report._Flight(Future(), None, 1.0)  # type: ignore[arg-type]
    report._in_flight[False] = parent  # a measurement the parent's thread is running
    try:
        pid = os.fork()
        if pid == 0:  # the child: that thread does not run here, so nothing may wait for it
            bound_child()
            os._exit(0 if not report._in_flight else 1)
        assert wait_child(pid) == 0
    finally:
        report._in_flight.pop(False, None)
