"""The app against a production-shaped server: TLS with a private CA and SCRAM-SHA-256.

The server is the plugin's ``mongopool_secure_server``: FerretDB started on TLS only with a
throw-away CA and a generated user and password, or ``MONGOPOOL_TEST_SECURE_URL``. These
tests are never skipped: a server that cannot be started is an error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError

from django_mongopool import get_client, get_database
from django_mongopool.pytest_plugin import SecureMongoServer
from tests.helpers import with_password

pytestmark = [pytest.mark.server, pytest.mark.django_db]

FAST_FAIL = {"serverSelectionTimeoutMS": 400, "waitQueueTimeoutMS": 1000}
REMOTE_HOST = "db.internal.example:27017"  # deploy checks are static: never resolved


def _without_credentials(url: str) -> str:
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}/{path}"


def _without_tls(url: str) -> str:
    return _with_options(url, tls=None, ssl=None, tlsCAFile=None)


def _with_options(url: str, **options: str | None) -> str:
    """``url`` with URI options set (``None`` removes one); names match case-insensitively."""
    base, _, query = url.partition("?")
    wanted = {name.lower(): (name, value) for name, value in options.items()}
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0].lower() not in wanted]
    kept += [f"{name}={value}" for name, value in wanted.values() if value is not None]
    return f"{base}?{'&'.join(kept)}" if kept else base


def _with_host(url: str, host: str) -> str:
    """``url`` pointed at ``host`` instead of its own hosts (userinfo and options kept)."""
    scheme, rest = url.split("://", 1)
    authority, _, path = rest.partition("/")
    userinfo, at, _hosts = authority.rpartition("@")
    return f"{scheme}://{userinfo}{at}{host}/{path}"


def _ca_option(path: Path | None) -> str | None:
    return quote(str(path), safe="/") if path else None


@pytest.fixture
def secure(mongopool_secure_server: SecureMongoServer, settings) -> Iterator[SecureMongoServer]:
    """The app's client on the TLS + SCRAM server, with a database of its own."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    settings.MONGOPOOL_URI = mongopool_secure_server.url
    settings.MONGOPOOL_DATABASE = name
    yield mongopool_secure_server
    settings.MONGOPOOL_URI = mongopool_secure_server.url
    with contextlib.suppress(PyMongoError):
        get_client().drop_database(name)


def test_request_inserts_and_reads_over_tls_as_the_scram_user(secure):
    key = uuid.uuid4().hex
    response = Client().get(f"/t/insert/?key={key}")
    assert response.status_code == 200
    assert response.json() == {"key": key}
    assert get_database()["items"].count_documents({"key": key}) == 1
    status = get_client().admin.command("connectionStatus")
    users = status["authInfo"]["authenticatedUsers"]
    assert {"user": secure.username, "db": "admin"} in users


def test_server_refuses_commands_without_credentials(secure, settings):
    settings.MONGOPOOL_URI = _without_credentials(secure.url)
    with pytest.raises(OperationFailure) as info:
        get_database()["items"].insert_one({"_id": uuid.uuid4().hex})
    assert info.value.code == 13  # Unauthorized


def test_our_server_listens_on_tls_only(secure, settings):
    """A client without TLS cannot talk to it (checked for our FerretDB; a given URL may differ)."""
    if secure.is_ferretdb:
        settings.MONGOPOOL_URI = _without_tls(secure.url)
        settings.MONGOPOOL_CLIENT_OPTIONS = FAST_FAIL
        with pytest.raises(ServerSelectionTimeoutError):
            get_database().command("ping")
    assert "tls=true" in secure.url.lower()


def _formatted(record: logging.LogRecord) -> str:
    text = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return f"{text} {record.args!r} {record.__dict__!r}"


def test_wrong_password_is_auth_failed_and_never_shown(secure, settings, caplog):
    wrong = f"wr0ng-{secrets.token_hex(8)}"
    settings.MONGOPOOL_URI = with_password(secure.url, wrong)
    settings.MONGOPOOL_CLIENT_OPTIONS = FAST_FAIL
    caplog.set_level(logging.DEBUG)
    with pytest.raises(OperationFailure) as info:
        Client().get("/t/insert/")
    assert info.value.code == 18  # AuthenticationFailed
    response = Client(raise_request_exception=False).get("/t/insert/")
    assert response.status_code in (500, 503)  # Django's error page or the documented 503
    shown = [str(info.value), repr(info.value.details), response.content.decode()]
    shown += [_formatted(record) for record in caplog.records]
    for password in (wrong, secure.password):
        assert not [text for text in shown if password in text]


def _audit(*args: str) -> tuple[str, str]:
    """``mongo_connections`` output and, when it fails, its error message."""
    out = StringIO()
    try:
        call_command("mongo_connections", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


def test_audit_json_redacts_the_uri(secure):
    get_database().command("ping")
    output, error = _audit("--format", "json")
    assert error == ""
    uri = json.loads(output)["config"]["uri"]
    assert secure.password not in output
    assert uri.startswith("mongodb://") and secure.username in uri
    assert "tls=true" in uri.lower()


def test_pool_page_and_its_json_redact_the_uri(secure):
    Client().get("/t/insert/")  # give the pool something to show
    staff = Client()
    staff.force_login(User.objects.create_superuser("tls-admin", password="pw"))
    page = reverse("admin:django_mongopool_poolhealth_changelist")
    html, as_json = staff.get(page), staff.get(page, {"format": "json"})
    assert html.status_code == as_json.status_code == 200
    assert secure.password not in html.content.decode() + as_json.content.decode()
    assert f"{secure.username}:***@" in as_json.json()["config"]["uri"]


@pytest.mark.parametrize("form", ["text", "json"])
def test_audit_with_a_wrong_password_shows_no_password(secure, settings, form):
    wrong = f"wr0ng-{secrets.token_hex(8)}"
    settings.MONGOPOOL_URI = with_password(secure.url, wrong)
    settings.MONGOPOOL_CLIENT_OPTIONS = FAST_FAIL
    output, error = _audit("--format", form)
    assert output  # the configuration is reported even when the server refuses us
    for password in (wrong, secure.password):
        assert password not in output and password not in error


def test_audit_names_an_authentication_failure(secure, settings):
    password = f"wr0ng-{secrets.token_hex(8)}"
    settings.MONGOPOOL_URI = with_password(secure.url, password)
    output, error = _audit("--format", "text")
    assert "could not be reached" not in output
    assert "authentication failed" in output.lower() and "code 18" in output
    assert "refused authentication" in error and password not in output + error


def _deploy_warnings() -> set[str]:
    ids = {message.id for message in run_checks(include_deployment_checks=True)}
    return {i for i in ids if i in {"django_mongopool.W101", "django_mongopool.W102"}}


def test_deploy_check_warns_for_a_remote_host_without_tls_or_credentials(secure, settings):
    """The control case: the same host with no TLS and no user gets both warnings."""
    plain = _without_tls(_without_credentials(secure.url))
    settings.MONGOPOOL_URI = _with_host(plain, REMOTE_HOST)
    assert _deploy_warnings() == {"django_mongopool.W101", "django_mongopool.W102"}


@pytest.mark.parametrize("remote", [False, True], ids=["this-server", "remote-host"])
def test_deploy_check_is_quiet_about_tls_and_credentials(secure, settings, remote):
    if remote:
        settings.MONGOPOOL_URI = _with_host(secure.url, REMOTE_HOST)
    assert _deploy_warnings() == set()


def test_deploy_check_is_quiet_with_tls_options_in_client_options(secure, settings):
    settings.MONGOPOOL_URI = _with_host(_without_tls(secure.url), REMOTE_HOST)
    settings.MONGOPOOL_CLIENT_OPTIONS = {"tls": True, "tlsCAFile": str(secure.ca_file)}
    assert _deploy_warnings() == set()


def test_deploy_check_knows_tls_ca_file_alone_turns_tls_on(secure, settings):
    """pymongo turns TLS on for any tls* option, so W101 must see it on too."""
    uri = _with_options(_without_tls(secure.url), tlsCAFile=_ca_option(secure.ca_file))
    settings.MONGOPOOL_URI = _with_host(uri, REMOTE_HOST)
    assert _deploy_warnings() == set()


def test_untrusted_certificate_fails_clearly_and_quickly(secure, settings):
    untrusted = _with_options(secure.url, tlsCAFile=_ca_option(secure.untrusted_ca_file))
    settings.MONGOPOOL_URI = untrusted
    settings.MONGOPOOL_CLIENT_OPTIONS = FAST_FAIL
    started = time.monotonic()
    with pytest.raises(ServerSelectionTimeoutError, match="certificate verify failed"):
        get_database().command("ping")
    assert time.monotonic() - started < 5
    response = Client(raise_request_exception=False).get("/t/insert/")
    assert response.status_code == 503
    assert secure.password not in response.content.decode()
