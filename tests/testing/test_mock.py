"""The mongomock tier: no server, one in-memory client per test."""

from __future__ import annotations

import pytest
from django.http import HttpResponse, JsonResponse
from django.test import AsyncClient, Client, RequestFactory
from pymongo.errors import OperationFailure

from django_mongopool import get_async_database, get_client, get_database
from django_mongopool.client.process import PooledMongoClient, active_test_clients
from django_mongopool.exceptions import MockTransactionsNotSupported, TransactionsNotSupported
from django_mongopool.fleet import heartbeat
from django_mongopool.request.middleware import MongoSessionMiddleware
from django_mongopool.testing import (
    assert_no_leaked_sessions,
    end_mongo_request,
    mongo_request,
)
from django_mongopool.testing.mock import (
    AsyncMockClient,
    AsyncMockSession,
    MockClient,
    MockSession,
    mock_clients,
)
from django_mongopool.transactions import mongo_transaction
from tests import views


def test_views_written_like_the_readme_run_unchanged(mongopool_mock):
    response = Client().get("/t/insert/?key=abc")
    assert response.status_code == 200
    assert response.json() == {"key": "abc"}
    assert mongopool_mock["items"].count_documents({"key": "abc"}) == 1


def test_one_client_for_the_whole_test(mongopool_mock):
    client = get_client()
    assert isinstance(client, MockClient)
    assert get_client() is client is mongopool_mock.client
    get_database()["things"].insert_one({"n": 1})
    Client().get("/t/insert/?key=k1")
    assert get_database()["things"].count_documents({}) == 1  # data persists within a test
    assert get_database()["items"].find_one({"key": "k1"}, {"_id": 0}) == {"key": "k1"}


def test_each_block_gets_fresh_data_and_the_real_client_comes_back():
    with mock_clients():
        get_database()["things"].insert_one({"n": 1})
        assert get_database()["things"].count_documents({}) == 1
    with mock_clients():
        assert get_database()["things"].count_documents({}) == 0
    assert active_test_clients() is None
    assert isinstance(get_client(), PooledMongoClient)


def test_session_is_accepted_and_ignored_everywhere(mongopool_mock):
    from django.test import RequestFactory

    from django_mongopool.testing import mongo_request

    session = mongo_request(RequestFactory().get("/")).mongo_session  # the middleware's path
    assert isinstance(session, MockSession)
    things = get_database()["things"]
    things.insert_many([{"n": 1}, {"n": 2}], session=session)
    things.update_one({"n": 1}, {"$set": {"x": True}}, session=session)
    things.replace_one({"n": 2}, {"n": 2, "y": True}, session=session)
    assert things.find_one_and_update({"n": 1}, {"$inc": {"n": 10}}, session=session)["n"] == 1
    assert list(things.aggregate([{"$count": "c"}], session=session)) == [{"c": 2}]
    assert sorted(things.distinct("n", session=session)) == [2, 11]
    things.create_index("n", session=session)
    assert things.estimated_document_count() == 2
    things.delete_one({"n": 11}, session=session)
    assert things.count_documents({}, session=session) == 1
    assert things.database.list_collection_names(session=session) == ["things"]
    assert things.database.client is get_client()
    assert get_database().things.find_one({}, {"_id": 0}, session=session) == {"n": 2, "y": True}
    session.end_session()
    assert session.has_ended


def test_the_middleware_gives_a_mock_session_and_ends_it(mongopool_mock):
    seen = []

    def view(request):
        seen.append(request.mongo_session)
        get_database()["items"].insert_one({"a": 1}, session=request.mongo_session)
        return HttpResponse("ok")

    response = MongoSessionMiddleware(view)(RequestFactory().get("/"))
    assert response.status_code == 200
    assert isinstance(seen[0], MockSession) and seen[0].has_ended


def test_mock_session_is_a_context_manager():
    with mock_clients() as client, client.start_session() as session:
        assert not session.has_ended and not session.in_transaction
    assert session.has_ended


def test_transactions_say_mock_mode_has_none(mongopool_mock):
    session = get_client().start_session()
    with pytest.raises(MockTransactionsNotSupported, match="mongopool_db"):
        session.start_transaction()
    with pytest.raises(TransactionsNotSupported, match="not available in mock mode"):
        session.with_transaction(lambda s: None)
    session.end_session()

    @mongo_transaction
    def transfer(request):
        raise AssertionError("never runs")

    with pytest.raises(MockTransactionsNotSupported, match="MONGOPOOL_TEST_URL"):
        Client().get("/t/transfer/")
    with pytest.raises(MockTransactionsNotSupported):
        transfer(mongo_request(RequestFactory().post("/")))


def test_commands_mongomock_lacks_fail_like_a_server_without_them(mongopool_mock):
    assert get_client().admin.command("ping") == {"ok": 1.0}
    with pytest.raises(OperationFailure, match="serverStatus"):
        get_client().admin.command("serverStatus")
    with pytest.raises(OperationFailure):
        get_client().admin.aggregate([{"$currentOp": {}}])


def test_no_heartbeat_thread_starts(mongopool_mock, settings, monkeypatch):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    monkeypatch.setattr(heartbeat, "running_here", False)

    def refuse():
        raise AssertionError("heartbeat thread started in mock mode")

    monkeypatch.setattr(heartbeat, "ensure_started", refuse)
    from django_mongopool.client.process import built_client

    real_before = built_client()
    assert Client().get("/t/insert/").status_code == 200
    heartbeat.on_request_started()
    assert built_client() is real_before  # no real client was built either


async def test_async_views_and_client_share_the_data(mongopool_mock):
    response = await AsyncClient().post(
        "/api/async-sign/", {"id": "a1", "name": "Ann", "message": "hi"}, "application/json"
    )
    assert response.status_code == 201, response.content
    entries = get_async_database()["entries"]
    assert isinstance(entries.database.client, AsyncMockClient)
    assert await entries.count_documents({}) == 1
    assert [e["name"] async for e in entries.find({}).sort("_id", 1)] == ["Ann"]
    assert await entries.find({}, {"_id": 1}).to_list() == [{"_id": "a1"}]
    assert mongopool_mock["entries"].find_one({"_id": "a1"})["message"] == "hi"


async def test_async_native_view(mongopool_mock):
    response = await AsyncClient().get("/t/async-native/")
    assert response.status_code == 200, response.content


def test_mongo_request_gives_a_request_factory_request_its_sessions(mongopool_mock):
    request = mongo_request(RequestFactory().get("/", {"key": "rf"}))
    response = views.insert_and_read(request)
    assert isinstance(response, JsonResponse) and response.status_code == 200
    session = request.mongo_session
    assert isinstance(session, MockSession) and not session.has_ended
    end_mongo_request(request)
    assert session.has_ended
    end_mongo_request(request)  # twice is harmless


async def test_mongo_request_amongo_session(mongopool_mock):
    request = mongo_request(RequestFactory().get("/"))
    session = await request.amongo_session()
    assert isinstance(session, AsyncMockSession)
    await get_async_database()["things"].insert_one({"a": 1}, session=session)
    assert mongopool_mock["things"].count_documents({}) == 1


def test_unended_session_is_caught_in_mock_mode(mongopool_mock):
    with pytest.raises(AssertionError, match="were not ended"), assert_no_leaked_sessions():
        session = get_client().start_session()
    session.end_session()
    with assert_no_leaked_sessions():
        Client().get("/t/insert/")


def test_audit_report_says_mock(mongopool_mock):
    from django_mongopool.audit.report import build_report

    report = build_report(timeout=1)
    assert report["config"]["mode"] == "mock"
    assert report["topology"] == {"type": "Mock (mongomock)", "servers": []}


def test_audit_report_says_real_without_the_mock():
    from django_mongopool.audit.report import build_report

    assert build_report(timeout=0.05, include_fleet=False)["config"]["mode"] == "real"


@pytest.mark.django_db
def test_pool_page_json_shows_mock(mongopool_mock, admin_client):
    response = admin_client.get("/admin/django_mongopool/poolhealth/?format=json")
    assert response.status_code == 200
    assert response.json()["config"]["mode"] == "mock"
    page = admin_client.get("/admin/django_mongopool/poolhealth/").content.decode()
    assert "Mock (mongomock)" in page
