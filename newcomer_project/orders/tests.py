"""The testing page's two tiers, a test that forgot its fixture, a direct view call and a 503."""

import os

from django.test import AsyncClient, Client, RequestFactory, override_settings

from django_mongopool import get_database
from django_mongopool.testing import mongo_request
from orders import views


def test_create_on_mongomock(mongopool_mock):  # the database get_database() returns, in memory
    assert Client().post("/orders/new/", {"item": "tea"}).status_code == 201
    assert mongopool_mock["orders"].count_documents({"item": "tea"}) == 1
    assert Client().get("/orders/").json() == {"orders": ["tea"]}


def test_create_on_a_server(mongopool_db):  # a database of its own on a real server
    assert Client().post("/orders/new/", {"item": "coffee"}).status_code == 201
    assert mongopool_db["orders"].count_documents({"item": "coffee"}) == 1


def test_forgot_the_fixture():
    """No fixture: the run's test database on the test server, never the configured one."""
    configured = os.environ["MONGODB_URL"].rsplit("/", 1)[1].split("?")[0]
    assert Client().post("/orders/new/", {"item": "from a test"}).status_code == 201
    assert get_database().name == f"test_{configured}"
    assert Client().get("/orders/").json() == {"orders": ["from a test"]}


async def test_async_view_on_mongomock(mongopool_mock):
    mongopool_mock["orders"].insert_one({"item": "cake"})
    response = await AsyncClient().get("/orders/count/")
    assert response.json() == {"count": 1}


def test_list_view_directly(mongopool_mock):
    mongopool_mock["orders"].insert_one({"user": None, "item": "anonymous"})
    response = views.order_list(mongo_request(RequestFactory().get("/")))
    assert response.status_code == 200  # request.user is AnonymousUser(): its pk is None


@override_settings(MONGOPOOL_URI="mongodb://127.0.0.1:9/shop")  # nothing listens on port 9
def test_orders_when_mongodb_is_down():
    response = Client().get("/orders/")
    assert response.status_code == 503
    assert response["Retry-After"]
