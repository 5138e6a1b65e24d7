"""Regression tests for issue 12 (hardening) that need no server."""

from __future__ import annotations

import gc
import time

import pytest
from django.test import Client

from django_mongopool.exceptions import LeakedSessionError
from django_mongopool.stray import StrayClientError, StrayClientWarning

# --- 13: a stray client is reported once per source location (every time in "raise") ---


def test_stray_client_per_request_warns_once_per_line(settings, recwarn):
    settings.MONGOPOOL_STRAY_CLIENTS = "warn"
    for _ in range(5):
        assert Client().get("/t/stray/").status_code == 200
    stray = [w for w in recwarn if issubclass(w.category, StrayClientWarning)]
    assert len(stray) == 1, [str(w.message) for w in stray]


def test_stray_client_raise_mode_refuses_every_time(settings):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    for _ in range(3):
        with pytest.raises(StrayClientError):
            Client().get("/t/stray/")


# --- 1: no setting the app reads puts a credential on Django's error pages or e-mails ---

PASSWORD = "Pa55-w0rd-never-shown"
TOKEN = "session-token-never-shown"
URI = f"mongodb://alice:{PASSWORD}@127.0.0.1:9/shop?authSource=admin"


@pytest.fixture
def credentials(settings):
    settings.MONGOPOOL_URI = URI
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "serverSelectionTimeoutMS": 300,
        "authMechanismProperties": {"AWS_SESSION_TOKEN": TOKEN},
    }
    settings.MONGODB_URL = URI  # what django-environ settings read the URI from
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.2


def _assert_no_credentials(text: str) -> None:
    assert PASSWORD not in text
    assert TOKEN not in text


@pytest.mark.urls("tests.hardening_urls")
def test_debug_500_page_shows_no_credential(settings, credentials):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    response = client.get(
        "/h/boom/", MONGODB_URL=URI
    )  # the process environment, as runserver has it
    assert response.status_code == 500
    page = response.content.decode()
    assert "MONGOPOOL_URI" in page and "MONGODB_URL" in page  # the dump is there ...
    assert "alice:***@127.0.0.1:9" in page  # ... with the host readable
    _assert_no_credentials(page)
    text = client.get("/h/boom/", HTTP_ACCEPT="text/plain").content.decode()  # the plain-text page
    assert "MONGOPOOL_URI" in text
    _assert_no_credentials(text)


@pytest.mark.urls("tests.hardening_urls")
def test_error_mails_to_admins_carry_no_credential(settings, credentials, mailoutbox):
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]
    client = Client(raise_request_exception=False)
    assert client.get("/h/boom/", MONGODB_URL=URI).status_code == 500
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert "MONGOPOOL_URI" in mail.body
    _assert_no_credentials(mail.subject + mail.body)
    for alternative, _mime in getattr(mail, "alternatives", []):
        _assert_no_credentials(str(alternative))


@pytest.mark.urls("tests.hardening_urls")
def test_503s_send_no_mail(settings, credentials, mailoutbox):
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]
    client = Client(raise_request_exception=False)
    assert client.get("/h/unavailable/").status_code == 503  # the middleware's 503
    assert client.get("/mongopool/ready").status_code == 503  # the probe: nothing listens on :9
    assert mailoutbox == []


def test_reporter_filter_is_wrapped_once_and_masks_any_mongodb_uri(credentials):
    from django.views.debug import SafeExceptionReporterFilter

    from django_mongopool import reporting

    reporting.install()
    reporting.install()
    wrapped = SafeExceptionReporterFilter.cleanse_setting
    assert not getattr(wrapped.__wrapped__, "_mongopool_redacts", False)  # one layer only
    cleanse = SafeExceptionReporterFilter().cleanse_setting
    other = "db=mongodb+srv://bob:other-pw@c.example.net/?authMechanismProperties=X:y-tok&w=1"
    assert cleanse("ANY_NAME", other) == (
        "db=mongodb+srv://bob:***@c.example.net/?authMechanismProperties=***&w=1"
    )
    options = cleanse("OPTIONS", {"AuthMechanismProperties": "AWS_SESSION_TOKEN:t", "w": 1})
    assert options == {"AuthMechanismProperties": "********************", "w": 1}
    # The configured password is masked wherever it appears, however it is spelled.
    assert PASSWORD not in str(cleanse("NOTE", [f"pw was {PASSWORD}", (PASSWORD,)]))


# --- 10: a settings change retires the client; it closes after its last request ---


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def offline(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/hardening"


def test_a_retired_client_serves_its_request_then_closes(offline):
    from django_mongopool import client

    session = client.request_session()
    old = session.client
    token = client.request_clients.set(client.RequestClients(old))
    try:
        client.reset_client()
        assert client.get_client() is old  # the running request keeps its client
    finally:
        client.request_clients.reset(token)
    assert client.get_client() is not old  # new work gets the new one
    assert not old._closed
    session.end_session()
    client.release_request(session)
    assert _wait_for(lambda: old._closed)


def test_a_retired_client_closes_after_the_grace_period(offline):
    from django_mongopool import client

    session = client.request_session()  # never released
    old = session.client
    client.reset_client(grace=0.2)
    assert not old._closed
    assert _wait_for(lambda: old._closed)
    client.release_request(session)  # late: nothing happens twice


def test_exit_closes_retired_clients_too(offline):
    from django_mongopool import client

    session = client.request_session()
    old = session.client
    client.reset_client()
    current = client.get_client()
    client.close_clients()
    assert old._closed and current._closed
    client.release_request(session)


# --- 14: sessions started in a thread the view spawned are found ---


def _thread_leak_line() -> int:
    import inspect

    from tests import hardening_urls

    lines = inspect.getsource(hardening_urls).splitlines()
    return next(n for n, line in enumerate(lines, start=1) if "# THREAD-LEAK-LINE" in line)


@pytest.mark.urls("tests.hardening_urls")
def test_a_session_leaked_in_a_plain_thread_is_reported_at_its_line(settings, offline):
    from django_mongopool import pools
    from django_mongopool.exceptions import LeakedSessionWarning

    settings.DEBUG = True
    before = pools.snapshot().leaked_sessions
    with pytest.warns(LeakedSessionWarning, match="outside any request") as caught:
        assert Client().get("/h/thread-leak/").status_code == 200
        gc.collect()
    assert caught[0].filename.endswith("hardening_urls.py")
    assert caught[0].lineno == _thread_leak_line()
    assert pools.snapshot().leaked_sessions == before + 1


@pytest.mark.urls("tests.hardening_urls")
def test_a_thread_given_the_request_context_is_tracked_with_the_request(settings, offline):
    from django_mongopool.exceptions import LeakedSessionWarning

    settings.DEBUG = True
    with pytest.warns(LeakedSessionWarning, match="during GET /h/thread-with-context/") as caught:
        assert Client().get("/h/thread-with-context/").status_code == 200
    assert caught[0].lineno == _thread_leak_line()
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    with pytest.raises(LeakedSessionError):
        Client().get("/h/thread-with-context/")


@pytest.mark.urls("tests.hardening_urls")
def test_sessions_ended_in_threads_are_not_reported(settings, offline, recwarn):
    settings.DEBUG = True
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    assert Client().get("/h/thread-with-context/?end=1").status_code == 200
    gc.collect()
    assert not recwarn.list
