"""Transactions: a clear error before any write on a standalone; commit/abort on a replica set."""

from __future__ import annotations

import os

import pytest
from django.test import Client
from pymongo.topology_description import TOPOLOGY_TYPE

from django_mongopool.client.process import get_client
from django_mongopool.exceptions import TransactionsNotSupported
from django_mongopool.transactions import run_in_transaction

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db]


def _supports_transactions() -> bool:
    client = get_client()
    client.admin.command("ping")
    return client.topology_description.topology_type in {
        TOPOLOGY_TYPE.ReplicaSetWithPrimary,
        TOPOLOGY_TYPE.Sharded,
        TOPOLOGY_TYPE.LoadBalanced,
    }


def test_standalone_refuses_before_any_write(mongo):
    if _supports_transactions():
        pytest.skip("MONGOPOOL_TEST_URL is a replica set; covered by the commit test")
    calls = []
    with get_client().start_session() as session, pytest.raises(TransactionsNotSupported) as info:
        run_in_transaction(
            session, lambda s: calls.append(mongo["tx"].insert_one({"a": 1}, session=s))
        )
    assert calls == []
    assert mongo["tx"].count_documents({}) == 0
    assert "replica set" in str(info.value) and "No write was made" in str(info.value)


def test_transaction_view_on_standalone_writes_nothing(mongo):
    if _supports_transactions():
        pytest.skip("MONGOPOOL_TEST_URL is a replica set")
    client = Client(raise_request_exception=False)
    response = client.post("/t/transfer/")
    assert response.status_code == 500
    assert mongo["accounts"].count_documents({}) == 0


@pytest.mark.skipif(not os.environ.get("MONGOPOOL_TEST_URL"), reason="needs a replica set URL")
def test_commit_and_abort_on_a_replica_set(mongo):  # pragma: no cover - needs real MongoDB
    if not _supports_transactions():
        pytest.skip("MONGOPOOL_TEST_URL is not a replica set or mongos")
    mongo.create_collection("accounts")
    with get_client().start_session() as session:
        run_in_transaction(
            session, lambda s: mongo["accounts"].insert_many([{"n": 1}, {"n": 2}], session=s)
        )
    assert mongo["accounts"].count_documents({}) == 2

    class Abort(Exception):
        pass

    def fail(s):
        mongo["accounts"].insert_one({"n": 3}, session=s)
        raise Abort

    with get_client().start_session() as session, pytest.raises(Abort):
        run_in_transaction(session, fail)
    assert mongo["accounts"].count_documents({}) == 2
