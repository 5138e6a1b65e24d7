"""A guestbook whose views use only request.mongo_session and get_database()."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from bson import ObjectId
from bson.errors import InvalidId
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from django_mongopool import get_database
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
