"""Keep credentials out of every URI and message that django-mongopool shows.

The rules are deliberately pessimistic: when a URI is ambiguous (a raw ``@``,
``:``, ``/`` or ``?`` inside the password), more is hidden rather than less.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"

# Option names (lower case) whose values are credentials or carry them.
SECRET_OPTIONS = frozenset(
    {
        "password",
        "authmechanismproperties",
        "tlscertificatekeyfilepassword",
        "sslpemkeypassword",
        "sslclientcertificatekeypassword",
    }
)

_PERCENT = re.compile(r"%[0-9A-F]{2}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _split_scheme(uri: str) -> tuple[str, str]:
    match = _SCHEME.match(uri)
    if match is None:
        return "", uri
    return match.group(0), uri[match.end() :]


def _userinfo(rest: str) -> tuple[str, str, str, str] | None:
    """(user, ":" or "", password, what follows the "@"), or None when there is no "@".

    The userinfo runs up to the *last* '@' of the whole string, so a password
    holding a raw '@', '/' or '?' is hidden whole.
    """
    at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    return user, colon, password, rest[at + 1 :]


def _secret_option(pair: str) -> tuple[str, str] | None:
    """(key, value) when a ``key=value`` query pair carries a credential."""
    key, sep, value = pair.partition("=")
    if sep and key.strip().lower() in SECRET_OPTIONS:
        return key, value
    return None


def _redact_query(query: str) -> str:
    parts = []
    for pair in re.split(r"([&;])", query):
        secret = _secret_option(pair)
        parts.append(f"{secret[0]}={MASK}" if secret else pair)
    return "".join(parts)


def redact_uri(uri: object) -> str:
    """Return ``uri`` with its password and credential-carrying options masked."""
    if not isinstance(uri, str):
        return f"<{type(uri).__name__}>"
    scheme, rest = _split_scheme(uri)
    info = _userinfo(rest)
    if info is not None:
        user, colon, _password, after = info
        rest = f"{user}{':' + MASK if colon else ''}@{after}"
    head, qmark, query = rest.partition("?")
    if qmark:
        rest = f"{head}?{_redact_query(query)}"
    return scheme + rest


def uri_secrets(uri: object) -> list[str]:
    """Every string that would reveal a credential of ``uri`` if printed."""
    if not isinstance(uri, str):
        return []
    found: list[str] = []
    _scheme, rest = _split_scheme(uri)
    info = _userinfo(rest)
    if info is not None and info[2]:
        found.append(info[2])
    _head, _q, query = rest.partition("?")
    for pair in re.split(r"[&;]", query):
        secret = _secret_option(pair)
        if secret and secret[1]:
            found.append(secret[1])
    return found


def credential_values(uri: Any, client_options: Any) -> tuple[str, ...]:
    """Every credential in the URI and the client options, whatever else is wrong with them."""
    found = tuple(uri_secrets(uri)) if isinstance(uri, str) else ()
    if not isinstance(client_options, Mapping):
        return found
    return found + tuple(
        str(value)
        for key, value in client_options.items()
        if isinstance(key, str) and key.lower() in SECRET_OPTIONS and value
    )


def _variants(secret: str) -> set[str]:
    """Every spelling of ``secret`` that a message, a repr or a page may carry.

    Its URL encodings and decodings, SASLprep's NFKC form (what SCRAM hashes), and the
    escaped forms of ``repr()``, ``ascii()``/JSON and of a ``bytes`` repr of its UTF-8 and
    Latin-1 encodings (``b'P\\xc3\\xa4ss'`` for ``Päss``), so a masked text holds none of them.
    """
    forms = {secret, unicodedata.normalize("NFKC", secret)}
    for _round in range(2):  # decoded forms, then their re-encodings
        for form in list(forms):
            for transform in (quote, quote_plus, unquote, unquote_plus):
                forms.add(transform(form))
    for form in list(forms):
        forms.add(_PERCENT.sub(lambda match: match.group(0).lower(), form))
    for form in list(forms):
        forms.add(repr(form)[1:-1])
        forms.add(ascii(form)[1:-1])
        forms.add(json.dumps(form)[1:-1])
        for encoded in _encodings(form):
            forms.add(repr(encoded)[2:-1])
    return {form for form in forms if form}


def _encodings(text: str) -> list[bytes]:
    found = [text.encode("utf-8", "surrogatepass")]
    with contextlib.suppress(UnicodeEncodeError):
        found.append(text.encode("latin-1"))
    return found


def _key(secrets: Iterable[object]) -> tuple[tuple[bool, str], ...]:
    return tuple(
        (isinstance(secret, str), secret if isinstance(secret, str) else str(secret))
        for secret in secrets
        if secret is not None and secret != ""
    )


@functools.lru_cache(maxsize=16)
def _forms(key: tuple[tuple[bool, str], ...]) -> tuple[str, ...]:
    forms: set[str] = set()
    for is_text, secret in key:
        if is_text:
            forms |= _variants(secret)
        elif secret:
            forms.add(secret)
    # Longest first, so a secret that contains another is masked whole.
    return tuple(sorted(forms, key=len, reverse=True))


@functools.lru_cache(maxsize=16)
def _byte_forms(key: tuple[tuple[bool, str], ...]) -> tuple[bytes, ...]:
    forms = {encoded for form in _forms(key) for encoded in _encodings(form)}
    return tuple(sorted(forms, key=len, reverse=True))


def secret_forms(secrets: Iterable[object]) -> tuple[str, ...]:
    """Every spelling of each secret (see :func:`_variants`), longest first."""
    return _forms(_key(secrets))


def secret_byte_forms(secrets: Iterable[object]) -> tuple[bytes, ...]:
    """Each secret's spellings as the bytes an encoder would make of them, longest first."""
    return _byte_forms(_key(secrets))


def scrub(text: str, secrets: Iterable[object]) -> str:
    """Replace every occurrence of each secret (and its encodings) in ``text``."""
    for form in secret_forms(secrets):
        text = text.replace(form, MASK)
    return text


def scrub_bytes(data: bytes, secrets: Iterable[object]) -> bytes:
    """``data`` with every encoded occurrence of each secret replaced by ``***``."""
    for form in secret_byte_forms(secrets):
        data = data.replace(form, MASK.encode())
    return data
