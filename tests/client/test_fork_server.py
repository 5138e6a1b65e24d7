"""A worker forked after the client exists gets its own client; the parent's keeps working."""

from __future__ import annotations

import os
import warnings

import pytest

from django_mongopool.client import pools
from django_mongopool.client.process import get_client
from tests.helpers import bound_child, wait_child

pytestmark = pytest.mark.server


def _child(parent_client, collection) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = get_client()
        if client is parent_client:
            return 3
        client.admin.command("ping")
        collection_in_child = client[collection.database.name][collection.name]
        collection_in_child.insert_one({"pid": os.getpid()})
        if pools.snapshot().sessions_started != 0:
            return 4
        if any("fork" in str(w.message) for w in caught):
            return 5
        client.close()
    return 0


def test_forked_child_builds_its_own_client(mongo):
    parent = get_client()
    parent.admin.command("ping")  # the parent's pool and monitors are live before the fork
    collection = mongo["forked"]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            bound_child()
            code = _child(parent, collection)
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    assert get_client() is parent
    parent.admin.command("ping")
    assert collection.count_documents({"pid": pid}) == 1
