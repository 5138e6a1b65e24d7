"""Views used only by the test suite."""

from __future__ import annotations

import tempfile
import uuid

from asgiref.sync import sync_to_async
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)

from django_mongopool import get_database
from django_mongopool.transactions import mongo_transaction


def _items():
    return get_database()["items"]


def insert_and_read(request: HttpRequest) -> JsonResponse:
    key = request.GET.get("key") or uuid.uuid4().hex
    session = request.mongo_session
    _items().insert_one({"key": key}, session=session)
    found = _items().find_one({"key": key}, session=session)
    return JsonResponse({"key": found["key"]})


def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


class Boom(Exception):
    pass


def raises(request: HttpRequest) -> HttpResponse:
    _items().find_one({}, session=request.mongo_session)
    raise Boom("view failed after using its session")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks():
        for n in range(5):
            _items().find_one({}, session=request.mongo_session)
            yield f"chunk {n}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def async_insert(request: HttpRequest) -> JsonResponse:
    session = request.mongo_session
    key = uuid.uuid4().hex

    def work() -> str:
        _items().insert_one({"key": key}, session=session)
        return _items().find_one({"key": key}, session=session)["key"]

    return JsonResponse({"key": await sync_to_async(work)()})


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks():
        for n in range(3):
            await sync_to_async(_items().find_one)({}, session=request.mongo_session)
            yield f"chunk {n}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


@mongo_transaction
def transfer(request: HttpRequest) -> JsonResponse:
    accounts = get_database()["accounts"]
    accounts.insert_one({"owner": "a", "balance": -10}, session=request.mongo_session)
    accounts.insert_one({"owner": "b", "balance": 10}, session=request.mongo_session)
    return JsonResponse({"ok": True})


def file_download(request: HttpRequest) -> FileResponse:
    count = _items().count_documents({}, session=request.mongo_session)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
    handle.write(b"x" * 100_000 + str(count).encode())
    handle.seek(0)
    return FileResponse(handle, filename="report.bin")


def client_per_request(request: HttpRequest) -> JsonResponse:
    """The anti-pattern the stray-client check exists for."""
    from django.conf import settings
    from pymongo import MongoClient

    client = MongoClient(settings.MONGOPOOL_URI, connect=False)  # STRAY-LINE
    try:
        return JsonResponse({"built": True})
    finally:
        client.close()


def leaks_a_session(request: HttpRequest) -> JsonResponse:
    from django_mongopool import get_client

    session = get_client().start_session()  # LEAK-LINE
    _items().find_one({}, session=session)
    return JsonResponse({"leaked": True})


def ends_its_session(request: HttpRequest) -> JsonResponse:
    from django_mongopool import get_client

    with get_client().start_session() as session:
        _items().find_one({}, session=session)
    _items().find_one({}, session=request.mongo_session)
    return JsonResponse({"leaked": False})


async def async_leaks_a_session(request: HttpRequest) -> JsonResponse:
    from django_mongopool import get_client

    def work() -> None:
        session = get_client().start_session()  # ASYNC-LEAK-LINE
        _items().find_one({}, session=session)

    await sync_to_async(work)()
    return JsonResponse({"leaked": True})


async def async_native(request: HttpRequest) -> JsonResponse:
    """Uses the async client of this event loop through request.amongo_session()."""
    from django_mongopool import get_async_database

    session = await request.amongo_session()
    assert session is await request.amongo_session()  # one per request
    items = get_async_database()["items"]
    key = uuid.uuid4().hex
    await items.insert_one({"key": key}, session=session)
    found = await items.find_one({"key": key}, session=session)
    return JsonResponse({"key": found["key"]})


async def async_native_stream(request: HttpRequest) -> StreamingHttpResponse:
    from django_mongopool import get_async_database

    async def chunks():
        session = await request.amongo_session()
        for n in range(3):
            await get_async_database()["items"].find_one({}, session=session)
            yield f"chunk {n}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def async_native_slow(request: HttpRequest) -> JsonResponse:
    import asyncio

    from django_mongopool import get_async_database

    session = await request.amongo_session()
    await get_async_database()["items"].find_one({}, session=session)  # the session is now in use
    await asyncio.sleep(30)  # cancelled by the test before this ends
    return JsonResponse({})
