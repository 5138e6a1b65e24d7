"""The process-wide client: built once with connect=False, rebuilt on settings changes."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from pymongo.client_session import ClientSession

from django_mongopool import get_client, get_database
from django_mongopool.client import pools
from django_mongopool.client.figures import CommandCounter
from django_mongopool.client.process import get_config, reset_client
from django_mongopool.client.scope import RequestScope
from tests.helpers import closed_port


def test_one_client_per_process(offline):
    assert get_client() is get_client()


def test_client_does_no_network_io_at_build(offline):
    client = get_client()
    # connect=False: no topology was opened, no connection attempted.
    assert client._opened is False
    assert pools.snapshot().servers == ()


def test_no_pool_listener_only_the_counting_pool_class(offline):
    from pymongo import monitoring
    from pymongo.synchronous.pool import Pool

    client = get_client()
    listeners = client.options.event_listeners
    # No pool listener: pymongo would build an event object for every check-out and check-in.
    assert not any(isinstance(x, monitoring.ConnectionPoolListener) for x in listeners)
    make_pool = client._topology_settings.pool_class  # pymongo only calls it
    options = client._topology_settings.pool_options
    pool, monitor_pool = make_pool(("h", 1), options), make_pool(("h", 1), options, is_sdam=True)
    try:
        assert isinstance(pool, Pool) and type(pool).__name__ == "CountingPool"
        assert type(monitor_pool) is Pool  # monitors keep pymongo's own pool
    finally:
        pool.close()
        monitor_pool.close()
    assert not any(isinstance(x, CommandCounter) for x in listeners)  # opt-in
    offline.MONGOPOOL_COMMAND_METRICS = True
    assert any(isinstance(x, CommandCounter) for x in get_client().options.event_listeners)


def test_the_clients_keep_pythons_compact_attribute_storage(offline):
    """CPython stores an instance's attributes compactly only up to 30 of them (pymongo's client
    has 23); beyond that, every attribute read pymongo makes on the client is a dict lookup."""
    import asyncio

    from django_mongopool.client.event_loops import PooledAsyncMongoClient
    from django_mongopool.client.figures import PoolMetrics, ProcessCounters

    assert len(vars(get_client())) <= 30

    async def build() -> int:
        client = PooledAsyncMongoClient(get_config(), PoolMetrics("loop"), ProcessCounters())
        try:
            return len(vars(client))
        finally:
            await client.close()

    assert asyncio.run(build()) <= 30


def test_user_listeners_are_kept(offline):
    from pymongo import monitoring

    class Mine(monitoring.CommandListener):
        def started(self, event): ...
        def succeeded(self, event): ...
        def failed(self, event): ...

    mine = Mine()
    offline.MONGOPOOL_CLIENT_OPTIONS = {"event_listeners": [mine]}
    assert mine in get_client().options.event_listeners


def test_settings_change_rebuilds_the_client(offline):
    first = get_client()
    offline.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 3}
    second = get_client()
    assert second is not first
    assert first._closed
    assert second.options.pool_options.max_pool_size == 3


def test_pool_options_reach_pymongo(offline):
    offline.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 4, "waitQueueTimeoutMS": 1500}
    pool = get_client().options.pool_options
    assert pool.max_pool_size == 4
    assert pool.wait_queue_timeout == 1.5
    assert pool.metadata["application"]["name"] == "django-mongopool"


def test_get_database_uses_the_uri_path_or_setting(offline):
    assert get_database().name == "shop"
    offline.MONGOPOOL_DATABASE = "other"
    assert get_database().name == "other"
    assert get_database("explicit").name == "explicit"


def test_get_database_without_any_name_says_how_to_fix(settings):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{closed_port()}/"
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_DATABASE"):
        get_database()


def test_reprs_never_show_the_password(offline):
    client = get_client()
    for text in (repr(client), str(client), repr(get_config()), repr(get_database())):
        assert "hunter2" not in text
    assert "alice:***@" in repr(client)


def test_missing_uri_raises_on_use(settings):
    from django.core.signals import setting_changed

    del settings.MONGOPOOL_URI
    # pytest-django deletes a setting without sending setting_changed (Django's own
    # override_settings sends it): send it, as a deployment's settings change would.
    setting_changed.send(sender=None, setting="MONGOPOOL_URI", value=None, enter=True)
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_URI is not set"):
        get_client()


def test_reset_closes_and_next_use_rebuilds(offline):
    first = get_client()
    reset_client()
    assert first._closed
    assert get_client() is not first


def test_a_session_that_never_ran_a_command_counts_nothing(offline):
    session = get_client().start_session()
    assert isinstance(session, ClientSession)
    session.end_session()
    session.end_session()
    snapshot = pools.snapshot()
    assert (snapshot.sessions_started, snapshot.sessions_ended) == (0, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MONGOPOOL_PROCESSES", 7),
        ("MONGOPOOL_HEARTBEAT_SECONDS", 5),
        ("MONGOPOOL_METRICS_TOKEN", "a-metrics-token-of-16+"),
        ("MONGOPOOL_STRAY_CLIENTS", "off"),
        ("MONGOPOOL_RETRY_AFTER", 9),
        ("MONGOPOOL_DATABASE", "other"),
        ("MONGOPOOL_READINESS_TIMEOUT", 0.5),
    ],
)
def test_an_app_only_setting_change_keeps_the_same_client(offline, name, value):
    from django_mongopool.conf import CLIENT_SETTINGS

    assert name not in CLIENT_SETTINGS
    client = get_client()
    setattr(offline, name, value)
    assert get_client() is client and not client._mongopool_closed


@pytest.mark.parametrize("name", ["MONGOPOOL_CLIENT_OPTIONS", "MONGOPOOL_FLEET_BUDGET"])
def test_a_client_setting_change_builds_a_new_client(offline, name):
    client = get_client()
    setattr(offline, name, {"maxPoolSize": 3} if name == "MONGOPOOL_CLIENT_OPTIONS" else 60)
    assert get_client() is not client


# --- a settings change retires the client; it closes after its last request ---


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_retired_client_serves_its_request_then_closes(offline):
    from django_mongopool.client import process
    from django_mongopool.client.scope import RequestScope, current

    scope = RequestScope()  # what the middleware sets for a request
    token = current.set(scope)
    try:
        old = process.get_client()  # the request's first need holds and pins the client
        assert scope.held is old
        process.reset_client()
        assert process.get_client() is old  # the running request keeps its client
    finally:
        current.reset(token)
    assert process.get_client() is not old  # new work gets the new one
    assert not old._closed
    scope.held.release()  # the request ends
    assert _wait_for(lambda: old._closed)


def test_a_retired_client_closes_after_the_grace_period(offline):
    from django_mongopool.client import process

    old = process.hold_for(RequestScope())  # a request that never ends
    process.reset_client(grace=0.2)
    assert not old._closed
    assert _wait_for(lambda: old._closed)
    old.release()  # late: nothing happens twice


def test_exit_closes_retired_clients_too(offline):
    from django_mongopool.client import process

    old = process.hold_for(RequestScope())  # a request still running
    process.reset_client()
    current = process.get_client()
    process.close_clients()
    assert old._closed and current._closed
    old.release()


def test_a_hold_taken_after_the_request_ended_is_given_back(offline):
    from django_mongopool.client import process
    from django_mongopool.client.scope import RequestScope

    scope = RequestScope()
    scope.ended = True
    held = process.hold_for(scope)
    assert scope.held is None and held.requests_in_flight() == 0
