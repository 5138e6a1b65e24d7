"""Views and URLs that fail, leak or meet an outage: the tests of error reports, leaks, 503s and the probe."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import include, path
from pymongo.errors import ServerSelectionTimeoutError


def boom(request: HttpRequest) -> HttpResponse:
    uri = settings.MONGOPOOL_URI  # a local variable the DEBUG page lists
    raise RuntimeError(f"view failed (uri length {len(uri)})")


def unavailable(request: HttpRequest) -> HttpResponse:
    raise ServerSelectionTimeoutError("127.0.0.1:9: [Errno 111] Connection refused")


def orm_wrapped(request: HttpRequest) -> HttpResponse:
    """What django-mongodb-backend does: a DatabaseError raised from pymongo's error."""
    try:
        raise ServerSelectionTimeoutError("127.0.0.1:9: timed out, Timeout: 1.5s")
    except ServerSelectionTimeoutError as exc:
        raise DatabaseError("the database backend failed") from exc


def _start_and_forget() -> None:
    from django_mongopool import get_client

    get_client().start_session()  # THREAD-LEAK-LINE


def _start_and_end() -> None:
    from django_mongopool import get_client

    with get_client().start_session():
        pass


def thread_leak(request: HttpRequest) -> HttpResponse:
    """A plain thread: it does not inherit the request's context."""
    worker = threading.Thread(target=_start_and_forget)
    worker.start()
    worker.join()
    return HttpResponse("ok")


def thread_with_context(request: HttpRequest) -> HttpResponse:
    """The documented hand-over: the thread runs in a copy of the request's context."""
    work = _start_and_end if request.GET.get("end") else _start_and_forget
    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,))
    worker.start()
    worker.join()
    return HttpResponse("ok")


def query(request: HttpRequest) -> HttpResponse:
    from django_mongopool import get_database

    get_database()["items"].find_one({}, session=request.mongo_session)
    return HttpResponse("ok")


def stream_leak(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[str]:
        yield "first\n"
        _start_and_forget()  # while the response is being sent
        yield "second\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("h/boom/", boom),
    path("h/unavailable/", unavailable),
    path("h/orm-wrapped/", orm_wrapped),
    path("h/ok/", ok),
    path("h/stream-leak/", stream_leak),
    path("h/query/", query),
    path("h/thread-leak/", thread_leak),
    path("h/thread-with-context/", thread_with_context),
    path("mongopool/", include("django_mongopool.urls")),
]
