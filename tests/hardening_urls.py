"""Views and URLs for tests/test_hardening.py and tests/integration/test_hardening_server.py."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
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


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("h/boom/", boom),
    path("h/unavailable/", unavailable),
    path("h/orm-wrapped/", orm_wrapped),
    path("h/ok/", ok),
    path("mongopool/", include("django_mongopool.urls")),
]
