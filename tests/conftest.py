"""The project's own tests use its pytest plugin (django_mongopool.pytest_plugin).

``mongo_server`` and ``mongo`` are short names for the plugin's ``mongopool_server`` and
``mongopool_db``: the session starts its own FerretDB on a free loopback port unless
MONGOPOOL_TEST_URL names a real mongod/mongos; a server that cannot be started is an
error, never a skip.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def mongo_server(mongopool_server):
    return mongopool_server


@pytest.fixture
def mongo(mongopool_db):
    return mongopool_db
