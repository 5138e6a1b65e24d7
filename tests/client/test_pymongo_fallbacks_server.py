"""A pymongo release that moved an internal the package uses: each fallback, against the real server.

Each test plays such a release by changing what ``django_mongopool.client.pymongo_internals`` sees (a name
gone, or a class whose method has another signature), runs ``pymongo_internals.verify()`` again and
rebuilds the clients; then the app must still serve requests with ``request.mongo_session``,
the system check must name what moved and the fallback in force, and the fallback must keep
the promises that need no internal.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import uuid

import pymongo
import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from pymongo.client_session import ClientSession
from pymongo.errors import WaitQueueTimeoutError
from pymongo.synchronous.pool import Pool

from django_mongopool.client import event_loops, pools, process, pymongo_internals
from django_mongopool.client.figures import PoolEventCounter
from django_mongopool.client.options import build_config
from django_mongopool.client.sessions import CountedClientSession
from django_mongopool.conf import conf
from django_mongopool.fleet import heartbeat, shares
from tests.helpers import ROOT, HoldConnection

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db]
TOKEN = "t0ken-for-prometheus-scrapes"


def _rebuild() -> None:
    process.reset_client()
    event_loops.reset_async_clients()
    shares.forget()


@pytest.fixture
def moved(monkeypatch):
    """``moved(Name=value, ...)``: the shim sees ``value`` for each of its names; verified again."""

    def move(**names):
        for name, value in names.items():
            assert hasattr(pymongo_internals, name), name
            monkeypatch.setattr(pymongo_internals, name, value)
        status = pymongo_internals.verify(refresh=True)
        _rebuild()
        return status

    yield move
    monkeypatch.undo()
    assert pymongo_internals.verify(refresh=True).failed == ()
    _rebuild()


def _messages(check_id: str) -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(tags=["django_mongopool"]) if m.id == check_id]


def _page(django_user_model) -> dict:
    staff = django_user_model.objects.create_superuser("shim", password="pw")
    viewer = Client()
    viewer.force_login(staff)
    response = viewer.get("/admin/django_mongopool/poolhealth/?format=json")
    assert response.status_code == 200
    return response.json()


class PoolWithAnotherCheckOut(Pool):
    """A Pool whose check-out step takes another argument, as a later pymongo might."""

    def _get_conn(self, checkout_started_time, handler=None, *, deadline=None):  # type: ignore[override]
        return super()._get_conn(checkout_started_time, handler)


class SessionWithAnotherEnd(ClientSession):
    def _end_session(self) -> None:  # type: ignore[override]
        super()._end_session(True)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"CmapTelemetry": None}, "pymongo._telemetry._CmapTelemetry"),
        ({"SyncPool": PoolWithAnotherCheckOut}, "pymongo.synchronous.pool.Pool._get_conn"),
    ],
    ids=["telemetry-gone", "get-conn-signature"],
)
def test_pool_figures_come_from_public_pool_events(
    mongo, moved, change, named, django_user_model, settings
):
    status = moved(**change)
    assert not status.ok("pool_hooks") and status.ok("sessions")
    (message,) = _messages("django_mongopool.W010")
    assert named in message.msg and pymongo.version in message.msg
    assert "connection-pool events" in message.msg and "costs more" in message.msg

    app_client = process.get_client()
    assert any(isinstance(x, PoolEventCounter) for x in app_client.options.event_listeners)
    response = Client().get("/t/insert/")  # insert + find on request.mongo_session
    assert response.status_code == 200
    assert response.wsgi_request.mongo_session.has_ended
    (server,) = pools.snapshot().servers
    assert (server.open, server.in_use, server.idle, server.waiting) == (1, 0, 1, 0)
    assert (server.checkouts, server.connections_created) == (2, 1)
    assert server.wait_ms_max is not None
    shown = _page(django_user_model)["process"]
    assert shown["pool_figures_from"] == "connection pool events"
    assert shown["open"] >= 1 and shown["servers"][0]["checkouts"] >= 2
    assert shown["sessions_started"] == shown["sessions_ended"] == 1
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN  # not a client setting: the client stays
    metrics = Client().get("/mongopool/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.content.decode())}
    assert families["mongopool_pool_open_connections"].samples[0].value >= 1
    assert families["mongopool_pool_checkouts"].samples[0].value >= 2


def test_event_figures_count_waiting_and_one_timeout_per_operation(mongo, moved, settings):
    moved(CmapTelemetry=None)
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 1,
        "waitQueueTimeoutMS": 50,
        "event_listeners": [hold],
    }
    collection = process.get_client()[mongo.name]["items"]
    collection.find_one({})
    holder = threading.Thread(target=lambda: collection.find_one({}, comment="hold"))
    holder.start()
    try:
        assert hold.holding.wait(30)
        (server,) = pools.snapshot().servers
        assert (server.in_use, server.idle, server.waiting) == (1, 0, 0)
        with pytest.raises(WaitQueueTimeoutError):
            collection.find_one({})  # pymongo retries it: two failed check-outs
    finally:
        hold.release.set()
        holder.join()
    (server,) = pools.snapshot().servers
    assert server.checkout_failures == {"timeout": 2}
    assert server.checkout_timeouts == 1
    assert (server.in_use, server.waiting) == (0, 0)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"EmptyServerSession": None}, "_EmptyServerSession"),
        (
            {"ClientSession": SessionWithAnotherEnd},
            "_end_session: expected a function (self, lock), found (self)",
        ),
    ],
    ids=["empty-session-gone", "end-session-signature"],
)
def test_sessions_work_uncounted(mongo, moved, change, named, django_user_model):
    status = moved(**change)
    assert not status.ok("sessions") and status.ok("pool_hooks")
    (message,) = _messages("django_mongopool.W011")
    assert named in message.msg and "not counted" in message.msg
    assert "_materialize" not in CountedClientSession.__dict__  # the hooks are off

    response = Client().get("/t/insert/")
    assert response.status_code == 200
    session = response.wsgi_request.mongo_session
    assert isinstance(session, ClientSession) and session.has_ended
    assert Client().get("/t/no-leak/").status_code == 200  # an explicit session, ended
    shown = _page(django_user_model)["process"]
    assert shown["sessions_counted"] is False
    assert shown["sessions_started"] == shown["sessions_ended"] == 0
    assert shown["servers"][0]["checkouts"] >= 2


async def test_async_request_sessions_work_uncounted(mongo, moved):
    from django.test import AsyncClient

    moved(EmptyServerSession=None)
    response = await AsyncClient().get("/t/async/")  # request.mongo_session in a thread
    assert response.status_code == 200
    key = response.json()["key"]
    assert process.get_database()["items"].count_documents({"key": key}) == 1
    response = await AsyncClient().get("/t/async-native/")  # await request.amongo_session()
    assert response.status_code == 200
    key = response.json()["key"]
    database = event_loops.get_async_database()
    assert await database["items"].count_documents({"key": key}) == 1


@pytest.fixture
def budget(mongo, settings, monkeypatch):
    heartbeat.stop()  # this test decides when the budget is asked to resize
    monkeypatch.setattr(heartbeat, "running_here", True)
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 8}
    settings.MONGOPOOL_FLEET_BUDGET = 24
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    yield
    heartbeat.collection().drop()


def test_fleet_budget_is_refused_not_pretended(budget, moved, caplog, django_user_model):
    status = moved(SyncServer=None)
    assert not status.ok("fleet_budget")
    (message,) = _messages("django_mongopool.E010")
    assert "pymongo.synchronous.server.Server.pool" in message.msg
    assert "refused" in message.msg and pymongo.version in message.msg

    assert Client().get("/t/insert/").status_code == 200  # the app serves requests
    (pool,) = [s.pool for s in process.get_client()._topology._servers.values()]
    assert pool.max_pool_size == conf.fleet_min_share  # built at the minimum share
    with caplog.at_level(logging.ERROR, logger="django_mongopool"):
        assert shares.update(2) is None
        assert shares.fleet_unreadable("test") is None
        assert shares.trim() == 0
    assert pool.max_pool_size == conf.fleet_min_share  # never resized
    refusals = [r for r in caplog.records if "Fleet budget refused" in r.getMessage()]
    assert len(refusals) == 1  # logged once
    report = shares.report()
    assert report is not None and report["active"] is False
    assert report["share"] == conf.fleet_min_share and "refused" in report["source"]
    mine = _page(django_user_model)["fleet_budget"]["this_process"]
    assert mine["active"] is False and "refused" in mine["source"]


def test_fleet_budget_runs_when_its_internals_are_there(budget):
    assert _messages("django_mongopool.E010") == []
    assert shares.update(2) is not None
    report = shares.report()
    assert report is not None and report["active"] is True


@pytest.mark.parametrize(
    "replacement",
    [None, lambda uri, validate=True: {}],
    ids=["validate-uri-gone", "validate-uri-signature"],
)
def test_uri_parsing_falls_back_to_public_parse_uri(mongo, moved, settings, replacement):
    calls = []
    public = pymongo_internals.public_parse_uri

    def spy(uri, **kwargs):
        calls.append(uri)
        return public(uri, **kwargs)

    moved(validate_uri_internal=replacement, public_parse_uri=spy)
    (message,) = _messages("django_mongopool.W012")
    assert "pymongo.uri_parser_shared._validate_uri" in message.msg and "parse_uri" in message.msg
    settings.MONGOPOOL_CLIENT_OPTIONS = {"appname": "fallback"}  # the settings are parsed again
    assert conf.client_config.appname == "fallback"
    assert calls  # through the public parser
    assert Client().get("/t/insert/").status_code == 200
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_URI is not a valid"):
        build_config("mongodb://h:notaport/db", None)  # bad input: the same clear error


def test_retries_fallback_counts_every_failed_check_out(mongo, moved, settings):
    moved(SyncRetryable=None)
    (message,) = _messages("django_mongopool.W015")
    assert "_ClientConnectionRetryable" in message.msg and "counts two" in message.msg
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "maxPoolSize": 1,
        "waitQueueTimeoutMS": 50,
        "event_listeners": [hold],
    }
    collection = process.get_client()[mongo.name]["items"]
    collection.find_one({})
    holder = threading.Thread(target=lambda: collection.find_one({}, comment="hold"))
    holder.start()
    try:
        assert hold.holding.wait(30)
        with pytest.raises(WaitQueueTimeoutError):
            collection.find_one({})
    finally:
        hold.release.set()
        holder.join()
    (server,) = pools.snapshot().servers
    assert (server.checkout_failures, server.checkout_timeouts) == ({"timeout": 2}, 2)


SCRIPT = """
import sys, types
import pymongo  # pymongo itself keeps what it imported; only later look-ups see the change
sys.modules["pymongo._telemetry"] = None
for name in ("pymongo.client_session_shared", "pymongo.uri_parser_shared"):
    sys.modules[name] = types.ModuleType(name)
import django
from django.conf import settings
django.setup()
from io import StringIO
from django.core.management import call_command
from django.test import Client
from django.test.utils import override_settings, setup_test_environment
setup_test_environment()
from django_mongopool.client import pymongo_internals
out = StringIO()
with override_settings(MONGOPOOL_URI=sys.argv[1], MONGOPOOL_DATABASE=sys.argv[2]):
    call_command("check", stdout=out, stderr=out)
    response = Client().get("/t/insert/")
print(json.dumps({
    "failed": sorted(f.key for f in pymongo_internals.status().failed),
    "check": out.getvalue(),
    "status": response.status_code,
    "ended": response.wsgi_request.mongo_session.has_ended,
}))
"""


def test_the_app_imports_and_serves_without_the_internals(mongo_server, mongo):
    """A fresh process where pymongo's internal modules are gone: import, check, one request."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [sys.executable, "-c", "import json\n" + SCRIPT, mongo_server.url, name],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'example_project'}",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
        },
        timeout=120,
        check=False,
    )
    mongo.client.drop_database(name)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == ["pool_hooks", "sessions", "uri"]
    for check_id in ("W010", "W011", "W012"):
        assert f"django_mongopool.{check_id}" in report["check"]
    assert (report["status"], report["ended"]) == (200, True)
