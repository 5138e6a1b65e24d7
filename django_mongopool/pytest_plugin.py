"""pytest plugin for projects that use django-mongopool (registered through the pytest11 entry point).

Fixtures:
- ``mongopool_server`` (session): a real server. ``MONGOPOOL_TEST_URL`` names a running
  mongod/mongos; otherwise FerretDB is built (once, needs Go) and started on a free loopback port.
  A server that cannot be started is an error, never a skip.
- ``mongopool_db``: the app's client pointed at that server with a database of its own, dropped
  after the test. Needs pytest-django.
- ``mongopool_secure_server`` (session): a production-shaped server, TLS + SCRAM-SHA-256.
  ``MONGOPOOL_TEST_SECURE_URL`` names a running one (credentials, ``tls=true`` and
  ``tlsCAFile`` in the URL); otherwise FerretDB is started with a throw-away CA and a
  generated user. It also offers an unrelated CA (``untrusted_ca_file``). An error, never a skip.

- ``mongopool_mock``: the mongomock tier. ``get_client()``, ``get_database()``,
  ``request.mongo_session`` and ``get_async_client()`` work on one fresh in-memory client for the
  test (``session=`` accepted and ignored; no transactions, no pool figures, no threads).
  Yields the database, like ``mongopool_db``. Needs Django settings, not pytest-django.

Isolation (:mod:`django_mongopool.testing.isolation`): for the whole session the app's client
points at a test server (``MONGOPOOL_TEST_URL``'s, else a FerretDB started the first time a
client is built) and ``test_<name>``, so a test that requests none of the fixtures never reaches
the configured server or database.

Ini options:
- ``mongopool_mode = mock`` runs every test on the mongomock tier, except tests that request
  ``mongopool_db``, ``mongopool_server`` or ``mongopool_secure_server`` (default ``real``); while
  such a test has set MONGOPOOL_URI itself (its 503 handling), the real client serves it.
- ``mongopool_test_server_timeout_ms`` (default 1500): serverSelectionTimeoutMS is capped at this
  for the whole session (through MONGOPOOL_CLIENT_OPTIONS), and a request of a test that uses none
  of the plugin's fixtures and cannot reach the test server raises
  :class:`~django_mongopool.exceptions.ServerUnreachableInTests` (naming the fixtures and
  ``MONGOPOOL_TEST_URL``) instead of answering 503. A test that sets MONGOPOOL_URI itself (to test
  its 503 handling) gets the 503.
- ``mongopool_stray_clients``: every test runs with ``MONGOPOOL_STRAY_CLIENTS = "raise"`` unless
  this says ``warn`` or ``off``.

Helpers: ``django_mongopool.testing`` (``mongo_request`` for ``RequestFactory`` requests).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class MongoServer:
    url: str = field(repr=False)  # may carry credentials: never in a repr (pytest prints them)
    ports: set[int] = field(default_factory=set)
    ferretdb: Any = None

    @property
    def is_ferretdb(self) -> bool:
        return self.ferretdb is not None


@dataclass
class SecureMongoServer(MongoServer):
    """A TLS + SCRAM server: ``url`` carries the credentials, ``tls=true`` and ``tlsCAFile``."""

    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: Path | None = None
    untrusted_ca_file: Path | None = None


MODES = ("real", "mock")
DEFAULT_TIMEOUT_MS = 1500
# Requesting one of these puts a test on the real server (in either mode).
SERVER_FIXTURES = ("mongopool_db", "mongopool_server", "mongopool_secure_server")
MOCK_URI = "mongodb://mongomock.invalid/mongopool_mock"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "mongopool_stray_clients",
        "MONGOPOOL_STRAY_CLIENTS while tests run: raise (default), warn or off",
        default="raise",
    )
    parser.addini(
        "mongopool_mode",
        "real (default): tests reach MongoDB through their fixtures; mock: every test that "
        "requests no server fixture runs on the in-memory mongomock tier (mongopool_mock)",
        default="real",
    )
    parser.addini(
        "mongopool_test_server_timeout_ms",
        "cap on serverSelectionTimeoutMS while tests run, so an unreachable server fails fast "
        f"(default {DEFAULT_TIMEOUT_MS})",
        default=str(DEFAULT_TIMEOUT_MS),
    )


def _mode(config: pytest.Config) -> str:
    mode = str(config.getini("mongopool_mode")).strip().lower() or "real"
    if mode not in MODES:
        raise pytest.UsageError(f"mongopool_mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _timeout_ms(config: pytest.Config) -> int:
    raw = str(config.getini("mongopool_test_server_timeout_ms")).strip()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise pytest.UsageError(
            f"mongopool_test_server_timeout_ms must be a positive number of ms, not {raw!r}"
        )
    return value


PYTEST_DJANGO = (
    "django-mongopool's pytest plugin needs pytest-django: pip install pytest-django, and set "
    'DJANGO_SETTINGS_MODULE = "mysite.settings" in your pytest configuration (docs/testing.md, '
    '"Testing your project").'
)


def _has_pytest_django(config: pytest.Config) -> bool:
    return bool(config.pluginmanager.hasplugin("django"))


def _ini_sets_django_settings(config: pytest.Config) -> bool:
    """The ini file sets DJANGO_SETTINGS_MODULE, a key only pytest-django reads."""
    path = config.inipath
    try:
        text = path.read_text() if path is not None else ""
    except OSError:
        return False
    return re.search(r"^\s*DJANGO_SETTINGS_MODULE\s*=", text, re.MULTILINE) is not None


def pytest_configure(config: pytest.Config) -> None:
    _mode(config)  # a typo in the ini fails the run before any test
    _timeout_ms(config)
    if not _has_pytest_django(config) and _ini_sets_django_settings(config):
        where = config.inipath.name if config.inipath else "your pytest configuration"
        raise pytest.UsageError(
            f"DJANGO_SETTINGS_MODULE is set in {where}, but pytest-django is not installed (or "
            f"is disabled with -p no:django), so nothing reads it. {PYTEST_DJANGO}"
        )


def _needs_django(request: pytest.FixtureRequest) -> None:
    """A fixture of the plugin used without Django's settings: say what is missing."""
    if _django_configured():
        return
    missing = "" if _has_pytest_django(request.config) else " pytest-django is not installed."
    raise pytest.UsageError(
        f"{request.fixturename} needs Django's settings, and they are not configured.{missing} "
        + PYTEST_DJANGO
    )


def _django_configured() -> bool:
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency
        return False
    return bool(settings.configured)


@pytest.fixture(scope="session")
def mongopool_server() -> Iterator[MongoServer]:
    from django_mongopool.client.pymongo_internals import parse_uri

    url = os.environ.get("MONGOPOOL_TEST_URL")
    if url:
        nodes = parse_uri(url)["nodelist"]
        yield MongoServer(url=url, ports={port for _host, port in nodes})
        return
    from django_mongopool.testing.ferretdb import FerretDB

    server = FerretDB().start()
    try:
        assert server.port is not None  # set by start()
        yield MongoServer(url=server.url, ports={server.port}, ferretdb=server)
    finally:
        server.cleanup()


def _external_secure_server(url: str, scratch: Path) -> SecureMongoServer:
    from pymongo.uri_parser import parse_uri

    from django_mongopool.testing.ferretdb import write_untrusted_ca

    parsed = parse_uri(url)
    ca_file = parsed["options"].get("tlsCAFile")
    return SecureMongoServer(
        url=url,
        ports={port for _host, port in parsed["nodelist"]},
        username=parsed["username"] or "",
        password=parsed["password"] or "",
        ca_file=Path(ca_file) if ca_file else None,
        untrusted_ca_file=write_untrusted_ca(scratch / "untrusted-ca.pem"),
    )


@pytest.fixture(scope="session")
def mongopool_secure_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SecureMongoServer]:
    """A server with TLS and SCRAM-SHA-256: ``MONGOPOOL_TEST_SECURE_URL`` or our own FerretDB."""
    url = os.environ.get("MONGOPOOL_TEST_SECURE_URL")
    if url:
        yield _external_secure_server(url, tmp_path_factory.mktemp("mongopool-tls"))
        return
    from django_mongopool.testing.ferretdb import FerretDB

    server = FerretDB(tls=True, auth=True).start()
    assert server.port is not None  # set by start()
    try:
        yield SecureMongoServer(
            url=server.url,
            ports={server.port},
            ferretdb=server,
            username=str(server.username),
            password=str(server.password),
            ca_file=server.ca_file,
            untrusted_ca_file=server.untrusted_ca_file,
        )
    finally:
        server.cleanup()


@pytest.fixture
def mongopool_db(mongopool_server: MongoServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A database of the app's client on the real server, isolated per test.

    A test that changes another MONGOPOOL_* setting gets a rebuilt client: it
    should call get_database() again rather than keep using this object.
    """
    from pymongo.errors import PyMongoError

    from django_mongopool.client.process import get_client, get_database

    _needs_django(request)
    if not _has_pytest_django(request.config):
        raise pytest.UsageError(
            f"mongopool_db uses pytest-django's settings fixture. {PYTEST_DJANGO}"
        )
    settings = request.getfixturevalue("settings")
    name = f"test_{uuid.uuid4().hex[:12]}"
    settings.MONGOPOOL_URI = mongopool_server.url
    settings.MONGOPOOL_DATABASE = name
    yield get_database()
    with contextlib.suppress(PyMongoError):
        get_client().drop_database(name)


@pytest.fixture
def mongopool_mock(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The mongomock tier for one test: a fresh in-memory client behind the app's accessors.

    Yields the database ``get_database()`` returns (``MONGOPOOL_DATABASE`` or the URI's,
    else ``mongopool_mock``); ``mongopool_mock.client`` is the :class:`MockClient`.
    Without MONGOPOOL_URI in the settings, a placeholder one is set for the test.
    """
    from django.test.utils import override_settings

    from django_mongopool.conf import conf
    from django_mongopool.testing import end_mongo_requests
    from django_mongopool.testing.mock import mock_clients

    _needs_django(request)
    placeholder: AbstractContextManager[Any] = (
        contextlib.nullcontext() if conf.uri_is_set else override_settings(MONGOPOOL_URI=MOCK_URI)
    )
    with placeholder, mock_clients() as client:
        try:
            yield client[conf.database or "mongopool_mock"]
        finally:
            end_mongo_requests()


class _TestState:
    """What the 503 hook needs to know about the session and the running test."""

    settings_uri: Any = None
    timeout_ms = DEFAULT_TIMEOUT_MS
    uses_fixture = True  # outside a test: never interfere
    isolation: Any = None  # the session's testing.isolation.Isolation


_state = _TestState()


def _where(isolation: Any) -> str:
    if isolation is None or isolation.uri is None:
        return "MONGOPOOL_URI from your settings"
    database = f"the test database {isolation.database}" if isolation.database else "a test run"
    return f"{database} on {isolation.server.description}"


def _unreachable_hint(request: Any, cause: BaseException | None) -> None:
    """unavailable.response_hook: a test without a server fixture raises instead of a 503."""
    from django.conf import settings

    from django_mongopool.client.process import active_test_clients, get_config
    from django_mongopool.exceptions import ServerUnreachableInTests

    if _state.uses_fixture or active_test_clients() is not None:
        return
    if getattr(settings, "MONGOPOOL_URI", None) != _state.settings_uri:
        return  # the test pointed MONGOPOOL_URI somewhere on purpose: its 503 is expected
    config = get_config()
    why = f" ({type(cause).__name__})" if cause is not None else ""
    raise ServerUnreachableInTests(
        f"{request.method} {request.path}: MongoDB at {config.redacted_uri} could not be reached "
        f"within {config.seconds('serverSelectionTimeoutMS'):g} s{why}.\n"
        "This test uses none of django-mongopool's pytest fixtures, so it ran on "
        f"{_where(_state.isolation)}. Either:\n"
        "  - start that server (or fix MONGOPOOL_TEST_URL), so such tests run there; or\n"
        "  - request the mongopool_mock fixture (in-memory mongomock, no server), or set "
        "mongopool_mode = mock in your pytest ini for the whole suite; or\n"
        "  - request the mongopool_db fixture (a real server: FerretDB started for the "
        "session, or the server MONGOPOOL_TEST_URL names).\n"
        "The wait is capped by the ini option mongopool_test_server_timeout_ms."
    ) from cause


def _capped_options(limit_ms: int) -> dict[str, Any] | None:
    """MONGOPOOL_CLIENT_OPTIONS with serverSelectionTimeoutMS lowered to ``limit_ms``, if above."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from django_mongopool.conf import conf

    try:
        current = conf.client_config.option("serverSelectionTimeoutMS")
    except ImproperlyConfigured:
        return None  # check E001/E002 say why; nothing to cap
    if current is not None and float(current) <= limit_ms:
        return None
    options = dict(getattr(settings, "MONGOPOOL_CLIENT_OPTIONS", None) or {})
    for key in [k for k in options if k.lower() == "serverselectiontimeoutms"]:
        del options[key]
    options["serverSelectionTimeoutMS"] = limit_ms
    return options


@pytest.fixture(scope="session", autouse=True)
def _mongopool_test_session(pytestconfig: pytest.Config) -> Iterator[None]:
    """Isolate the session (a test server, ``test_<name>``), cap serverSelectionTimeoutMS, and
    turn a fixture-less test's bare 503 into a hint."""
    if not _django_configured():
        yield
        return
    from django.conf import settings
    from django.test.utils import override_settings

    from django_mongopool.request.unavailable import response_hook
    from django_mongopool.testing import explain_missing_sessions
    from django_mongopool.testing.isolation import Isolation

    _state.timeout_ms = _timeout_ms(pytestconfig)
    with contextlib.ExitStack() as stack:
        _state.isolation = stack.enter_context(
            Isolation(
                os.environ.get("MONGOPOOL_TEST_URL"),
                suffix=os.environ.get("PYTEST_XDIST_WORKER", ""),
            )
        )
        options = _capped_options(_state.timeout_ms)
        if options is not None:
            stack.enter_context(override_settings(MONGOPOOL_CLIENT_OPTIONS=options))
        stack.enter_context(response_hook(_unreachable_hint))
        stack.enter_context(explain_missing_sessions())
        _state.settings_uri = getattr(settings, "MONGOPOOL_URI", None)
        try:
            yield
        finally:
            _state.isolation = None


class _OwnUri:
    """``mongopool_mode = mock``: while a test has set MONGOPOOL_URI itself (to test its 503
    handling), the app's real client serves it instead of mongomock."""

    def __init__(self, session_uri: Any) -> None:
        self.session_uri = session_uri
        self.real: contextlib.ExitStack | None = None

    def __call__(self, *, setting: str, **kwargs: Any) -> None:
        if setting != "MONGOPOOL_URI":
            return
        from django.conf import settings

        from django_mongopool.client.process import use_test_client

        own = getattr(settings, "MONGOPOOL_URI", None) not in (self.session_uri, MOCK_URI)
        if own and self.real is None:
            self.real = contextlib.ExitStack()
            self.real.enter_context(use_test_client(None))
        elif not own and self.real is not None:
            self.real.close()
            self.real = None

    def close(self) -> None:
        if self.real is not None:
            self.real.close()
            self.real = None


@pytest.fixture(autouse=True)
def _mongopool_tier(request: pytest.FixtureRequest) -> Iterator[None]:
    """Put the test on the mock tier in ``mongopool_mode = mock``; note whether it chose a tier."""
    if not _django_configured():
        yield
        return
    from django.core.signals import setting_changed

    names = set(request.fixturenames)
    chose = bool(names.intersection(SERVER_FIXTURES)) or "mongopool_mock" in names
    own_uri: _OwnUri | None = None
    if not chose and _mode(request.config) == "mock":
        request.getfixturevalue("mongopool_mock")
        own_uri = _OwnUri(_state.settings_uri)
        setting_changed.connect(own_uri, dispatch_uid="django_mongopool.own_uri")
        chose = True
    _state.uses_fixture = chose
    try:
        yield
    finally:
        _state.uses_fixture = True
        if own_uri is not None:
            setting_changed.disconnect(dispatch_uid="django_mongopool.own_uri")
            own_uri.close()
        from django_mongopool.testing import end_mongo_requests

        end_mongo_requests()


@pytest.fixture(autouse=True)
def _mongopool_stray_clients(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _django_configured():
        yield
        return
    from django.test.utils import override_settings

    with override_settings(
        MONGOPOOL_STRAY_CLIENTS=request.config.getini("mongopool_stray_clients")
    ):
        yield
