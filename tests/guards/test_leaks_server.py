"""Sessions started by user code during a request and never ended are reported."""

from __future__ import annotations

import inspect
import logging
import warnings

import pytest
from django.test import AsyncClient, Client

from django_mongopool.client import pools
from django_mongopool.exceptions import LeakedSessionError, LeakedSessionWarning
from tests import views

pytestmark = [pytest.mark.server, pytest.mark.django_db]


def _line(marker: str) -> int:
    source = inspect.getsource(views).splitlines()
    return next(n for n, line in enumerate(source, start=1) if marker in line)


def test_leak_warns_in_debug_at_the_line_that_started_it(mongo, settings):
    settings.DEBUG = True
    with pytest.warns(LeakedSessionWarning) as caught:
        assert Client().get("/t/leak/").status_code == 200
    (warning,) = caught
    assert warning.filename == views.__file__ and warning.lineno == _line("# LEAK-LINE")
    assert "GET /t/leak/" in str(warning.message)
    assert pools.snapshot().leaked_sessions == 1


def test_leak_is_logged_and_counted_without_debug(mongo, caplog):
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        Client().get("/t/leak/")
    assert f"views.py:{_line('# LEAK-LINE')}" in caplog.text
    assert pools.snapshot().leaked_sessions == 1


def test_raise_mode_fails_the_request(mongo, settings):
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    with pytest.raises(LeakedSessionError, match="were not ended"):
        Client().get("/t/leak/")


def test_off_mode_only_counts(mongo, settings, caplog):
    settings.MONGOPOOL_LEAKED_SESSIONS = "off"
    settings.DEBUG = True
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")
        Client().get("/t/leak/")
    assert pools.snapshot().leaked_sessions == 1
    assert "were not ended" not in caplog.text


def test_ended_sessions_and_the_request_session_are_never_reported(mongo, settings):
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    for _ in range(3):
        assert Client().get("/t/no-leak/").status_code == 200
        assert Client().get("/t/insert/").status_code == 200
    assert pools.snapshot().leaked_sessions == 0


async def test_leak_in_async_view_is_tracked_through_sync_to_async(mongo, settings):
    settings.DEBUG = True
    with pytest.warns(LeakedSessionWarning) as caught:
        await AsyncClient().get("/t/async-leak/")
    assert caught[0].lineno == _line("# ASYNC-LEAK-LINE")


def test_sessions_outside_requests_are_not_tracked(mongo):
    from django_mongopool import get_client

    session = get_client().start_session()
    Client().get("/t/insert/")
    assert pools.snapshot().leaked_sessions == 0
    session.end_session()
