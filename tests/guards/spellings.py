"""Every spelling of a secret that a page, a repr or a message could show, written out here
(not taken from the code under test), and the assertion that none is shown."""

from __future__ import annotations

import html
import json
import re
import unicodedata
from base64 import standard_b64encode
from urllib.parse import quote, quote_plus


def _percent_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(), text)


def spellings(secret: str) -> set[str]:
    """Every way a page, a repr or a message could spell ``secret`` (written out here, not
    taken from the code under test)."""
    text_forms = {secret, unicodedata.normalize("NFKC", secret)}
    for form in list(text_forms):
        text_forms |= {quote(form), quote(form, safe=""), quote_plus(form)}
    text_forms |= {_percent_lower(form) for form in list(text_forms)}
    shown = set(text_forms)
    for form in text_forms:
        shown |= {
            repr(form)[1:-1],
            ascii(form)[1:-1],
            json.dumps(form)[1:-1],
            html.escape(form),
            html.escape(form, quote=False),
            repr(form.encode())[2:-1],
            html.escape(repr(form.encode())[2:-1]),
            form.encode().hex(),
            standard_b64encode(form.encode()).decode(),
        }
    return shown


def assert_hidden(text: str, secret: str) -> None:
    for form in spellings(secret):
        assert form not in text, f"{form!r} of the password is shown"
