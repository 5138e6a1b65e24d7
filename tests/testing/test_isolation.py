"""How tests are kept off the configured database: the isolation's settings arithmetic; no
server is reached here.

tests/testing/test_isolation_server.py runs whole projects against a real server.
"""

from __future__ import annotations

import pytest
from django.test.utils import override_settings
from pymongo.uri_parser import parse_uri

from django_mongopool import get_client, get_database
from django_mongopool.client.process import get_config
from django_mongopool.conf import conf
from django_mongopool.testing.isolation import (
    Isolation,
    _pool_options,
    isolated_name,
    with_database,
)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://db:27017/", "mongodb://db:27017/test_shop"),
        ("mongodb://db:27017", "mongodb://db:27017/test_shop"),
        ("mongodb://db1,db2/shop?replicaSet=rs0", "mongodb://db1,db2/test_shop?replicaSet=rs0"),
        # With credentials, pymongo authenticates against the URI's database: kept as authSource.
        ("mongodb://u:p@db/shop", "mongodb://u:p@db/test_shop?authSource=shop"),
        ("mongodb://u:p@db/", "mongodb://u:p@db/test_shop?authSource=admin"),
        ("mongodb://u:p@db/?tls=true", "mongodb://u:p@db/test_shop?tls=true&authSource=admin"),
        ("mongodb://u:p@db/x?authSource=auth", "mongodb://u:p@db/test_shop?authSource=auth"),
        (
            "mongodb://db/?authMechanism=MONGODB-X509&tls=true",
            "mongodb://db/test_shop?authMechanism=MONGODB-X509&tls=true",
        ),
        (
            "mongodb+srv://u:p@cluster.example.com/",
            "mongodb+srv://u:p@cluster.example.com/test_shop?authSource=admin",
        ),
    ],
)
def test_with_database_keeps_the_login(uri, expected):
    rebuilt = with_database(uri, "test_shop")
    assert rebuilt == expected
    if not uri.startswith("mongodb+srv"):  # parsing an SRV URI looks it up in the DNS
        parsed = parse_uri(rebuilt)
        assert parsed["database"] == "test_shop"
        original = parse_uri(uri)
        source = original["options"].get("authSource") or original["database"] or "admin"
        if original["username"]:
            assert parsed["options"].get("authSource", parsed["database"]) == source


def test_isolated_name_fits_mongodb_and_tells_workers_apart():
    assert isolated_name("shop") == "test_shop"
    assert isolated_name("shop", "gw1") == "test_shop_gw1"
    long = isolated_name("s" * 63, "gw12")
    assert len(long.encode()) == 63 and long.startswith("test_s") and long.endswith("_gw12")


def test_options_that_name_a_server_come_from_the_test_url_only():
    options = {
        "maxPoolSize": 20,
        "waitQueueTimeoutMS": 500,
        "appname": "shop",
        "replicaSet": "rs0",
        "tls": True,
        "tlsCAFile": "/etc/ca.pem",
        "authSource": "admin",
        "authMechanism": "SCRAM-SHA-256",
        "directConnection": True,
        "loadBalanced": False,
        "username": "app",
        "password": "secret",
        "srvMaxHosts": 2,
        "SSL": True,
    }
    assert _pool_options(options) == {
        "maxPoolSize": 20,
        "waitQueueTimeoutMS": 500,
        "appname": "shop",
    }


def test_a_session_is_isolated_from_the_configured_database():
    """This very test runs isolated: the suite's settings say mongopool_test on port 9."""
    assert get_database().name == "test_mongopool_test"
    assert "127.0.0.1:9" not in get_config().uri


@pytest.fixture
def configured():
    """A project whose settings name a database apart from the URI, with server options."""
    with override_settings(
        MONGOPOOL_URI="mongodb://app:pw@db.example.com:27017/shop?replicaSet=rs0&tls=true",
        MONGOPOOL_DATABASE="orders",
        MONGOPOOL_CLIENT_OPTIONS={"maxPoolSize": 7, "tlsCAFile": __file__},  # a file that exists
    ):
        yield


def test_isolation_renames_the_setting_database_and_keeps_pool_options(configured):
    isolation = Isolation("mongodb://tester:pw@127.0.0.1:9/admin?appname=t")
    with isolation:
        assert not isolation.used  # nothing has built a client for the test server yet
        config = get_config()
        assert (
            config.uri == "mongodb://tester:pw@127.0.0.1:9/test_orders?appname=t&authSource=admin"
        )
        assert get_database().name == "test_orders"
        assert get_client().get_default_database().name == "test_orders"
        assert config.max_pool_size == 7
        assert config.option("tlsCAFile") is None and config.option("replicaSet") is None
        assert isolation.databases == {"test_orders"}
        assert isolation.used  # get_client() built one (and cleared test_orders: port 9 is shut)
        # A test that sets a URI of its own goes where it says; MONGOPOOL_DATABASE stays the test's.
        with override_settings(MONGOPOOL_URI="mongodb://127.0.0.1:9/elsewhere"):
            assert get_config().uri == "mongodb://127.0.0.1:9/elsewhere"
            assert get_database().name == "test_orders"
    assert conf.database == "orders"
    assert "db.example.com" in get_config().uri


def test_a_uri_of_the_tests_own_keeps_its_database_without_the_setting(settings):
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop"
    assert get_database().name == "shop"


def test_without_a_uri_nothing_is_isolated(settings):
    del settings.MONGOPOOL_URI
    with Isolation("mongodb://127.0.0.1:9/") as isolation:
        assert isolation.uri is None
        assert not conf.uri_is_set


def test_manage_py_test_is_the_apps_command():
    from django.core.management import get_commands

    assert get_commands()["test"] == "django_mongopool"


def test_manage_py_test_refuses_spawned_parallel_workers(monkeypatch):
    """A spawned worker imports the settings afresh: it would reach the configured server."""
    import multiprocessing

    from django.core.management import call_command
    from django.core.management.base import CommandError

    monkeypatch.setattr(multiprocessing, "get_start_method", lambda *args: "spawn")
    with pytest.raises(CommandError, match="spawn.*Run without --parallel"):
        call_command("test", "tests.no_such_module", parallel=2)


def test_a_malformed_test_url_is_named_without_its_password():
    from django.core.exceptions import ImproperlyConfigured

    isolation = Isolation("mongodb://app:hunter2-secret@db.example.com:notaport/")
    with pytest.raises(ImproperlyConfigured) as caught:
        isolation.__enter__()
    message = str(caught.value)
    assert message.startswith("MONGOPOOL_TEST_URL (the test server) is not a valid")
    assert "hunter2-secret" not in message
    assert get_database().name == "test_mongopool_test"  # the session's isolation is intact


def test_a_collection_kept_from_before_the_run_cannot_reach_the_old_server():
    from pymongo.errors import InvalidOperation

    kept = get_database()["orders"]  # e.g. a module-level variable, made before the run
    with Isolation("mongodb://127.0.0.1:9/"), pytest.raises(InvalidOperation, match="after close"):
        kept.find_one({})
