"""Text from outside made safe for a terminal: every control, escape, line-breaking and bidi
character shown as a visible escape, so the result is one printable line."""

from __future__ import annotations

from typing import Any

import pytest

from django_mongopool.guards.terminal import safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("shop-web", "shop-web"),
        ("a\x1b[2Jb", "a\\x1b[2Jb"),
        ("title\x1b]0;x\x07", "title\\x1b]0;x\\x07"),
        ("two\nlines\r", "two\\nlines\\r"),
        ("tab\there", "tab\\there"),
        ("c1\x9b2J", "c1\\x9b2J"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("line\u2028sep", "line\\u2028sep"),
        ("back\\slash", "back\\\\slash"),
        ("café 東京", "café 東京"),
        (42, "42"),
        (None, "None"),
    ],
)
def test_safe(text: Any, shown: str) -> None:
    assert safe(text) == shown
    assert safe(text).isprintable()
