"""Streamed responses that meet a MongoDB outage, for tests/request/test_streaming_outage.py.

``?after=1`` sends one chunk before the stream uses MongoDB; ``?empty=1`` sends an empty
chunk first (no byte yet); ``?other=1`` raises an error that is not an outage instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path

from django_mongopool import get_async_database, get_database


class NotAnOutage(Exception):
    pass


def sync_stream(request: HttpRequest) -> StreamingHttpResponse:
    def chunks() -> Iterator[bytes]:
        if request.GET.get("empty"):
            yield b""
        if request.GET.get("after"):
            yield b"first\n"
        if request.GET.get("other"):
            raise NotAnOutage("a bug in the stream")
        get_database()["items"].find_one({}, session=request.mongo_session)
        yield b"never\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        if request.GET.get("after"):
            yield b"first\n"
        session = await request.amongo_session()  # type: ignore[attr-defined]
        request.async_session_for_tests = session  # type: ignore[attr-defined]
        await get_async_database()["items"].find_one({}, session=session)
        yield b"never\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


urlpatterns = [path("s/sync/", sync_stream), path("s/async/", async_stream)]
