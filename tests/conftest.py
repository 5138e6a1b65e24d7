"""Fixtures for the real-server tier.

The session starts its own FerretDB (built by django_mongopool.testing.ferretdb)
on a free loopback port, unless MONGOPOOL_TEST_URL names a real mongod/mongos,
in which case every server test runs against that instead. A server that
cannot be started is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass

import pytest
from pymongo.errors import PyMongoError
from pymongo.uri_parser_shared import _validate_uri

from django_mongopool.client import get_client, get_database
from django_mongopool.testing.ferretdb import FerretDB


@dataclass
class Server:
    url: str
    ports: set[int]
    ferretdb: FerretDB | None = None

    @property
    def is_ferretdb(self) -> bool:
        return self.ferretdb is not None


@pytest.fixture(scope="session")
def mongo_server():
    url = os.environ.get("MONGOPOOL_TEST_URL")
    if url:
        nodes = _validate_uri(url)["nodelist"]
        yield Server(url=url, ports={port for _host, port in nodes})
        return
    server = FerretDB().start()
    try:
        yield Server(url=server.url, ports={server.port}, ferretdb=server)
    finally:
        server.cleanup()


@pytest.fixture
def mongo(mongo_server, settings):
    """The app's client pointed at the real server, with a database of its own per test.

    A test that changes another MONGOPOOL_* setting gets a rebuilt client: it
    should call get_database() again rather than keep using this object.
    """
    name = f"mp_{uuid.uuid4().hex[:12]}"
    settings.MONGOPOOL_URI = mongo_server.url
    settings.MONGOPOOL_DATABASE = name
    yield get_database()
    with contextlib.suppress(PyMongoError):
        get_client().drop_database(name)
