"""MongoDB cannot serve: a 503 with Retry-After, one log line with pymongo's reason and no password,
no error e-mail (an ORM's DatabaseError raised from pymongo's error too)."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from tests.helpers import ADMINS, closed_port

PASSWORD = "Pa55-w0rd-never-logged"


def _503_lines(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("django_mongopool") and r.levelno == logging.WARNING
    ]


# --- the 503 log line names pymongo's reason, without the password ---


@pytest.mark.urls("tests.failure_urls")
def test_503_log_line_says_connection_refused(settings, caplog, fresh_503_log):
    port = closed_port()
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@127.0.0.1:{port}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 300}
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert Client().get("/h/query/").status_code == 503
    (line,) = _503_lines(caplog)
    assert "refused" in line.lower(), line
    assert f"127.0.0.1:{port}" in line
    assert PASSWORD not in caplog.text


@pytest.mark.urls("tests.failure_urls")
def test_503_log_line_says_timed_out(settings, caplog, fresh_503_log, silent_server):
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@127.0.0.1:{silent_server}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 400, "connectTimeoutMS": 200}
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert Client().get("/h/query/").status_code == 503
    (line,) = _503_lines(caplog)
    assert "timed out" in line.lower(), line
    assert "refused" not in line.lower()
    assert PASSWORD not in caplog.text


# --- an ORM's DatabaseError raised from a pymongo timeout is a 503, like pymongo's own ---


@pytest.mark.urls("tests.failure_urls")
def test_database_error_from_a_pymongo_timeout_is_503(settings, offline, mailoutbox, fresh_503_log):
    settings.ADMINS = ADMINS
    response = Client(raise_request_exception=False).get("/h/orm-wrapped/")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert mailoutbox == []
