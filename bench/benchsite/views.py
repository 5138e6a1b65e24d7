"""The same work in every variant: one insert and one indexed find_one per request.

The lookup is by _id: FerretDB v1's SQLite backend uses only the _id index for filters.
"""

from __future__ import annotations

import threading
import uuid

from django.conf import settings
from django.http import HttpResponse
from pymongo import MongoClient

from django_mongopool import get_client, get_database


def _work(collection, session=None) -> HttpResponse:
    key = uuid.uuid4().hex
    collection.insert_one({"_id": key}, session=session)
    found = collection.find_one({"_id": key}, session=session)
    return HttpResponse("ok" if found else "missing", status=200 if found else 500)


# 1. A new client per request, closed at the end: the "too many connections" pattern.
def client_per_request(request):
    client = MongoClient(settings.BENCH_URL, appname="bench-client-per-request")
    try:
        return _work(client[settings.BENCH_DB]["items"])
    finally:
        client.close()


# 2. The usual hand-written fix: a module-level client, a session around each operation.
_MODULE_CLIENT = MongoClient(
    settings.BENCH_URL, maxPoolSize=settings.BENCH_POOL, appname="bench-module-level", connect=False
)


def module_level(request):
    collection = _MODULE_CLIENT[settings.BENCH_DB]["items"]
    key = uuid.uuid4().hex
    with _MODULE_CLIENT.start_session() as session:
        collection.insert_one({"_id": key}, session=session)
    with _MODULE_CLIENT.start_session() as session:
        found = collection.find_one({"_id": key}, session=session)
    return HttpResponse("ok" if found else "missing", status=200 if found else 500)


# 3. One client per thread, as Django database backends historically kept connections.
_local = threading.local()


def per_thread(request):
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = MongoClient(settings.BENCH_URL, appname="bench-per-thread")
    return _work(client[settings.BENCH_DB]["items"])


# 4. django-mongopool.
def mongopool(request):
    return _work(get_database()["items"], request.mongo_session)


# 5. MongoEngine.
def mongoengine(request):
    from benchsite.documents import Item

    key = uuid.uuid4().hex
    Item(pk=key).save(force_insert=True)
    found = Item.objects(pk=key).first()
    return HttpResponse("ok" if found else "missing", status=200 if found else 500)


# 6. Django's ORM on django-mongodb-backend: the stock engine's own client (orm_stock) or
# ENGINE "django_mongopool.backends.mongodb" on the app's client (orm_pooled).
def orm(request):
    from benchsite.models import OrmItem

    item = OrmItem.objects.create()
    found = OrmItem.objects.get(pk=item.pk)  # an _id lookup (ObjectId)
    return HttpResponse("ok" if found else "missing", status=200 if found else 500)


# 4b. django-mongopool under ASGI: this event loop's AsyncMongoClient.
async def mongopool_asgi(request):
    from django_mongopool import get_async_database

    session = await request.amongo_session()
    collection = get_async_database()["items"]
    key = uuid.uuid4().hex
    await collection.insert_one({"_id": key}, session=session)
    found = await collection.find_one({"_id": key}, session=session)
    return HttpResponse("ok" if found else "missing", status=200 if found else 500)


# Middleware overhead and saturation.
def noop(request):
    return HttpResponse("ok")


def touch_plain(request):
    with get_client().start_session() as session:
        return _work(get_database()["items"], session)


def touch_mw(request):
    return _work(get_database()["items"], request.mongo_session)


def slow(request):
    collection = get_database()["items"]
    collection.find_one({}, session=request.mongo_session, comment="slow")
    return HttpResponse("ok")


VARIANTS = {
    "client_per_request": client_per_request,
    "module_level": module_level,
    "per_thread": per_thread,
    "mongopool": mongopool,
    "mongopool_asgi": mongopool_asgi,
    "mongoengine": mongoengine,
    "orm_stock": orm,
    "orm_pooled": orm,
}
