"""Text that came from outside the app, made safe to write to a terminal.

Application names, driver names and client hosts reported by ``$currentOp``,
fields of heartbeat documents and server error messages are untrusted: an ESC
or OSC sequence could clear the screen, set the window title or write the
clipboard, and a newline could forge a whole report line. :func:`safe` shows
every control or format character visibly (``\\x1b``, ``\\n``, ``\\u202e``), so
one value always stays one line of plain characters.
"""

from __future__ import annotations

import unicodedata
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    # Cc: C0/C1 controls and DEL; Cf: bidi overrides, zero-width characters;
    # Zl/Zp: U+2028/U+2029, which some terminals and editors treat as line breaks.
    if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}:
        code = ord(char)
        return (
            f"\\x{code:02x}"
            if code < 0x100
            else f"\\u{code:04x}"
            if code < 0x10000
            else f"\\U{code:08x}"
        )
    return char


def safe(text: Any) -> str:
    """``text`` (any value; non-strings through ``str``) as one line with no control characters."""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable() and "\\" not in value:
        return value  # the common case, without a per-character walk
    return "".join(_escape(char) for char in value)
