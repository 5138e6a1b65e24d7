"""Every system check id: triggered by a bad configuration, quiet on a good one. No network I/O."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import Client
from pymongo import MongoClient

from django_mongopool.checks import MIDDLEWARE_PATH, check_deploy
from django_mongopool.conf import conf
from tests.helpers import bound_child, wait_child

PASSWORD = "Pa55-w0rd-never-shown"

REMOTE_GOOD = (
    "mongodb://app:pw@db1.example.com:27017,db2.example.com:27017/shop?replicaSet=rs0&tls=true"
)


def _ids(deploy: bool = False) -> set[str]:
    return {
        m.id for m in checks.run_checks(tags=["django_mongopool"], include_deployment_checks=deploy)
    }


def test_good_configuration_is_quiet():
    assert _ids() == set()


def test_good_remote_configuration_is_quiet_under_deploy(settings):
    settings.MONGOPOOL_URI = REMOTE_GOOD
    assert _ids(deploy=True) == set()


def test_loopback_without_tls_or_credentials_is_fine_under_deploy():
    assert _ids(deploy=True) == set()  # tests use mongodb://127.0.0.1:9/...


def test_e001_uri_missing(settings):
    del settings.MONGOPOOL_URI
    assert _ids() == {"django_mongopool.E001"}


def test_e002_middleware_missing(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert _ids() == {"django_mongopool.E002"}


def test_e003_middleware_twice(settings):
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, *settings.MIDDLEWARE]
    assert _ids() == {"django_mongopool.E003"}


def test_w001_middleware_not_first(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH] + [
        MIDDLEWARE_PATH
    ]
    messages = checks.run_checks(tags=["django_mongopool"])
    assert [m.id for m in messages] == ["django_mongopool.W001"]
    assert "SessionMiddleware" in messages[0].msg


def test_e004_invalid_settings_after_startup(settings):
    settings.MONGOPOOL_URI = "mongodb://h/?maxPoolSize=0"
    messages = checks.run_checks(tags=["django_mongopool"])
    assert [m.id for m in messages] == ["django_mongopool.E004"]
    assert "maxPoolSize" in messages[0].msg


def test_e005_fleet_above_server_capacity(settings):
    settings.MONGOPOOL_PROCESSES = 20
    settings.MONGOPOOL_SERVER_MAX_CONNECTIONS = 200
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 10}
    (message,) = checks.run_checks(tags=["django_mongopool"])
    assert message.id == "django_mongopool.E005"
    assert "20 processes x (maxPoolSize 10 + 2 monitor connections) = 240" in message.msg
    assert "at most 8" in message.hint
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 8}
    assert _ids() == set()


@pytest.mark.parametrize("option", ["waitQueueTimeoutMS", "serverSelectionTimeoutMS", "timeoutMS"])
def test_w002_long_waits(settings, option):
    settings.MONGOPOOL_CLIENT_OPTIONS = {option: 120_000}
    assert _ids() == {"django_mongopool.W002"}


@pytest.mark.parametrize(
    ("options", "fires"),
    [
        ({"waitQueueTimeoutMS": 20_000}, True),  # a read waits 2 x 20 s: pymongo retries it
        ({"waitQueueTimeoutMS": 15_000}, False),
        ({"waitQueueTimeoutMS": 20_000, "retryReads": False}, False),
        ({"waitQueueTimeoutMS": 20_000, "timeoutMS": 25_000}, False),  # the whole operation
    ],
)
def test_w002_counts_a_reads_second_wait(settings, options, fires):
    settings.MONGOPOOL_CLIENT_OPTIONS = options
    messages = [m for m in checks.run_checks(tags=["django_mongopool"])]
    assert [m.id for m in messages] == (["django_mongopool.W002"] if fires else [])
    if fires:
        assert "a read waits up to 40 s and a write up to 20 s" in messages[0].msg


def test_w002_reads_the_uri_spelling_of_retry_reads(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/db?retryReads=false"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"waitQueueTimeoutMS": 20_000}
    assert _ids() == set()


def test_w003_no_appname(settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {"appname": None}
    assert _ids() == {"django_mongopool.W003"}


@pytest.mark.server
@pytest.mark.core
def test_w004_connected_before_fork(mongo_server, settings):
    from django_mongopool import get_client

    settings.MONGOPOOL_URI = mongo_server.url
    settings.MONGOPOOL_DATABASE = "checks"  # the server's URL names none (W020)
    get_client().admin.command("ping")  # the "parent" connects before forking
    assert _ids() == set()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            bound_child()
            code = 0 if _ids() == {"django_mongopool.W004"} else 3
        finally:
            os._exit(code)
    assert wait_child(pid) == 0


def test_w101_tls_off_for_remote_host(settings):
    settings.MONGOPOOL_URI = REMOTE_GOOD.replace("&tls=true", "")
    assert _ids(deploy=True) == {"django_mongopool.W101"}
    assert _ids(deploy=False) == set()


def test_srv_uris_have_tls_on_by_default(settings):
    settings.MONGOPOOL_URI = "mongodb+srv://app:pw@cluster0.example.com/shop"
    assert _ids(deploy=True) == set()


def test_w102_no_credentials_for_remote_host(settings):
    settings.MONGOPOOL_URI = "mongodb://db1.example.com/shop?tls=true"
    assert _ids(deploy=True) == {"django_mongopool.W102"}
    settings.MONGOPOOL_URI = "mongodb://db1.example.com/shop?tls=true&authMechanism=MONGODB-X509"
    assert _ids(deploy=True) == set()


def test_w103_direct_connection_to_a_replica_set_member(settings):
    settings.MONGOPOOL_URI = (
        "mongodb://app:pw@db1.example.com/shop?tls=true&replicaSet=rs0&directConnection=true"
    )
    assert _ids(deploy=True) == {"django_mongopool.W103"}


def test_w005_metrics_token_without_the_metrics_route(settings):
    settings.MONGOPOOL_METRICS_TOKEN = "a-scrape-token-of-24-chars"
    assert _ids() == set()  # tests.urls includes django_mongopool.urls
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    (message,) = checks.run_checks(tags=["django_mongopool"])
    assert message.id == "django_mongopool.W005"
    assert 'include("django_mongopool.urls")' in message.hint
    settings.MONGOPOOL_METRICS_TOKEN = None
    assert _ids() == set()  # no token: the include is not needed, no noise


def test_every_message_has_a_hint(settings):
    del settings.MONGOPOOL_URI
    settings.MIDDLEWARE = []
    messages = checks.run_checks(tags=["django_mongopool"])
    assert messages and all(m.hint for m in messages)


def test_checks_never_touch_the_network(settings):
    from django_mongopool.client import pools

    settings.MONGOPOOL_URI = REMOTE_GOOD
    checks.run_checks(tags=["django_mongopool"], include_deployment_checks=True)
    assert pools.snapshot().servers == ()


def test_ids_are_documented():
    """docs/checks.md lists every check id of the code, and no other."""
    from pathlib import Path

    import django_mongopool.checks as module

    page = (Path(__file__).parents[1] / "docs" / "checks.md").read_text()
    source = Path(module.__file__).read_text()
    import re

    from django_mongopool.client import pymongo_internals

    ids = set(re.findall(r'id="(django_mongopool\.[EW]\d{3})"', source))
    assert len(ids) == 20  # the regex finds every literal id
    ids |= set(
        pymongo_internals.CHECK_IDS.values()
    )  # the pymongo-internals checks (E010, W010-W015)
    assert len(ids) == 27
    documented = re.findall(r"^\| `(django_mongopool\.[EW]\d{3})` \|", page, re.M)
    assert sorted(documented) == sorted(ids)  # each once


@pytest.mark.django_db
def test_migrations_are_in_sync():
    try:
        call_command(
            "makemigrations", "django_mongopool", "--check", "--dry-run", stdout=StringIO()
        )
    except SystemExit as exc:  # pragma: no cover - only when a migration is missing
        pytest.fail(f"django_mongopool needs a new migration ({exc})")


# --- TLS decided as pymongo decides it; W101 says what is exposed ---


@pytest.mark.parametrize("option", ["tlsCAFile", "tlsCertificateKeyFile"])
def test_tls_turned_on_by_a_file_option_gives_no_w101(settings, tmp_path, option):
    pem = tmp_path / "file.pem"
    pem.write_text("not read by the check\n")
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@db.example.com/shop?{option}={pem}"
    assert "django_mongopool.W101" not in {m.id for m in check_deploy()}


def test_w101_without_credentials_does_not_speak_of_credentials(settings):
    settings.MONGOPOOL_URI = "mongodb://db.example.com/shop"
    (w101,) = [m for m in check_deploy() if m.id == "django_mongopool.W101"]
    assert "credential" not in w101.msg.lower() and "password" not in w101.msg.lower()
    settings.MONGOPOOL_URI = f"mongodb://alice:{PASSWORD}@db.example.com/shop"
    (w101,) = [m for m in check_deploy() if m.id == "django_mongopool.W101"]
    assert "password" in w101.msg and PASSWORD not in w101.msg


# pymongo expands ``tlsInsecure`` into ``tlsAllowInvalidCertificates``,
# ``tlsAllowInvalidHostnames`` and ``tlsDisableOCSPEndpointCheck``, and any of those set to false
# turns TLS on: ``tlsInsecure=false`` must not give W101. The app's decision is compared with
# the client pymongo builds from the same URI.
TLS_HOST = "mongodb://app:pw@db.example.com:27017/shop"


def _pymongo_uses_tls(uri: str) -> bool:
    client = MongoClient(uri, connect=False)
    try:
        return client.options.pool_options._ssl_context is not None
    finally:
        client.close()


@pytest.mark.parametrize(
    ("query", "tls"),
    [
        ("tlsInsecure=false", True),
        ("tlsinsecure=false", True),  # any case of the name
        ("tlsInsecure=true", False),
        ("tlsInsecure=false&tls=false", None),  # pymongo refuses the combination
        ("tlsAllowInvalidHostnames=false", True),
        ("", False),
    ],
)
def test_tls_is_on_exactly_when_pymongo_turns_it_on(settings, query, tls):
    from pymongo.errors import ConfigurationError

    uri = f"{TLS_HOST}?{query}" if query else TLS_HOST
    settings.MONGOPOOL_URI = uri
    settings.MONGOPOOL_ALLOWED_CLIENT_MODULES = [__name__]  # the reference client above
    if tls is None:
        with pytest.raises(ConfigurationError):
            _pymongo_uses_tls(uri)
        return
    assert _pymongo_uses_tls(uri) is tls
    assert conf.client_config.tls is tls
    w101 = "django_mongopool.W101" in {m.id for m in check_deploy()}
    assert w101 is not tls


def test_tls_insecure_false_in_the_client_options_counts_too(settings):
    settings.MONGOPOOL_URI = TLS_HOST
    settings.MONGOPOOL_CLIENT_OPTIONS = {"tlsInsecure": False}
    assert conf.client_config.tls is True
    assert "django_mongopool.W101" not in {m.id for m in check_deploy()}


def _messages(msg_id: str) -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(tags=["django_mongopool"]) if m.id == msg_id]


# --- the probe include placed where a request never reaches it (W030) ---


def test_w030_probe_include_behind_the_admins_catch_all(settings):
    assert _messages("django_mongopool.W030") == []  # tests.urls mounts it at mongopool/
    settings.ROOT_URLCONF = "tests.urls_probe_behind_admin"
    # What a load balancer gets: the admin's answer, a redirect to its login page.
    response = Client().get("/admin/mongopool/ready")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    ready, metrics = _messages("django_mongopool.W030")
    assert "/admin/mongopool/ready" in ready.msg and "readiness probe" in ready.msg
    assert "catch_all_view" in ready.msg  # names the view that answers instead
    assert "/admin/mongopool/metrics" in metrics.msg
    assert "before admin.site.urls and outside admin/" in ready.hint


def test_w030_quiet_when_the_include_comes_first(settings):
    settings.ROOT_URLCONF = "tests.urls_old_page_address"
    assert _messages("django_mongopool.W030") == []
    assert Client().get("/admin/mongopool/ready").status_code in (200, 503)


def test_w030_quiet_without_the_include(settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    assert _messages("django_mongopool.W030") == []


# --- the ORM engine on the app's pool defaults (W031) ---


@pytest.fixture
def orm_alias(monkeypatch):
    from django.conf import settings as django_settings

    databases = {
        **django_settings.DATABASES,
        "mongo": {"ENGINE": "django_mongopool.backends.mongodb"},
    }
    # Set without override_settings: Django warns about overriding DATABASES in a test.
    monkeypatch.setattr(django_settings, "DATABASES", databases)


def test_w031_orm_engine_on_the_default_pool(orm_alias, settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {"waitQueueTimeoutMS": 2000}
    (message,) = _messages("django_mongopool.W031")
    assert "DATABASES['mongo']" in message.msg
    assert "maxPoolSize 10 and waitQueueTimeoutMS 2000" in message.msg
    assert "pymongo's 100" in message.msg and "DatabaseError" in message.msg
    assert "MONGOPOOL_CLIENT_OPTIONS['maxPoolSize']" in message.hint
    assert "gunicorn --threads" in message.hint


@pytest.mark.parametrize(
    "sized",
    [
        {"MONGOPOOL_CLIENT_OPTIONS": {"maxPoolSize": 10}},
        {"MONGOPOOL_CLIENT_OPTIONS": {"MAXPOOLSIZE": 32}},
        {
            "MONGOPOOL_URI": "mongodb://127.0.0.1:9/shop?maxPoolSize=40",
            "MONGOPOOL_CLIENT_OPTIONS": {},
        },
        {"MONGOPOOL_FLEET_BUDGET": 24, "MONGOPOOL_HEARTBEAT_SECONDS": 5},
    ],
    ids=["options", "options-any-case", "uri", "fleet-budget"],
)
def test_w031_quiet_once_the_pool_is_sized(orm_alias, settings, sized):
    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    for name, value in sized.items():
        setattr(settings, name, value)
    assert _messages("django_mongopool.W031") == []


def test_w031_quiet_without_the_orm_engine(settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    assert _messages("django_mongopool.W031") == []
