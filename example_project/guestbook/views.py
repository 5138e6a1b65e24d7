"""A guestbook whose views use only request.mongo_session and get_database()."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from bson import ObjectId
from bson.errors import InvalidId
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from django_mongopool import get_async_database, get_database
from guestbook.forms import EntryForm


def _entries():
    return get_database()["entries"]


@require_http_methods(["GET", "POST"])
def entry_list(request: HttpRequest) -> HttpResponse:
    session = request.mongo_session
    form = EntryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = _entries().insert_one(
            {**form.cleaned_data, "created_at": datetime.now(UTC)}, session=session
        )
        return redirect("guestbook:detail", entry_id=str(result.inserted_id))
    entries = list(_entries().find({}, session=session).sort("_id", -1).limit(50))
    for entry in entries:
        entry["id"] = str(entry["_id"])
    count = _entries().count_documents({}, session=session)
    return render(
        request, "guestbook/list.html", {"form": form, "entries": entries, "count": count}
    )


def entry_detail(request: HttpRequest, entry_id: str) -> HttpResponse:
    try:
        oid = ObjectId(entry_id)
    except InvalidId:
        raise Http404("No such entry") from None
    entry = _entries().find_one({"_id": oid}, session=request.mongo_session)
    if entry is None:
        raise Http404("No such entry")
    entry["id"] = str(entry["_id"])
    return render(request, "guestbook/detail.html", {"entry": entry})


def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Streams every entry; the session is ended when the stream ends or is abandoned."""

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "name", "message", "created_at"])
        cursor = _entries().find({}, session=request.mongo_session).sort("_id", 1).batch_size(100)
        for entry in cursor:
            writer.writerow(
                [
                    entry["_id"],
                    entry.get("name", ""),
                    entry.get("message", ""),
                    entry.get("created_at", ""),
                ]
            )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="guestbook.csv"'
    return response


@csrf_exempt  # a JSON API for scripts; a real one would authenticate its callers
@require_http_methods(["POST"])
def api_sign(request: HttpRequest) -> JsonResponse:
    """POST {"id": "...", "name": "...", "message": "..."}: 201 once the write is acknowledged."""
    try:
        data = json.loads(request.body)
        form = EntryForm({"name": data.get("name"), "message": data.get("message")})
        entry_id = data.get("id") or str(ObjectId())
        if not isinstance(entry_id, str) or not 1 <= len(entry_id) <= 64:
            raise ValueError("id")
    except (ValueError, AttributeError):
        return JsonResponse(
            {"error": "expected a JSON object with id, name and message"}, status=400
        )
    if not form.is_valid():
        return JsonResponse({"error": form.errors}, status=400)
    _entries().insert_one(
        {"_id": entry_id, **form.cleaned_data, "created_at": datetime.now(UTC)},
        session=request.mongo_session,
    )
    return JsonResponse({"id": entry_id}, status=201)


async def api_entries(request: HttpRequest) -> JsonResponse:
    """An async view: the sync session is used from a worker thread, never on the event loop."""
    session = request.mongo_session

    def latest() -> list[dict[str, str]]:
        cursor = _entries().find({}, {"name": 1, "message": 1}, session=session).sort("_id", -1)
        return [
            {"id": str(e["_id"]), "name": e.get("name", ""), "message": e.get("message", "")}
            for e in cursor.limit(20)
        ]

    return JsonResponse({"entries": await sync_to_async(latest)()})


@csrf_exempt
@require_http_methods(["POST"])
async def api_async_sign(request: HttpRequest) -> JsonResponse:
    """The async twin of api_sign: pymongo's AsyncMongoClient of this event loop."""
    try:
        data = json.loads(request.body)
        entry_id = str(data.get("id") or ObjectId())
        form = EntryForm({"name": data.get("name"), "message": data.get("message")})
    except (ValueError, AttributeError):
        return JsonResponse(
            {"error": "expected a JSON object with id, name and message"}, status=400
        )
    if not form.is_valid() or not 1 <= len(entry_id) <= 64:
        return JsonResponse({"error": "invalid entry"}, status=400)
    session = await request.amongo_session()
    entries = get_async_database()["entries"]
    await entries.insert_one(
        {"_id": entry_id, **form.cleaned_data, "created_at": datetime.now(UTC)}, session=session
    )
    found = await entries.find_one({"_id": entry_id}, session=session)
    return JsonResponse({"id": found["_id"]}, status=201)


async def api_entries_stream(request: HttpRequest) -> StreamingHttpResponse:
    """Every entry as NDJSON from the async client; ``?delay=`` (<= 1 s) paces a live feed.

    If the client goes away mid-stream, Django cancels the stream and the session still ends.
    """
    try:
        delay = min(max(float(request.GET.get("delay", 0)), 0.0), 1.0)
    except ValueError:
        delay = 0.0

    async def lines():
        session = await request.amongo_session()
        cursor = get_async_database()["entries"].find({}, session=session).sort("_id", 1)
        async for entry in cursor:
            yield json.dumps({"id": str(entry["_id"]), "name": entry.get("name", "")}) + "\n"
            if delay:
                await asyncio.sleep(delay)

    return StreamingHttpResponse(lines(), content_type="application/x-ndjson")
