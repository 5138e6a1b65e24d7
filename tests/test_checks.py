"""Every system check id: triggered by a bad configuration, quiet on a good one. No network I/O."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core import checks
from django.core.management import call_command

from django_mongopool.checks import MIDDLEWARE_PATH

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
            code = 0 if _ids() == {"django_mongopool.W004"} else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


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


def test_ids_are_documented_in_the_readme():
    from pathlib import Path

    import django_mongopool.checks as module

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    source = Path(module.__file__).read_text()
    import re

    from django_mongopool.client import pymongo_internals

    ids = set(re.findall(r'id="(django_mongopool\.[EW]\d{3})"', source))
    assert len(ids) == 20  # the regex finds every literal id
    ids |= set(
        pymongo_internals.CHECK_IDS.values()
    )  # the pymongo-internals checks (E010, W010-W015)
    assert len(ids) == 27
    for check_id in ids:
        assert f"`{check_id}`" in readme, check_id


@pytest.mark.django_db
def test_migrations_are_in_sync():
    try:
        call_command(
            "makemigrations", "django_mongopool", "--check", "--dry-run", stdout=StringIO()
        )
    except SystemExit as exc:  # pragma: no cover - only when a migration is missing
        pytest.fail(f"django_mongopool needs a new migration ({exc})")
