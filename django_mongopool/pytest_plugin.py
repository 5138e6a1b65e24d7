"""pytest plugin for projects that use django-mongopool (registered through the pytest11 entry point).

Fixtures:
- ``mongopool_server`` (session): a real server. ``MONGOPOOL_TEST_URL`` names a running
  mongod/mongos; otherwise FerretDB is built (once, needs Go) and started on a free loopback port.
  A server that cannot be started is an error, never a skip.
- ``mongopool_db``: the app's client pointed at that server with a database of its own, dropped
  after the test. Needs pytest-django.

Every test runs with ``MONGOPOOL_STRAY_CLIENTS = "raise"`` (ini option
``mongopool_stray_clients`` changes it). Helpers: ``django_mongopool.testing``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class MongoServer:
    url: str
    ports: set[int] = field(default_factory=set)
    ferretdb: Any = None

    @property
    def is_ferretdb(self) -> bool:
        return self.ferretdb is not None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "mongopool_stray_clients",
        "MONGOPOOL_STRAY_CLIENTS while tests run: raise (default), warn or off",
        default="raise",
    )


@pytest.fixture(scope="session")
def mongopool_server() -> Iterator[MongoServer]:
    from pymongo.uri_parser_shared import _validate_uri

    url = os.environ.get("MONGOPOOL_TEST_URL")
    if url:
        nodes = _validate_uri(url)["nodelist"]
        yield MongoServer(url=url, ports={port for _host, port in nodes})
        return
    from django_mongopool.testing.ferretdb import FerretDB

    server = FerretDB().start()
    try:
        yield MongoServer(url=server.url, ports={server.port}, ferretdb=server)
    finally:
        server.cleanup()


@pytest.fixture
def mongopool_db(mongopool_server: MongoServer, settings: Any) -> Iterator[Any]:
    """A database of the app's client on the real server, isolated per test.

    A test that changes another MONGOPOOL_* setting gets a rebuilt client: it
    should call get_database() again rather than keep using this object.
    """
    from pymongo.errors import PyMongoError

    from django_mongopool.client import get_client, get_database

    name = f"test_{uuid.uuid4().hex[:12]}"
    settings.MONGOPOOL_URI = mongopool_server.url
    settings.MONGOPOOL_DATABASE = name
    yield get_database()
    with contextlib.suppress(PyMongoError):
        get_client().drop_database(name)


@pytest.fixture(autouse=True)
def _mongopool_stray_clients(request: pytest.FixtureRequest) -> Iterator[None]:
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency
        yield
        return
    if not settings.configured:
        yield
        return
    from django.test.utils import override_settings

    with override_settings(
        MONGOPOOL_STRAY_CLIENTS=request.config.getini("mongopool_stray_clients")
    ):
        yield
