"""Every bad setting gives ImproperlyConfigured naming the setting; passwords never leak."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_mongopool.conf import conf

SECRET = "s3cr3t-P@ss"
URI_WITH_PASSWORD = "mongodb://alice:s3cr3t-P%40ss@db.example.com:27017/app"


def load_config():
    """Validate every setting now, as AppConfig.ready() does."""
    conf.clear()
    conf.validate_all()
    return conf.client_config


def _error(settings, **values) -> str:
    for name, value in values.items():
        setattr(settings, name, value)
    with pytest.raises(ImproperlyConfigured) as info:
        load_config()
    message = str(info.value)
    assert SECRET not in message and "s3cr3t" not in message
    return message


def test_good_config_applies_bounded_defaults(settings):
    settings.MONGOPOOL_URI = URI_WITH_PASSWORD
    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    config = load_config()
    assert conf.database == "app"
    assert config.hosts == ("db.example.com:27017",)
    assert config.option("maxPoolSize") == 10
    assert config.option("waitQueueTimeoutMS") == 2000
    assert config.option("appname") == "django-mongopool"
    assert config.kwargs["maxPoolSize"] == 10
    assert "s3cr3t" not in repr(config)
    assert "s3cr3t" not in str(config.display_options())
    assert config.redacted_uri == "mongodb://alice:***@db.example.com:27017/app"


def test_settings_override_uri_options_and_defaults(settings):
    settings.MONGOPOOL_URI = "mongodb://h/?maxPoolSize=50&appName=fromuri"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxpoolsize": 7}
    config = load_config()
    assert config.option("maxPoolSize") == 7
    assert config.option("appname") == "fromuri"
    # Defaults that the URI sets are not passed as keyword arguments (they would win).
    assert "appname" not in config.kwargs
    assert config.kwargs["maxpoolsize"] == 7


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        (None, "MONGOPOOL_URI is not set"),
        ("", "MONGOPOOL_URI is not set"),
        (42, "MONGOPOOL_URI must be a string"),
        ("http://alice:s3cr3t-P%40ss@host/", "Invalid URI scheme"),
        ("mongodb://alice:s3cr3t-P%40ss@host:99999/", "Port must be an integer"),
        ("mongodb://alice:s3cr3t-P%40ss@", "MONGOPOOL_URI is not a valid"),
        ("mongodb://alice:s3cr3t-P@ss@host/", "MONGOPOOL_URI is not a valid"),
        ("mongodb+srv://alice:s3cr3t-P%40ss@a.example.com,b.example.com/", "only one"),
        ("mongodb://alice:s3cr3t-P%40ss@host/?maxPoolSize=abc", "MONGOPOOL_URI"),
    ],
)
def test_malformed_uri(settings, uri, needle):
    message = _error(settings, MONGOPOOL_URI=uri)
    assert "MONGOPOOL_URI" in message
    assert needle in message


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ("maxPoolSize=5", "MONGOPOOL_CLIENT_OPTIONS must be a dict"),
        ({1: 2}, "keys must be pymongo option names"),
        ({"maxPoolSzie": 5}, "unknown pymongo option 'maxPoolSzie'"),
        ({"connect": True}, "connect=False"),
        ({"host": "x"}, "put hosts and ports in MONGOPOOL_URI"),
        ({"maxPoolSize": 0}, "unbounded"),
        ({"maxPoolSize": None}, "maxPoolSize"),
        ({"maxPoolSize": -3}, "non negative integer"),
        ({"maxPoolSize": 10**9}, "from 1 to 10000"),
        ({"maxPoolSize": True}, "not a boolean"),
        ({"maxPoolSize": "ten"}, "must be a number, not the string"),
        ({"maxPoolSize": "10"}, "must be a number, not the string"),
        ({"minPoolSize": -1}, "minPoolSize"),
        ({"minPoolSize": 20, "maxPoolSize": 5}, "larger than maxPoolSize"),
        ({"waitQueueTimeoutMS": None}, "wait forever"),
        ({"waitQueueTimeoutMS": 0}, "waitQueueTimeoutMS"),
        ({"serverSelectionTimeoutMS": 0}, "serverSelectionTimeoutMS"),
        ({"connectTimeoutMS": 10**10}, "connectTimeoutMS"),
        ({"socketTimeoutMS": None}, "stalled server"),
        ({"timeoutMS": 10**10}, "timeoutMS"),
        ({"appname": 5}, "appname"),
        ({"password": 12345}, "password"),
        ({"maxConnecting": 0}, "maxConnecting"),
    ],
)
def test_bad_client_options(settings, options, needle):
    message = _error(settings, MONGOPOOL_URI=URI_WITH_PASSWORD, MONGOPOOL_CLIENT_OPTIONS=options)
    assert "MONGOPOOL_CLIENT_OPTIONS" in message or "MONGOPOOL_URI" in message
    assert needle in message


def test_unlimited_socket_timeout_is_fine_with_timeout_ms(settings):
    settings.MONGOPOOL_URI = "mongodb://h/"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"socketTimeoutMS": None, "timeoutMS": 5000}
    assert load_config().option("timeoutMS") == 5000


def test_bad_option_in_uri_names_the_uri(settings):
    message = _error(settings, MONGOPOOL_URI="mongodb://alice:s3cr3t-P%40ss@h/?maxPoolSize=0")
    assert "MONGOPOOL_URI option maxPoolSize" in message


def test_password_given_as_option_is_never_echoed(settings):
    settings.MONGOPOOL_URI = "mongodb://h/"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"username": "alice", "password": SECRET, "maxPoolSize": 0}
    message = _error(settings)
    assert "maxPoolSize" in message


@pytest.mark.parametrize("name", ["", "a/b", "has space", "x" * 64, 7, "dot.ted"])
def test_bad_database_name(settings, name):
    message = _error(settings, MONGOPOOL_URI="mongodb://h/", MONGOPOOL_DATABASE=name)
    assert "MONGOPOOL_DATABASE" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MONGOPOOL_RETRY_AFTER", 0),
        ("MONGOPOOL_RETRY_AFTER", "5"),
        ("MONGOPOOL_RETRY_AFTER", 1.5),
        ("MONGOPOOL_TRANSACTION_TIMEOUT", -1),
        ("MONGOPOOL_TRANSACTION_TIMEOUT", True),
        ("MONGOPOOL_TRANSACTION_TIMEOUT", 10**6),
        ("MONGOPOOL_COMMAND_METRICS", "yes"),
    ],
)
def test_bad_app_settings(settings, name, value):
    message = _error(settings, MONGOPOOL_URI="mongodb://h/", **{name: value})
    assert name in message


@pytest.mark.parametrize(
    ("uri", "hosts"),
    [
        ("mongodb://[::1]:27018,db2/app", ("[::1]:27018", "db2:27017")),
        ("mongodb://%2Ftmp%2Fmongodb-27017.sock/app", ("/tmp/mongodb-27017.sock",)),
    ],
)
def test_configured_hosts_are_named_as_the_page_names_servers(settings, uri, hosts):
    """IPv6 bracketed (W101's message and the page's ``hosts``), a Unix socket by its path."""
    settings.MONGOPOOL_URI = uri
    assert conf.client_config.hosts == hosts


def test_direct_connection_false_with_several_hosts_is_valid(settings):
    settings.MONGOPOOL_URI = "mongodb://a:1,b:2/?directConnection=false;replicaSet=rs0"
    config = load_config()
    assert config.hosts == ("a:1", "b:2")
    assert config.option("directConnection") == "false"


# --- URI options split as pymongo splits them; what is shown is what the client uses ---


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
    # pymongo's own warning, when the URI is first parsed: a setting_changed receiver (the
    # MongoEngine helper's, once connected) may parse it as the setting changes.
    with pytest.warns(UserWarning, match="Duplicate URI option"):
        settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop?maxPoolSize=3;MAXPOOLSIZE=4"
        assert get_config().option("maxPoolSize") == 4
        assert get_client().options.pool_options.max_pool_size == 4


def test_uri_options_after_a_semicolon_are_held_to_the_caps(settings):
    from django_mongopool.client.process import get_config

    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop?appname=x;maxPoolSize=0"
    with pytest.raises(ImproperlyConfigured, match="maxPoolSize"):
        get_config()


# --- a string where a number belongs is refused ---


@pytest.mark.parametrize("option", ["maxPoolSize", "waitQueueTimeoutMS", "socketTimeoutMS"])
def test_numbers_given_as_strings_are_refused(settings, option):
    from django_mongopool.client.process import get_config

    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {option: "10"}
    with pytest.raises(ImproperlyConfigured, match=rf"{option}.*must be a number"):
        get_config()
