"""Stray clients: any MongoClient built outside the app is reported at its caller's line."""

from __future__ import annotations

import inspect
import warnings

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from pymongo import AsyncMongoClient, MongoClient

from django_mongopool import get_client
from django_mongopool.exceptions import StrayClientError, StrayClientWarning
from django_mongopool.guards import stray
from tests import views

URI = "mongodb://127.0.0.1:9/x"


@pytest.fixture(autouse=True)
def _warn_mode(settings):
    """The plugin runs tests in "raise"; these tests start from the production default."""
    settings.MONGOPOOL_STRAY_CLIENTS = "warn"


def _line(marker: str, module=views) -> int:
    """The 1-based line of ``module`` that carries ``marker``."""
    source = inspect.getsource(module).splitlines()
    return next(n for n, line in enumerate(source, start=1) if marker in line)


def test_client_per_request_in_a_view_is_reported_at_the_view_line():
    with pytest.warns(StrayClientWarning) as caught:
        assert Client().get("/t/stray/").status_code == 200
    (warning,) = caught
    assert warning.filename == views.__file__
    assert warning.lineno == _line("# STRAY-LINE")
    assert f"views.py:{warning.lineno}" in str(warning.message)


def test_raise_mode_refuses_the_client_before_it_exists(settings):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    with pytest.raises(StrayClientError, match=rf"views.py:{_line('# STRAY-LINE')}"):
        Client().get("/t/stray/")


def test_a_client_built_in_a_loop_is_reported_once():
    with pytest.warns(StrayClientWarning) as caught:
        for _ in range(3):
            MongoClient(URI, connect=False).close()  # LOOP-LINE
    assert len(caught) == 1
    assert {w.lineno for w in caught} == {_line("# LOOP-LINE", inspect.getmodule(_line))}


def test_subclasses_are_reported_at_the_user_line():
    class MyClient(MongoClient):
        def __init__(self):
            super().__init__(URI, connect=False)

    with pytest.warns(StrayClientWarning) as caught:
        MyClient().close()  # SUBCLASS-LINE
    assert caught[0].lineno == _line("# SUBCLASS-LINE", inspect.getmodule(_line))


async def test_async_client_is_reported():
    with pytest.warns(StrayClientWarning, match="AsyncMongoClient"):
        client = AsyncMongoClient(URI, connect=False)
    await client.close()


def test_allow_listed_module_may_build_its_own(settings):
    settings.MONGOPOOL_ALLOWED_CLIENT_MODULES = ["tests"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MongoClient(URI, connect=False).close()
        assert Client().get("/t/stray/").status_code == 200


def test_the_apps_own_client_is_never_reported(settings):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    settings.MONGOPOOL_URI = URI
    assert get_client() is not None


def test_off_removes_the_wrapper_from_pymongo(settings):
    assert stray.installed()
    settings.MONGOPOOL_STRAY_CLIENTS = "off"
    assert not stray.installed()
    assert not hasattr(MongoClient.__init__, "__wrapped__")
    assert not hasattr(AsyncMongoClient.__init__, "__wrapped__")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MongoClient(URI, connect=False).close()
    settings.MONGOPOOL_STRAY_CLIENTS = "warn"
    assert stray.installed()
    assert hasattr(MongoClient.__init__, "__wrapped__")


def test_bad_mode_is_a_clear_error(settings):
    with pytest.raises(
        ImproperlyConfigured, match="MONGOPOOL_STRAY_CLIENTS must be 'off', 'warn' or 'raise'"
    ):
        settings.MONGOPOOL_STRAY_CLIENTS = "loud"
    settings.MONGOPOOL_STRAY_CLIENTS = "warn"


# --- a stray client is reported once per source location (every time in "raise") ---


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


def test_a_user_subclass_of_the_apps_client_class_is_still_reported():
    """The package's marker exempts the package's own classes, not a subclass built by hand."""
    from django_mongopool.client.process import PooledMongoClient

    class Copied(MongoClient):
        mongopool_own_client = True  # copying the marker does not exempt a class

    class Own(PooledMongoClient):
        pass

    assert PooledMongoClient.mongopool_own_client is True
    assert not stray._own(Copied) and not stray._own(Own)
    assert stray._own(PooledMongoClient)
    with pytest.warns(StrayClientWarning):
        Copied(URI, connect=False).close()
