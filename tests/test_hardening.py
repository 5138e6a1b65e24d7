"""Regression tests for issue 12 (hardening) that need no server."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from django_mongopool.client.scope import RequestScope
from django_mongopool.exceptions import LeakedSessionError
from django_mongopool.guards.stray import StrayClientError, StrayClientWarning
from tests.helpers import ADMINS, closed_port

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
    settings.ADMINS = ADMINS
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
    settings.ADMINS = ADMINS
    client = Client(raise_request_exception=False)
    assert client.get("/h/unavailable/").status_code == 503  # the middleware's 503
    assert client.get("/mongopool/ready").status_code == 503  # the probe: nothing listens on :9
    assert mailoutbox == []


def test_reporter_filter_is_wrapped_once_and_masks_any_mongodb_uri(credentials):
    from django.views.debug import SafeExceptionReporterFilter

    from django_mongopool.guards import error_reports

    error_reports.install()
    error_reports.install()
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
    from django_mongopool.client import process as client
    from django_mongopool.client.scope import RequestScope, current

    scope = RequestScope()  # what the middleware sets for a request
    token = current.set(scope)
    try:
        old = client.get_client()  # the request's first need holds and pins the client
        assert scope.held is old
        client.reset_client()
        assert client.get_client() is old  # the running request keeps its client
    finally:
        current.reset(token)
    assert client.get_client() is not old  # new work gets the new one
    assert not old._closed
    scope.held.release()  # the request ends
    assert _wait_for(lambda: old._closed)


def test_a_retired_client_closes_after_the_grace_period(offline):
    from django_mongopool.client import process as client

    old = client.hold_for(RequestScope())  # a request that never ends
    client.reset_client(grace=0.2)
    assert not old._closed
    assert _wait_for(lambda: old._closed)
    old.release()  # late: nothing happens twice


def test_exit_closes_retired_clients_too(offline):
    from django_mongopool.client import process as client

    old = client.hold_for(RequestScope())  # a request still running
    client.reset_client()
    current = client.get_client()
    client.close_clients()
    assert old._closed and current._closed
    old.release()


# --- 14: sessions started in a thread the view spawned are found ---


def _thread_leak_line() -> int:
    import inspect

    from tests import hardening_urls

    lines = inspect.getsource(hardening_urls).splitlines()
    return next(n for n, line in enumerate(lines, start=1) if "# THREAD-LEAK-LINE" in line)


@pytest.mark.urls("tests.hardening_urls")
def test_a_session_leaked_in_a_plain_thread_is_reported_at_its_line(settings, offline):
    from django_mongopool.client import pools
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
def test_a_session_leaked_while_a_stream_is_sent_is_reported_when_it_ends(settings, offline):
    from django_mongopool.exceptions import LeakedSessionWarning

    settings.DEBUG = True
    response = Client().get("/h/stream-leak/")
    with pytest.warns(LeakedSessionWarning, match="during a streamed response") as caught:
        assert b"".join(response.streaming_content) == b"first\nsecond\n"
    assert caught[0].lineno == _thread_leak_line()


@pytest.mark.urls("tests.hardening_urls")
def test_sessions_ended_in_threads_are_not_reported(settings, offline, recwarn):
    settings.DEBUG = True
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    assert Client().get("/h/thread-with-context/?end=1").status_code == 200
    gc.collect()
    assert not recwarn.list


# --- A silent server: accepts TCP connections and never answers ---


@pytest.fixture
def silent_server():
    """A loopback port whose kernel completes the TCP handshake; nothing is ever read or sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def fresh_503_log():
    """The 503 line is rate-limited per process: start each test with a line to spare."""
    with contextlib.suppress(ImportError, AttributeError):
        from django_mongopool.request import unavailable

        unavailable.log_unavailable.last = float("-inf")


def _503_lines(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("django_mongopool") and r.levelno == logging.WARNING
    ]


# --- 2: the 503 log line names pymongo's reason, without the password ---


@pytest.mark.urls("tests.hardening_urls")
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


@pytest.mark.urls("tests.hardening_urls")
def test_503_log_line_says_timed_out(settings, caplog, fresh_503_log, silent_server):
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@127.0.0.1:{silent_server}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 400, "connectTimeoutMS": 200}
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert Client().get("/h/query/").status_code == 503
    (line,) = _503_lines(caplog)
    assert "timed out" in line.lower(), line
    assert "refused" not in line.lower()
    assert PASSWORD not in caplog.text


# --- 6: URI options split as pymongo splits them; what is shown is what the client uses ---


@pytest.mark.parametrize(
    ("query", "pool", "wait_ms"),
    [
        ("maxPoolSize=3;waitQueueTimeoutMS=100", 3, 100),
        ("maxPoolSize=3&waitQueueTimeoutMS=100", 3, 100),
        ("maxpoolsize=3;WAITQUEUETIMEOUTMS=100", 3, 100),
    ],
)
def test_uri_options_shown_are_the_options_the_client_uses(settings, query, pool, wait_ms):
    from django_mongopool.client.process import get_client, get_config

    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:9/shop?{query}"
    config = get_config()
    assert config.option("maxPoolSize") == pool
    assert config.option("waitQueueTimeoutMS") == wait_ms
    options = get_client().options.pool_options
    assert options.max_pool_size == pool
    assert options.wait_queue_timeout == wait_ms / 1000


def test_repeated_uri_option_last_wins_as_in_pymongo(settings):
    from django_mongopool.client.process import get_client, get_config

    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop?maxPoolSize=3;MAXPOOLSIZE=4"
    with pytest.warns(UserWarning, match="Duplicate URI option"):  # pymongo's own warning
        assert get_config().option("maxPoolSize") == 4
        assert get_client().options.pool_options.max_pool_size == 4


def test_uri_options_after_a_semicolon_are_held_to_the_caps(settings):
    from django_mongopool.client.process import get_config

    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop?appname=x;maxPoolSize=0"
    with pytest.raises(ImproperlyConfigured, match="maxPoolSize"):
        get_config()


# --- 7: a string where a number belongs is refused ---


@pytest.mark.parametrize("option", ["maxPoolSize", "waitQueueTimeoutMS", "socketTimeoutMS"])
def test_numbers_given_as_strings_are_refused(settings, option):
    from django_mongopool.client.process import get_config

    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {option: "10"}
    with pytest.raises(ImproperlyConfigured, match=rf"{option}.*must be a number"):
        get_config()


# --- 9: the probe answers within its timeout; POST is 405 ---


@pytest.mark.urls("tests.hardening_urls")
def test_probe_answers_within_its_timeout_against_a_silent_server(settings, silent_server):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{silent_server}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 5000}
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.2
    client = Client()
    for _ in range(3):  # also while an earlier ping is still in flight
        started = time.monotonic()
        response = client.get("/mongopool/ready")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 1.0, elapsed


@pytest.mark.urls("tests.hardening_urls")
def test_probe_is_not_rounded_up_to_pymongos_half_second_selection_loop(settings, silent_server):
    """pymongo's server selection re-checks its deadline every 0.5 s: a probe that relied on
    pymongo.timeout() alone answered after 0.5 s whatever its timeout (0.51 s for 0.2 s)."""
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{silent_server}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 5000}
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.05
    client = Client()
    for _ in range(3):
        started = time.monotonic()
        assert client.get("/mongopool/ready").status_code == 503
        assert time.monotonic() - started < 0.4


@pytest.mark.urls("tests.hardening_urls")
def test_post_to_the_probe_is_405(settings):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/mongopool/ready").status_code == 405
    assert client.get("/mongopool/ready").status_code in (200, 503)


# --- 11: TLS decided as pymongo decides it; W101 says what is exposed ---


@pytest.mark.parametrize("option", ["tlsCAFile", "tlsCertificateKeyFile"])
def test_tls_turned_on_by_a_file_option_gives_no_w101(settings, tmp_path, option):
    from django_mongopool import checks

    pem = tmp_path / "file.pem"
    pem.write_text("not read by the check\n")
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@db.example.com/shop?{option}={pem}"
    assert "django_mongopool.W101" not in {m.id for m in checks.check_deploy()}


def test_w101_without_credentials_does_not_speak_of_credentials(settings):
    from django_mongopool import checks

    settings.MONGOPOOL_URI = "mongodb://db.example.com/shop"
    (w101,) = [m for m in checks.check_deploy() if m.id == "django_mongopool.W101"]
    assert "credential" not in w101.msg.lower() and "password" not in w101.msg.lower()
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@db.example.com/shop"
    (w101,) = [m for m in checks.check_deploy() if m.id == "django_mongopool.W101"]
    assert "password" in w101.msg and PASSWORD not in w101.msg


# --- 12: an ORM's DatabaseError raised from a pymongo timeout is a 503, like pymongo's own ---


@pytest.mark.urls("tests.hardening_urls")
def test_database_error_from_a_pymongo_timeout_is_503(settings, offline, mailoutbox, fresh_503_log):
    settings.ADMINS = ADMINS
    response = Client(raise_request_exception=False).get("/h/orm-wrapped/")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert mailoutbox == []


def test_nested_tracking_blocks_keep_the_outer_one_whole(offline):
    from django_mongopool.client.process import get_client
    from django_mongopool.client.scope import tracking

    client = get_client()
    with tracking() as outer:
        with tracking() as inner:
            first = client.start_session()
        second = client.start_session()
    assert [t.session for t in inner] == [first]
    assert [t.session for t in outer] == [first, second]  # the outer block saw both
    first.end_session()
    second.end_session()


def test_probing_request_mongo_session_does_not_build_it(offline):
    from django.test import RequestFactory

    from django_mongopool.request.middleware import RequestSessions

    request = RequestFactory().get("/")
    scope = RequestSessions.open(request)
    session = request.mongo_session
    assert not hasattr(session, "no_such_attribute")
    assert getattr(session, "anything", None) is None
    assert not session.built and scope.held is None  # no client held for a probe
    assert session.client is not None and session.built and scope.held is session.client
    scope.end()
    assert scope.held is None and session.has_ended


def test_a_failed_build_leaves_the_session_unbuilt(offline, monkeypatch):
    from django.test import RequestFactory
    from pymongo.client_session import ClientSession

    from django_mongopool.request.middleware import RequestSessions

    request = RequestFactory().get("/")
    scope = RequestSessions.open(request)

    def broken(self, *args, **kwargs):
        self._client = "half"
        raise AttributeError("_server_session")

    monkeypatch.setattr(ClientSession, "__init__", broken)
    with pytest.raises(RuntimeError, match="could not be built"):
        request.mongo_session.client  # noqa: B018
    assert not request.mongo_session.built  # not half-built
    monkeypatch.undo()
    scope.end()


def test_a_hold_taken_after_the_request_ended_is_given_back(offline):
    from django_mongopool.client import process as client
    from django_mongopool.client.scope import RequestScope

    scope = RequestScope()
    scope.ended = True
    held = client.hold_for(scope)
    assert scope.held is None and held.requests_in_flight() == 0


# --- 13: a request that never touches MongoDB is ended by one flag; anything it takes sets it ---


def test_an_untouched_request_is_ended_without_the_slow_path(offline):
    request = Client().get("/t/untouched/").wsgi_request
    scope = request.mongo_session._mongopool_scope
    assert scope.ended and not scope.needs_end
    assert (scope.sync, scope.held, scope.session, scope.tracked) == (None, None, None, None)


def _open_scope():
    from django.test import RequestFactory

    from django_mongopool.request.middleware import RequestSessions

    scope = RequestSessions.open(RequestFactory().get("/"))
    assert not scope.needs_end
    return scope


def test_pinning_the_client_marks_the_scope_for_ending(offline):
    from django_mongopool.client import process as client

    scope = _open_scope()
    held = client.hold_for(scope)
    assert scope.needs_end and held.requests_in_flight() == 1
    scope.end()
    assert scope.held is None and held.requests_in_flight() == 0


def test_a_session_started_in_the_request_marks_the_scope_for_ending(offline, caplog):
    from django_mongopool.client.process import get_client
    from django_mongopool.client.scope import current

    client = get_client()  # outside the scope: starting the session below pins nothing
    scope = _open_scope()
    token = current.set(scope)
    try:
        leaked = client.start_session()
    finally:
        current.reset(token)
    assert scope.held is None and scope.needs_end and scope.tracked
    scope.end()
    assert "1 MongoDB session(s) started during" in caplog.text  # checked at the end
    leaked.end_session()


def test_a_tracking_block_in_the_request_marks_the_scope_for_ending(offline):
    from django_mongopool.client.scope import current, tracking

    scope = _open_scope()
    token = current.set(scope)
    try:
        with tracking():
            pass
    finally:
        current.reset(token)
    assert scope.needs_end
    scope.end()


def test_the_async_session_marks_the_scope_for_ending(offline):
    import asyncio

    scope = _open_scope()

    async def use_and_end():
        session = await scope.aget()
        assert scope.needs_end
        await scope.aend()
        return session

    assert asyncio.run(use_and_end()).has_ended


def test_an_async_session_is_ended_when_its_loop_winds_down_first(offline):
    import asyncio

    from django_mongopool.client import event_loops

    scope = _open_scope()

    async def use_without_ending():
        return await scope.aget()

    session = asyncio.run(use_without_ending())  # like async_to_sync under WSGI
    assert session.has_ended and scope.async_entry is None
    assert scope.async_client.requests_in_flight() == 0  # the hold was given back
    assert len(event_loops._loop_scopes) == 0
    scope.end()


def test_a_session_built_while_its_request_ends_is_built_ended(offline):
    from django_mongopool.client.process import get_client

    scope = _open_scope()
    session = _new_request_session(scope)
    scope.session_client = lambda: (get_client(), False)  # it looked before the end...
    scope.end()  # ...and the request ended while it was being built
    assert session.has_ended and scope.session is None


def _new_request_session(scope):
    from django_mongopool.client.sessions import RequestSession

    session = object.__new__(RequestSession)
    session._mongopool_scope = scope
    return session


def test_the_mock_tiers_session_marks_the_scope_for_ending(mongopool_mock):
    from django.test import RequestFactory

    from django_mongopool.request.middleware import RequestSessions

    request = RequestFactory().get("/")
    scope = RequestSessions.open(request)
    assert scope.needs_end and scope.session is request.mongo_session
    scope.end()
    assert request.mongo_session.has_ended


def test_amongo_session_outside_its_request_is_refused(offline):
    import asyncio

    request = Client().get("/t/untouched/").wsgi_request
    with pytest.raises(RuntimeError, match="outside its request"):
        asyncio.run(request.amongo_session())


def test_a_failed_async_session_start_gives_the_hold_back(offline, monkeypatch):
    import asyncio

    from django_mongopool.client import event_loops

    scope = _open_scope()

    def broken(self):
        raise RuntimeError("no session")

    monkeypatch.setattr(event_loops.PooledAsyncMongoClient, "start_request_session", broken)

    async def use():
        with pytest.raises(RuntimeError, match="no session"):
            await scope.aget()
        return event_loops.get_async_client()

    client = asyncio.run(use())
    assert client.requests_in_flight() == 0 and not scope.needs_end
    scope.end()


def _site_and_line():
    """The caller's leak site, and the line its frame reports at the same moment."""
    import sys

    from django_mongopool.guards import leaks

    caller = sys._getframe(1)
    return leaks.site(caller), caller.f_lineno


def test_a_leak_site_resolves_to_the_line_the_frame_reports():
    """Leak sites are kept as code + byte offset and turned into a line only when reported."""
    from django_mongopool.guards import leaks

    where, lineno = _site_and_line()
    spread = _site_and_line(
        # a call over several lines
    )
    in_comprehension = [_site_and_line() for _ in range(1)][0]
    keyword = dict(value=_site_and_line())["value"]
    for site, expected in (
        (where, lineno),
        spread,
        in_comprehension,
        keyword,
    ):
        assert leaks.line(site[0], site[1]) == expected
        assert site[2] == __name__
    tracked = leaks.Tracked(None, where)
    assert (tracked.filename, tracked.lineno, tracked.module) == (__file__, lineno, __name__)
