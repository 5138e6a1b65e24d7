"""``wants_json``: ``?format=`` first, then the Accept header's preference."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from django_mongopool.request.negotiation import format_is_known, wants_json

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        ("", None, False),
        ("", "*/*", False),
        ("", BROWSER, False),
        ("", "application/json", True),
        ("", "application/json, text/plain, */*", True),
        ("", "text/html;q=0.5, application/json", True),
        ("", "application/json;q=0.5, text/html", False),
        ("", "", False),
        ("?format=json", BROWSER, True),
        ("?format=html", "application/json", False),
        ("?format=csv", "application/json", False),
    ],
)
def test_wants_json(query, accept, expected):
    headers = {} if accept is None else {"Accept": accept}
    request = RequestFactory().get("/" + query, headers=headers)
    assert wants_json(request) is expected


@pytest.mark.parametrize(
    ("query", "known"),
    [
        ("", True),
        ("?format=json", True),
        ("?format=html", True),
        ("?format=xml", False),
        ("?format=", False),
    ],
)
def test_format_is_known(query, known):
    assert format_is_known(RequestFactory().get("/" + query)) is known
