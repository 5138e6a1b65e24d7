"""The pytest plugin, run in a fresh pytest process against a small project (pytester)."""

from __future__ import annotations

import pytest

from tests.testing.projects import project_settings

pytestmark = [pytest.mark.server, pytest.mark.core]

SETTINGS = project_settings()

URLS = """
from django.http import JsonResponse
from django.urls import path
from django_mongopool import get_client, get_database


def ok(request):
    get_database()["things"].insert_one({"a": 1}, session=request.mongo_session)
    return JsonResponse({"ok": True})


def leaky(request):
    session = get_client().start_session()
    get_database()["things"].find_one({}, session=session)
    return JsonResponse({"ok": True})


urlpatterns = [path("ok/", ok), path("leaky/", leaky)]
"""

TESTS = """
import pytest
from django.test import Client
from pymongo import MongoClient

from django_mongopool import get_client
from django_mongopool.exceptions import StrayClientError
from django_mongopool.testing import assert_max_connections, assert_no_leaked_sessions


def test_db_is_isolated_and_real(mongopool_db, mongopool_server):
    mongopool_db["things"].insert_one({"n": 1})
    assert mongopool_db.name.startswith("test_")
    assert mongopool_db.client.address[1] in mongopool_server.ports


def test_max_connections_holds(mongopool_db):
    with assert_max_connections(3):
        for _ in range(5):
            assert Client().get("/ok/").status_code == 200


def test_max_connections_fails_when_exceeded(mongopool_db, settings):
    import threading
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 4}
    barrier = threading.Barrier(4, timeout=30)  # a thread that never comes fails, not hangs
    from django_mongopool import get_database
    db = get_database()

    def work():
        barrier.wait()
        for _ in range(20):
            db["things"].insert_one({"x": 1})

    with pytest.raises(AssertionError, match="More than 0 pooled"):
        with assert_max_connections(0):
            threads = [threading.Thread(target=work) for _ in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]


def test_no_leaks_passes_for_request_sessions(mongopool_db):
    with assert_no_leaked_sessions():
        Client().get("/ok/")


def test_leak_in_block_is_caught(mongopool_db):
    with pytest.raises(AssertionError, match="were not ended"):
        with assert_no_leaked_sessions():
            session = get_client().start_session()
    session.end_session()


def test_leak_in_request_is_caught(mongopool_db, settings):
    settings.MONGOPOOL_LEAKED_SESSIONS = "off"
    with pytest.raises(AssertionError, match="were not ended"):
        with assert_no_leaked_sessions():
            Client().get("/leaky/")


def test_stray_clients_raise_by_default():
    with pytest.raises(StrayClientError, match="test_project.py"):
        MongoClient("mongodb://127.0.0.1:9/", connect=False)
"""


def test_plugin_fixtures_and_helpers(pytester, mongo_server, monkeypatch):
    pytester.makepyfile(proj_settings=SETTINGS, proj_urls=URLS, test_project=TESTS)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.setenv("MONGOPOOL_TEST_URL", mongo_server.url)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    result = pytester.runpytest_subprocess(
        "--ds=proj_settings", "-p", "no:cacheprovider", "-q", timeout=300
    )
    result.assert_outcomes(passed=7)


def test_ini_option_turns_raise_off(pytester, mongo_server, monkeypatch):
    pytester.makepyfile(
        proj_settings=SETTINGS,
        proj_urls=URLS,
        test_warn="""
import warnings
from pymongo import MongoClient
from django_mongopool.exceptions import StrayClientWarning

def test_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MongoClient("mongodb://127.0.0.1:9/", connect=False).close()
    assert [w.category for w in caught] == [StrayClientWarning]
""",
    )
    pytester.makeini("[pytest]\nmongopool_stray_clients = warn\n")
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    result = pytester.runpytest_subprocess(
        "--ds=proj_settings", "-p", "no:cacheprovider", "-q", timeout=300
    )
    result.assert_outcomes(passed=1)
