"""A URI without ``/database`` and no ``MONGOPOOL_DATABASE``: every output works and says so.

That is what ``ferretdb serve --url-file`` writes. ``check`` says so and names both
settings; the pool page, its JSON, ``/metrics`` and every format of
``mongo_connections`` work, reporting what needs a database (the fleet's heartbeats)
as unavailable; the first ``get_database()`` says which settings to set.
"""

from __future__ import annotations

import json

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool import get_database
from django_mongopool.fleet import heartbeat
from tests.audit.mockup import command_output, cursor_reply, server_status, start_servers

TOKEN = "t" * 40


def _ids() -> list[str]:
    return [message.id for message in run_checks() if message.id.startswith("django_mongopool.")]


def test_check_warns_and_names_both_settings(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/"
    (message,) = [m for m in run_checks() if m.id == "django_mongopool.W020"]
    assert "MONGOPOOL_DATABASE" in message.hint and "MONGOPOOL_URI" in message.hint
    assert "get_database()" in message.msg
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9"  # no slash at all
    assert "django_mongopool.W020" in _ids()


def test_heartbeats_without_a_database_are_an_error(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/?appname=x"
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    (message,) = [m for m in run_checks() if m.id == "django_mongopool.E020"]
    assert "MONGOPOOL_HEARTBEAT_SECONDS" in message.msg
    assert "MONGOPOOL_DATABASE" in message.hint and "MONGOPOOL_URI" in message.hint
    assert "django_mongopool.W020" not in _ids()  # one message, not two


@pytest.mark.parametrize(
    ("uri", "database"),
    [
        ("mongodb://127.0.0.1:9/shop", None),
        ("mongodb://127.0.0.1:9/", "shop"),
        ("mongodb://127.0.0.1:9/shop?appname=x", "other"),
    ],
)
def test_no_message_when_a_database_is_named(settings, uri, database):
    settings.MONGOPOOL_URI = uri
    settings.MONGOPOOL_DATABASE = database
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    ids = _ids()
    assert "django_mongopool.W020" not in ids and "django_mongopool.E020" not in ids


def test_first_use_error_names_the_settings(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/"
    with pytest.raises(ImproperlyConfigured) as info:
        get_database()
    message = str(info.value)
    assert "MONGOPOOL_DATABASE" in message and "MONGOPOOL_URI" in message
    assert get_database("named").name == "named"  # a name passed explicitly still works


@pytest.fixture
def no_database(point_at, settings):
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, server_status(40, 60), cursor_reply([]))
    point_at(f"mongodb://{server.address}/?directConnection=true&appname=auditor", [server])
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    yield server
    heartbeat.stop()  # the page's first request started this process's publisher


@pytest.mark.django_db
def test_page_json_metrics_and_command_work_without_a_database(no_database, admin_client):
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    html = admin_client.get(page)
    assert html.status_code == 200
    assert "MONGOPOOL_DATABASE" in html.content.decode()
    report = admin_client.get(page, {"format": "json"}).json()
    assert report["server"]["reachable"] is True
    assert report["server"]["connections"]["current"] == 40  # what needs no database is there
    assert report["config"]["database"] is None
    assert report["fleet"] is None  # what needs one is reported unavailable ...
    assert any("MONGOPOOL_DATABASE" in w for w in report["warnings"])  # ... and why
    scrape = Client().get(
        reverse("mongopool:metrics"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.content.decode())}
    assert families["mongopool_server_up"].samples
    # Every family is exported on every scrape; the fleet's has no sample without a database.
    assert not families["mongopool_fleet_processes"].samples
    text = command_output()
    assert "MONGOPOOL_DATABASE" in text and "current 40" in text
    assert json.loads(command_output("--format", "json"))["fleet"] is None
    list(text_string_to_metric_families(command_output("--format", "prometheus")))
