"""The project's own tests use its pytest plugin (django_mongopool.pytest_plugin).

Tests live beside the code they test (``tests/client/`` for ``django_mongopool/client/`` and so
on; ``tests/project/`` checks the project itself, and its tests are marked ``project``). A test
on the real server is marked ``server`` (and ``core`` when every leg of the test matrix runs
it: .ci/matrix.toml); a test that requests a server fixture without the marker is a
collection error.

``mongo_server`` and ``mongo`` are short names for the plugin's ``mongopool_server`` and
``mongopool_db``: the session starts its own FerretDB on a free loopback port unless
MONGOPOOL_TEST_URL names a real mongod/mongos; a server that cannot be started is an
error, never a skip.

A fixture used by more than one test package is defined here, once; one used by the tests of a
single package lives in that package's conftest.py (``tests/audit/``, ``tests/fleet/``,
``tests/guards/``).
"""

from __future__ import annotations

import socket
import uuid

import pytest
from django.test import Client
from mockupdb import Matcher, MockupDB
from pymongo.database import Database

from django_mongopool.client.process import get_client
from django_mongopool.testing.ferretdb import FerretDB
from tests.helpers import closed_port

pytest_plugins = ["pytester"]

# What the `recorded` server says to hello: a primary of a recent mongod.
HELLO = {"maxWireVersion": 21, "minWireVersion": 0, "isWritablePrimary": True}


@pytest.fixture(scope="session")
def mongo_server(mongopool_server):
    return mongopool_server


@pytest.fixture
def mongo(mongopool_db):
    return mongopool_db


# Requesting one of these puts a test on the real server: it must be marked `server`.
SERVER_FIXTURES = {
    "ferretdb",
    "mongo",
    "mongo_server",
    "mongopool_db",
    "mongopool_server",
    "mongopool_secure_server",
}


PROJECT = "tests/project/"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(PROJECT):
            item.add_marker(pytest.mark.project)
    unmarked = [
        item.nodeid
        for item in items
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("server") is None
        and item.nodeid.startswith("tests/")
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use the real server but are not marked `server`: " + ", ".join(unmarked)
        )


@pytest.fixture
def offline(settings):
    """A URI with credentials whose port nothing listens on: clients are built, nothing answers."""
    settings.MONGOPOOL_URI = f"mongodb://alice:hunter2-secret@127.0.0.1:{closed_port()}/shop"
    return settings


@pytest.fixture
def silent_server():
    """A loopback port whose kernel completes the TCP handshake; nothing is ever read or sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.fixture
def checking_client(request, settings):
    """The test builds a plain MongoClient of its own (to read what a server process wrote):
    its module may, without a stray-client warning. Request it with
    ``pytestmark = pytest.mark.usefixtures("checking_client")``."""
    settings.MONGOPOOL_ALLOWED_CLIENT_MODULES = [request.module.__name__]


@pytest.fixture
def ferretdb(tmp_path):
    """A FerretDB of the test's own (the session's server is shared): it may be stopped,
    restarted or wiped."""
    server = FerretDB(data_dir=tmp_path / "data").start()
    yield server
    server.cleanup()


@pytest.fixture
def developers_database(mongo_server, settings):
    """The database a developer's project is configured with, on this session's server, holding
    data of the developer's own: ``make(collection, document, leftover=None)`` creates one under a
    fresh name with ``document`` in ``collection`` (and ``leftover`` in the same collection of its
    ``test_`` database, as a crashed run leaves it). MONGOPOOL_URI is the server's own URL, which
    the plugin does not redirect; every database made is dropped after the test."""
    settings.MONGOPOOL_URI = mongo_server.url
    client = get_client()
    made: list[str] = []

    def make(collection: str, document: dict, leftover: dict | None = None) -> Database:
        database = client[f"dev_{uuid.uuid4().hex[:10]}"]
        made.extend([database.name, f"test_{database.name}"])
        database[collection].insert_one(dict(document))
        if leftover is not None:
            client[f"test_{database.name}"][collection].insert_one(dict(leftover))
        return database

    yield make
    for name in made:
        client.drop_database(name)


@pytest.fixture
def recorded(settings):
    """A mockupdb server answering like mongod, the app pointed at it; tests register the
    replies they need (anything else, such as endSessions, succeeds quietly)."""
    server = MockupDB(auto_ismaster=HELLO, verbose=False)
    server.run()
    server.append_responder(Matcher(), {"ok": 1})
    settings.MONGOPOOL_URI = (
        f"mongodb://127.0.0.1:{server.port}/shop?directConnection=true&appname=auditor"
    )
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 2000}
    settings.MONGOPOOL_PROCESSES = 8
    yield server
    settings.MONGOPOOL_URI = "mongodb://127.0.0.1:9/x"  # close the client before the server stops
    server.stop()


@pytest.fixture
def staff(db):
    """A superuser's test client; a view's exception is its 500 response, not raised."""
    from django.contrib.auth.models import User

    client = Client(raise_request_exception=False)
    client.force_login(User.objects.create_superuser("su", "su@example.com", "pw"))
    return client


@pytest.fixture
def fresh_503_log():
    """The 503 line is rate-limited per process: start each test with a line to spare."""
    from django_mongopool.request import unavailable

    unavailable.log_unavailable.last = float("-inf")
