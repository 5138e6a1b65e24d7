"""Content negotiation: does this request want JSON rather than HTML?"""

from __future__ import annotations

from django.http import HttpRequest

FORMATS = ("html", "json")


def wants_json(request: HttpRequest) -> bool:
    """``?format=json`` wins; without ``?format=``, the Accept header must prefer JSON to HTML."""
    fmt = request.GET.get("format")
    if fmt is not None:
        return fmt == "json"
    return request.get_preferred_type(["text/html", "application/json"]) == "application/json"


def format_is_known(request: HttpRequest) -> bool:
    """False when ``?format=`` names something other than html or json (a 400 for the page)."""
    return request.GET.get("format", "html") in FORMATS
