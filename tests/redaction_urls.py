"""Views for tests/guards/test_error_reports.py: errors whose reports would carry the configured password.

``scram`` runs pymongo's own SCRAM-SHA-256 client code (``pymongo.synchronous.auth``;
``scram_async``: ``pymongo.asynchronous.auth``)
against a scripted connection that answers the first step like mongod and refuses
the proof, so the traceback holds pymongo's real frame locals (``data``,
``salted_pass``, ``client_key``, ``stored_key``, ...) for the configured password.
"""

from __future__ import annotations

import os
from base64 import standard_b64encode
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from pymongo.asynchronous.auth import authenticate as async_authenticate
from pymongo.auth_shared import _build_credentials_tuple
from pymongo.errors import OperationFailure
from pymongo.synchronous.auth import authenticate

from django_mongopool.client.process import get_config

SALT = b"django-mongopool-salt"
ITERATIONS = 4096


def _answer(cmd: dict[str, Any]) -> dict[str, Any]:
    if "saslStart" in cmd:
        client_nonce = bytes(cmd["payload"]).rsplit(b"r=", 1)[1]
        server_first = (
            b"r="
            + client_nonce
            + standard_b64encode(os.urandom(18))
            + b",s="
            + standard_b64encode(SALT)
            + b",i="
            + str(ITERATIONS).encode()
        )
        return {"conversationId": 1, "done": False, "payload": server_first, "ok": 1}
    raise OperationFailure("Authentication failed.", 18, {"ok": 0, "code": 18})


class ScriptedConnection:
    """Answers saslStart as mongod does; refuses saslContinue (a wrong password)."""

    auth_ctx = None

    def command(self, source: str, cmd: dict[str, Any]) -> dict[str, Any]:
        return _answer(cmd)  # its frame holds ``cmd``, the proof derived from the password


class AsyncScriptedConnection:
    """The same for pymongo's async API."""

    auth_ctx = None

    async def command(self, source: str, cmd: dict[str, Any]) -> dict[str, Any]:
        return _answer(cmd)


def configured_credentials() -> tuple[str, str]:
    """The user and password of MONGOPOOL_URI, as pymongo parses them."""
    from pymongo.uri_parser import parse_uri

    parsed = parse_uri(get_config().uri)
    return parsed["username"], parsed["password"]


def scram(request: HttpRequest) -> HttpResponse:
    user, password = configured_credentials()
    credentials = _build_credentials_tuple("SCRAM-SHA-256", "admin", user, password, {}, None)
    authenticate(credentials, ScriptedConnection())  # type: ignore[arg-type]
    return HttpResponse("unreachable")


async def scram_async(request: HttpRequest) -> HttpResponse:
    user, password = configured_credentials()
    credentials = _build_credentials_tuple("SCRAM-SHA-256", "admin", user, password, {}, None)
    await async_authenticate(credentials, AsyncScriptedConnection())  # type: ignore[arg-type]
    return HttpResponse("unreachable")


def quoting(request: HttpRequest) -> HttpResponse:
    user, password = configured_credentials()
    try:
        raise ValueError(f"login as {user} with {password!r} refused")  # the cause ...
    except ValueError as exc:
        raise RuntimeError(f"could not log in: {password}") from exc  # ... and the error


urlpatterns = [
    path("r/scram/", scram),
    path("r/scram-async/", scram_async),
    path("r/quoting/", quoting),
]
