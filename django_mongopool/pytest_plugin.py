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

Every test runs with ``MONGOPOOL_STRAY_CLIENTS = "raise"`` (ini option
``mongopool_stray_clients`` changes it). Helpers: ``django_mongopool.testing``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


@dataclass
class SecureMongoServer(MongoServer):
    """A TLS + SCRAM server: ``url`` carries the credentials, ``tls=true`` and ``tlsCAFile``."""

    username: str = ""
    password: str = ""
    ca_file: Path | None = None
    untrusted_ca_file: Path | None = None


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
