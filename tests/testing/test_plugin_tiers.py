"""The plugin's tiers in a fresh pytest process (pytester), no server needed.

``mongopool_mode = mock`` in the ini puts a whole suite on mongomock; in the real mode a test
whose request cannot reach the server fails fast with a hint instead of a bare 503.
"""

from __future__ import annotations

import time

from tests.testing.projects import project_settings

SETTINGS = project_settings("mongodb://127.0.0.1:9/shop")

URLS = """
from django.http import JsonResponse
from django.urls import path
from django_mongopool import get_database


def add(request):
    things = get_database()["things"]
    things.insert_one({"name": request.GET["name"]}, session=request.mongo_session)
    count = things.count_documents({}, session=request.mongo_session)
    found = things.find_one({"name": request.GET["name"]}, session=request.mongo_session)
    return JsonResponse({"count": count, "name": found["name"]})


urlpatterns = [path("add/", add)]
"""

MOCK_TESTS = """
import threading

from django.test import Client
from django_mongopool import get_client, get_database
from django_mongopool.testing.mock import MockClient


def test_view_runs_without_a_server():
    assert Client().get("/add/", {"name": "a"}).json() == {"count": 1, "name": "a"}
    assert Client().get("/add/", {"name": "b"}).json() == {"count": 2, "name": "b"}
    assert isinstance(get_client(), MockClient)
    assert get_database().name == "test_shop"  # a test run's database, as on a server


def test_next_test_starts_empty():
    assert get_database()["things"].count_documents({}) == 0
    assert Client().get("/add/", {"name": "c"}).json()["count"] == 1


def test_no_background_threads():
    Client().get("/add/", {"name": "d"})
    assert not [t.name for t in threading.enumerate() if "heartbeat" in t.name or "pymongo" in t.name]


def test_server_fixture_opts_out(mongopool_server):
    assert not isinstance(get_client(), MockClient)
"""

FAKE_SERVER = """
import pytest


@pytest.fixture(scope="session")
def mongopool_server():
    return "no server started: these tests only look at the tier"
"""


def _run(pytester, monkeypatch, *args, test_url=None):
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    if test_url:
        monkeypatch.setenv("MONGOPOOL_TEST_URL", test_url)
    else:
        monkeypatch.delenv("MONGOPOOL_TEST_URL", raising=False)
    return pytester.runpytest_subprocess(
        "--ds=proj_settings", "-p", "no:cacheprovider", "-q", *args, timeout=300
    )


def test_ini_mock_mode_runs_a_suite_without_a_server(pytester, monkeypatch):
    pytester.makepyfile(proj_settings=SETTINGS, proj_urls=URLS, test_views=MOCK_TESTS)
    pytester.makeconftest(FAKE_SERVER)
    pytester.makeini("[pytest]\nmongopool_mode = mock\n")
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=4)


def test_mock_fixture_works_without_a_uri_setting(pytester, monkeypatch):
    pytester.makepyfile(
        proj_settings=project_settings(None),
        proj_urls=URLS,
        test_views="""
from django.test import Client


def test_view(mongopool_mock):
    assert Client().get("/add/", {"name": "a"}).json() == {"count": 1, "name": "a"}
    assert mongopool_mock.name == "mongopool_mock"
    assert mongopool_mock["things"].count_documents({}) == 1
""",
    )
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=1)


def test_unknown_mode_is_a_usage_error(pytester, monkeypatch):
    pytester.makepyfile(proj_settings=SETTINGS, test_nothing="def test_x():\n    pass\n")
    pytester.makeini("[pytest]\nmongopool_mode = fake\n")
    result = _run(pytester, monkeypatch)
    assert result.ret == 4  # pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mongopool_mode must be one of real, mock, not 'fake'*"])


UNREACHABLE_TESTS = """
import time

import pytest
from django.test import Client
from django_mongopool.client.process import get_config
from django_mongopool.exceptions import ServerUnreachableInTests


def test_request_fails_fast_and_names_the_fixtures():
    started = time.monotonic()
    with pytest.raises(ServerUnreachableInTests) as caught:
        Client().get("/add/", {"name": "a"})
    assert time.monotonic() - started < 10
    message = str(caught.value)
    for name in ("mongopool_mock", "mongopool_db", "MONGOPOOL_TEST_URL", "mongopool_mode = mock"):
        assert name in message, name
    assert "GET /add/" in message and "127.0.0.1:9" in message
    assert "ran on the test database test_shop on the server MONGOPOOL_TEST_URL names" in message
    assert "within %s s" % EXPECTED_SECONDS in message
    assert get_config().option("serverSelectionTimeoutMS") == EXPECTED_MS


def test_uncaught_it_fails_the_test_with_the_hint():
    Client().get("/add/", {"name": "a"})


def test_a_test_that_sets_the_uri_itself_gets_the_503(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/elsewhere"
    response = Client().get("/add/", {"name": "a"})
    assert response.status_code == 503
"""


def _unreachable(pytester, monkeypatch, ini, expected_ms):
    # Fixture-less tests run on the test server: here MONGOPOOL_TEST_URL names one that is down.
    # The product default (no MONGOPOOL_CLIENT_OPTIONS) waits far longer than the cap.
    source = UNREACHABLE_TESTS.replace("EXPECTED_SECONDS", repr(f"{expected_ms / 1000:g}")).replace(
        "EXPECTED_MS", str(expected_ms)
    )
    pytester.makepyfile(proj_settings=SETTINGS, proj_urls=URLS, test_unreachable=source)
    if ini:
        pytester.makeini(ini)
    started = time.monotonic()
    result = _run(pytester, monkeypatch, test_url="mongodb://127.0.0.1:9/")
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ServerUnreachableInTests: GET /add/: MongoDB at mongodb://127.0.0.1:9/test_shop "
            "could not be reached within*",
        ]
    )
    assert "mongopool_db" in result.stdout.str()
    return elapsed


def test_unreachable_server_fails_fast_with_the_fixtures_named(pytester, monkeypatch):
    elapsed = _unreachable(pytester, monkeypatch, "", 1500)
    assert elapsed < 60  # three 1.5 s waits plus interpreter and Django start-up, not 3 x 30 s


def test_the_cap_is_an_ini_option(pytester, monkeypatch):
    _unreachable(pytester, monkeypatch, "[pytest]\nmongopool_test_server_timeout_ms = 300\n", 300)


def test_a_lower_timeout_in_the_settings_is_kept(pytester, monkeypatch):
    pytester.makepyfile(
        proj_settings=SETTINGS + 'MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 200}\n',
        test_kept="""
from django_mongopool.client.process import get_config


def test_kept():
    assert get_config().option("serverSelectionTimeoutMS") == 200
""",
    )
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=1)


def docs_block(after: str) -> str:
    """The first ```python block of docs/testing.md after the line containing ``after``."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    tail = page.split(after, 1)[1]
    return tail.split("```python\n", 1)[1].split("```", 1)[0]


OWN_URI_TESTS = """
from django.test import Client
from django_mongopool import get_client
from django_mongopool.testing.mock import MockClient

DOCS_503_TEST


def test_with_the_settings_fixture(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop"
    response = Client().get("/orders/")
    assert response.status_code == 503 and response["Retry-After"]
    assert not isinstance(get_client(), MockClient)


def test_the_next_test_is_on_mongomock_again():
    assert isinstance(get_client(), MockClient)
    assert Client().get("/orders/").json() == {"orders": 0}
"""

ORDERS_VIEW = """

def orders(request):
    count = get_database()["orders"].count_documents({}, session=request.mongo_session)
    return JsonResponse({"orders": count})


urlpatterns.append(path("orders/", orders))
"""


def test_mock_mode_a_test_that_sets_the_uri_itself_gets_the_503(pytester, monkeypatch):
    """The testing page's 503 test, as written there, passes in mongopool_mode = mock."""
    snippet = docs_block("A test that sets `MONGOPOOL_URI` itself")
    assert "override_settings(MONGOPOOL_URI=" in snippet and "503" in snippet
    pytester.makepyfile(
        proj_settings=SETTINGS,
        proj_urls=URLS + ORDERS_VIEW,
        test_own_uri=OWN_URI_TESTS.replace("DOCS_503_TEST", snippet),
    )
    pytester.makeini("[pytest]\nmongopool_mode = mock\n")
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=3)


SNIPPET_TESTS = """
import asyncio

from django.test import Client


def test_sync(mongopool_mock):
    assert Client().get("/add/", {"name": "a"}).json() == {"count": 1, "name": "a"}


async def test_async_without_a_marker():
    await asyncio.sleep(0)
"""


def _docs_config(settings_module: str) -> str:
    """The testing page's minimal pytest configuration (pyproject.toml), for ``settings_module``."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    block = page.split("The minimal configuration, in your project's", 1)[1]
    toml = block.split("```toml\n", 1)[1].split("```", 1)[0]
    assert '"mysite.settings"' in toml
    return toml.replace('"mysite.settings"', f'"{settings_module}"')


def test_the_docs_config_snippet_runs_async_tests_without_a_warning(pytester, monkeypatch):
    """The documented configuration gives no pytest-asyncio warning on a run."""
    pytester.makepyfile(proj_settings=SETTINGS, proj_urls=URLS, test_snippet=SNIPPET_TESTS)
    pytester.makefile(".toml", pyproject=_docs_config("proj_settings"))
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", timeout=300)
    result.assert_outcomes(passed=2)
    output = result.stdout.str() + result.stderr.str()
    assert "Warning" not in output, output


def test_without_pytest_django_the_error_says_so(pytester, monkeypatch):
    pytester.makepyfile(proj_settings=SETTINGS, test_nothing="def test_x():\n    pass\n")
    pytester.makefile(".toml", pyproject=_docs_config("proj_settings"))
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:django", timeout=300)
    assert result.ret == 4  # pytest.ExitCode.USAGE_ERROR, before any test
    result.stderr.fnmatch_lines(
        [
            "*DJANGO_SETTINGS_MODULE is set in pyproject.toml, but pytest-django is not "
            "installed*pip install pytest-django*"
        ]
    )


def test_the_fixtures_say_what_is_missing_without_django_settings(pytester, monkeypatch):
    pytester.makepyfile(test_mock="def test_x(mongopool_mock):\n    pass\n")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:django", timeout=300)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*mongopool_mock needs Django's settings, and they are not configured. "
            "pytest-django is not installed.*pip install pytest-django*"
        ]
    )
