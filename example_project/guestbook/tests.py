"""The guestbook's tests, on both of django-mongopool's test tiers.

Mock tier (fixture ``mongopool_mock``): an in-memory mongomock client behind
``get_database()`` and ``request.mongo_session``, fresh for each test. No server, milliseconds
per test: use it for view logic (forms, redirects, 404s, JSON shapes).

Real tier (fixture ``mongopool_db``): the app's own pooled client on a real server (FerretDB,
built and started once per session by the plugin, or the server ``MONGOPOOL_TEST_URL`` names),
with a database of its own per test. Use it for what mongomock cannot show: the pool, sessions
on the wire, the async client against a server.

The views are called exactly as in production: through Django's test client and the middleware,
or directly with ``mongo_request()`` for a ``RequestFactory`` request.
"""

from __future__ import annotations

import json

import pytest
from bson import ObjectId
from django.http import Http404
from django.test import AsyncClient, Client, RequestFactory
from django.urls import reverse

from django_mongopool.testing import (
    assert_max_connections,
    assert_no_leaked_sessions,
    count_sessions,
    end_mongo_request,
    mongo_request,
)
from guestbook import tasks, views


def _sign(client: Client, entry_id: str, name: str = "Ada", message: str = "Hello") -> int:
    response = client.post(
        reverse("guestbook:api-sign"),
        json.dumps({"id": entry_id, "name": name, "message": message}),
        content_type="application/json",
    )
    return response.status_code


# --- Mock tier: no server ---------------------------------------------------------------------


def test_form_post_redirects_to_the_new_entry(mongopool_mock):
    client = Client()
    response = client.post(reverse("guestbook:list"), {"name": "Ada", "message": "First!"})
    assert response.status_code == 302
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    assert b"First!" in detail.content
    assert mongopool_mock["entries"].count_documents({"name": "Ada"}) == 1


def test_list_shows_the_count_and_the_newest_first(mongopool_mock):
    client = Client()
    for n in range(3):
        assert _sign(client, f"e{n}", message=f"message {n}") == 201
    response = client.get(reverse("guestbook:list"))
    assert response.context["count"] == 3
    assert [e["message"] for e in response.context["entries"]][0] == "message 2"


def test_invalid_entries_are_refused(mongopool_mock):
    client = Client()
    response = client.post(reverse("guestbook:list"), {"name": "", "message": "x"})
    assert response.status_code == 200 and response.context["form"].errors
    bad_json = client.post(reverse("guestbook:api-sign"), "{", content_type="application/json")
    assert bad_json.status_code == 400
    assert mongopool_mock["entries"].count_documents({}) == 0


def test_unknown_entry_is_404(mongopool_mock):
    client = Client()
    missing = reverse("guestbook:detail", args=[str(ObjectId())])
    assert client.get(missing).status_code == 404
    assert client.get(reverse("guestbook:detail", args=["not-an-id"])).status_code == 404


def test_csv_export_streams_every_entry(mongopool_mock):
    client = Client()
    _sign(client, "a", name="Ada")
    _sign(client, "b", name="Bob")
    response = client.get(reverse("guestbook:export"))
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0] == "id,name,message,created_at"
    assert [line.split(",")[1] for line in body.splitlines()[1:]] == ["Ada", "Bob"]


async def test_async_views(mongopool_mock):
    client = AsyncClient()
    response = await client.post(
        reverse("guestbook:api-async-sign"),
        {"id": "async-1", "name": "Ada", "message": "from the async client"},
        "application/json",
    )
    assert response.status_code == 201
    listed = await client.get(reverse("guestbook:api-entries"))
    assert [e["id"] for e in listed.json()["entries"]] == ["async-1"]
    stream = await client.get(reverse("guestbook:api-entries-stream"))
    lines = [json.loads(chunk) async for chunk in stream.streaming_content]
    assert lines == [{"id": "async-1", "name": "Ada"}]


def test_a_view_called_directly(mongopool_mock):
    mongopool_mock["entries"].insert_one({"_id": ObjectId(), "name": "Ada", "message": "hi"})
    request = mongo_request(RequestFactory().get("/"))
    response = views.entry_list(request)
    assert response.status_code == 200
    assert b"hi" in response.content
    end_mongo_request(request)
    assert request.mongo_session.has_ended
    with pytest.raises(Http404):
        views.entry_detail(mongo_request(RequestFactory().get("/")), str(ObjectId()))


@pytest.fixture
def task_hooks():
    """This suite runs with tests.settings, which loads no Celery app before Django starts (the
    example's own settings do, through example_project/__init__.py): install the hooks here."""
    from django_mongopool.tasks import celery, django_tasks

    celery.install()
    django_tasks.install()


def test_the_background_task_signs_once(mongopool_mock, task_hooks):
    assert tasks.celery_sign_later.apply(args=["t1", "Ada", "later"]).get() is True
    assert tasks.celery_sign_later.apply(args=["t1", "Ada", "again"]).get() is False  # redelivered
    assert tasks.sign_later.enqueue("t2", "Bob", "later").return_value is True  # Django's tasks
    entries = {e["_id"]: e["message"] for e in mongopool_mock["entries"].find()}
    assert entries == {"t1": "later", "t2": "later"}


# --- Real tier: a real server -------------------------------------------------------------------


def test_the_background_task_ends_its_session_on_the_server(mongopool_db, task_hooks):
    with count_sessions() as sessions, assert_no_leaked_sessions():
        assert tasks.celery_sign_later.apply(args=["t1", "Ada", "later"]).get() is True
        assert tasks.sign_later.enqueue("t2", "Bob", "later").return_value is True
    assert sessions.started == sessions.ended == 2
    assert mongopool_db["entries"].count_documents({}) == 2


def test_sign_and_read_back_on_the_server(mongopool_db):
    client = Client()
    with assert_no_leaked_sessions():
        assert _sign(client, "real-1", message="on the server") == 201
        response = client.get(reverse("guestbook:list"))
    assert response.context["count"] == 1
    assert mongopool_db["entries"].find_one({"_id": "real-1"})["message"] == "on the server"


def test_duplicate_id_is_refused_by_the_server(mongopool_db):
    from pymongo.errors import DuplicateKeyError

    client = Client()
    assert _sign(client, "same") == 201
    with pytest.raises(DuplicateKeyError):
        _sign(client, "same")


def test_requests_share_a_small_pool(mongopool_db):
    client = Client()
    with assert_max_connections(2):
        for n in range(10):
            assert _sign(client, f"pool-{n}") == 201
        assert client.get(reverse("guestbook:list")).context["count"] == 10


async def test_async_client_against_the_server(mongopool_db):
    client = AsyncClient()
    response = await client.post(
        reverse("guestbook:api-async-sign"),
        {"id": "async-real", "name": "Ada", "message": "hi"},
        "application/json",
    )
    assert response.status_code == 201
    stream = await client.get(reverse("guestbook:api-entries-stream"))
    lines = [json.loads(chunk) async for chunk in stream.streaming_content]
    assert lines == [{"id": "async-real", "name": "Ada"}]
