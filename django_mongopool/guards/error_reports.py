"""Keep MongoDB credentials out of Django's own error reports (DEBUG 500 page, ADMINS e-mails).

Why this exists: Django's default exception reporter filter
(``django.views.debug.SafeExceptionReporterFilter``) hides a setting, a
``request.META`` entry or a cookie only when its *name* looks secret
(``API|TOKEN|KEY|SECRET|PASS|SIGNATURE``). ``MONGOPOOL_URI`` does not match, nor
does ``authMechanismProperties`` in ``MONGOPOOL_CLIENT_OPTIONS``, nor an
environment variable such as ``MONGODB_URL`` (django-environ settings; under
runserver and many WSGI servers the environment is part of ``request.META``).
So the password would be printed in clear in the DEBUG page's settings dump and
in every error e-mail. Nor does Django look inside a variable's value: pymongo's
SCRAM code holds the password as ``bytes`` (``data = b'P\\xc3\\xa4ss'``) and keys
derived from it (``salted_pass``, ``client_key``, ``stored_key``, ...).

What it does: :func:`install` (called from ``AppConfig.ready()``, idempotent)
wraps two methods of ``SafeExceptionReporterFilter`` and one of
``ExceptionReporter`` (so the defaults and any subclass that calls ``super()``
are covered, without touching the user's settings):

- ``cleanse_setting`` (settings, ``request.META``, cookies): a key named like a
  credential-carrying pymongo option (:data:`~django_mongopool.guards.redact.SECRET_OPTIONS`,
  any case) is hidden whole; every value is masked by what it *is*, not by its
  ``repr()`` text (:func:`mask_value`): strings and bytes lose each ``mongodb://``
  URI's password and every credential of the configured client (in any of its
  encodings); dicts, lists, tuples, sets, frozensets and named tuples, nested, are
  rebuilt with their contents masked; any other object is shown as its masked
  ``repr()`` when that carries a credential.
- ``get_traceback_frame_variables`` (the local variables shown per frame): the
  same masking; and in a frame of pymongo's authentication code, or of anything
  it called, every variable except a few harmless names (``mechanism``,
  ``source``, ``username``, ``digest``, ``iterations``) is hidden whole, since
  keys derived from the password cannot be recognised by their value.
- ``ExceptionReporter.get_traceback_data`` (what the page and both e-mail
  bodies are rendered from): every text in it, the exception's message, each
  chained exception's, the source lines and the variables as shown, is masked
  again; and the frames below pymongo's authentication code are found along the
  traceback too, which also covers the coroutines of the async API (their frames
  do not keep their callers).

The filter's ``cleansed_substitute`` replaces what is hidden whole; inside a
string only the credential is replaced (by ``***``), so the host stays readable.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from django_mongopool.conf import conf
from django_mongopool.guards import forks
from django_mongopool.guards.redact import (
    SECRET_OPTIONS,
    credential_values,
    redact_uri,
    scrub,
    scrub_bytes,
)

_URI = re.compile(r"mongodb(?:\+srv)?://\S+", re.IGNORECASE)
_URI_BYTES = re.compile(rb"mongodb(?:\+srv)?://\S+", re.IGNORECASE)
_MARK = "_mongopool_redacts"
_lock = threading.Lock()
# pymongo's authentication modules (sync, async, shared; SCRAM, X.509, AWS, OIDC, SASLprep).
_AUTH_MODULE = re.compile(r"^pymongo\.(?:(?:synchronous|asynchronous)\.)?(?:auth\w*|saslprep)$")
# Variables of those frames that never hold credential material.
_AUTH_HARMLESS = frozenset({"mechanism", "source", "username", "digest", "iterations"})
_MAX_CALLERS = 256  # how far up the stack a frame's callers are searched for pymongo's auth code
_MAX_DEPTH = 12  # nesting followed into containers; deeper values are shown by their masked repr


@forks.in_child
def _fresh_lock_in_child() -> None:
    """In a forked child: the lock may have been held by another thread at fork time."""
    global _lock
    _lock = threading.Lock()


def _property_values(value: object) -> list[str]:
    """The values inside ``authMechanismProperties`` (a dict, or ``"KEY:value,KEY:value"``)."""
    if isinstance(value, Mapping):
        return [str(v) for v in value.values() if v]
    if isinstance(value, str):
        return [part.partition(":")[2] for part in value.split(",") if part.partition(":")[2]]
    return []


def configured_secrets() -> tuple[str, ...]:
    """The credentials of the configured client, even when its settings do not validate."""
    secrets: tuple[str, ...] = ()
    try:
        if conf.uri_is_set:
            secrets = conf.client_config.secrets
    except Exception:  # an invalid setting must not break the error page that reports it
        pass
    raw_uri, raw_options = conf.raw("MONGOPOOL_URI"), conf.raw("MONGOPOOL_CLIENT_OPTIONS")
    found = list(secrets or credential_values(raw_uri, raw_options))
    if isinstance(raw_options, Mapping):
        for key, value in raw_options.items():
            if isinstance(key, str) and key.lower() in SECRET_OPTIONS:
                found += _property_values(value)
    return tuple(dict.fromkeys(found))  # each once, in order


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every MongoDB URI's credentials and each of ``secrets`` masked."""
    if "://" in text:
        text = _URI.sub(lambda match: redact_uri(match.group(0)), text)
    return scrub(text, secrets)


def mask_bytes(data: bytes, secrets: Iterable[str] = ()) -> bytes:
    """``data`` with every MongoDB URI's credentials and each of ``secrets`` (encoded) masked."""
    if b"://" in data:
        data = _URI_BYTES.sub(
            lambda match: redact_uri(match.group(0).decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            ),
            data,
        )
    return scrub_bytes(data, secrets)


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_OPTIONS


def _masked_repr(value: Any, secrets: tuple[str, ...]) -> tuple[Any, bool]:
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__ is Django's to report, not ours
        return value, False
    masked = mask_text(shown, secrets)
    return (masked, True) if masked != shown else (value, False)


def _mask(value: Any, secrets: tuple[str, ...], substitute: Any, depth: int) -> tuple[Any, bool]:
    """``value`` masked, and whether anything was: see :func:`mask_value`."""
    if isinstance(value, str):
        masked = mask_text(value, secrets)
        return masked, masked != value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        masked_bytes = mask_bytes(raw, secrets)
        return (masked_bytes, True) if masked_bytes != raw else (value, False)
    if depth >= _MAX_DEPTH:
        return _masked_repr(value, secrets)
    if isinstance(value, Mapping):
        try:
            items = list(value.items())
        except Exception:
            return _masked_repr(value, secrets)
        changed = False
        masked_dict = {}
        for key, item in items:
            shown_key, key_changed = _mask(key, secrets, substitute, depth + 1)
            if is_secret_key(key):
                shown, item_changed = substitute, True
            else:
                shown, item_changed = _mask(item, secrets, substitute, depth + 1)
            changed = changed or key_changed or item_changed
            try:
                masked_dict[shown_key] = shown
            except TypeError:  # a masked key that is not hashable
                masked_dict[repr(shown_key)] = shown
        return (masked_dict, True) if changed else (value, False)
    if isinstance(value, list | tuple | set | frozenset):
        results = [_mask(item, secrets, substitute, depth + 1) for item in value]
        if not any(changed for _item, changed in results):
            return value, False
        return _rebuilt(value, [item for item, _changed in results]), True
    return _masked_repr(value, secrets)


def _rebuilt(value: Any, items: list[Any]) -> Any:
    """A container like ``value`` holding ``items`` (named tuples keep their field names)."""
    kind = type(value)
    if isinstance(value, tuple) and hasattr(kind, "_fields") and hasattr(kind, "_make"):
        try:
            return kind._make(items)
        except Exception:  # a named tuple that validates its fields
            pass
    for base in (list, tuple, set, frozenset):
        if isinstance(value, base):
            try:
                return base(items)
            except TypeError:  # an unhashable masked item in a set
                return list(items)
    return list(items)


def mask_value(value: Any, secrets: tuple[str, ...], substitute: Any) -> Any:
    """``value`` as it may be shown, masked by what it is rather than by its repr text.

    Strings and bytes lose every MongoDB URI's credentials and each of ``secrets``
    in any of their encodings; mappings, lists, tuples, sets and frozensets (nested,
    of any subclass) are rebuilt with their contents masked and a key named like a
    credential option replaced by ``substitute``; anything else is shown as its
    masked ``repr()`` whenever that carries a credential. Unchanged values are
    returned as they are.
    """
    return _mask(value, secrets, substitute, 0)[0]


def _in_authentication(tb_frame: FrameType | None) -> bool:
    """True for a frame of pymongo's authentication code, or of anything it called."""
    frame, hops = tb_frame, 0
    while frame is not None and hops < _MAX_CALLERS:
        if _AUTH_MODULE.match(str(frame.f_globals.get("__name__", ""))):
            return True
        frame, hops = frame.f_back, hops + 1
    return False


def _wrap_cleanse_setting(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def cleanse_setting(self: SafeExceptionReporterFilter, key: Any, value: Any) -> Any:
        if is_secret_key(key):
            return self.cleansed_substitute
        cleansed = original(self, key, value)  # recurses through this wrapper
        return mask_value(cleansed, configured_secrets(), self.cleansed_substitute)

    setattr(cleanse_setting, _MARK, True)
    return cleanse_setting


def _wrap_frame_variables(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_traceback_frame_variables(
        self: SafeExceptionReporterFilter, request: Any, tb_frame: Any
    ) -> Any:
        variables = original(self, request, tb_frame)
        secrets = configured_secrets()
        hidden = _in_authentication(tb_frame)
        return [
            (
                name,
                self.cleansed_substitute
                if is_secret_key(name) or (hidden and name not in _AUTH_HARMLESS)
                else mask_value(value, secrets, self.cleansed_substitute),
            )
            for name, value in variables
        ]

    setattr(get_traceback_frame_variables, _MARK, True)
    return get_traceback_frame_variables


def _shown(value: Any, secrets: tuple[str, ...]) -> Any:
    """A value of the reporter's data, as its templates show it, masked."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if isinstance(value, BaseException):  # a chained exception, shown by its message
        text = str(value)
        masked = mask_text(text, secrets)
        return masked if masked != text else value
    if isinstance(value, list | tuple):
        return type(value)(_shown(item, secrets) for item in value)
    return value


def _in_authentication_module(tb: Any) -> bool:
    return bool(_AUTH_MODULE.match(str(tb.tb_frame.f_globals.get("__name__", ""))))


def _inside_authentication(frames: list[Any]) -> set[int]:
    """The traceback entries of pymongo's authentication code and of everything it called.

    Found along the traceback itself (``tb_next``), which also links the coroutines of the
    async API, whose frames do not keep their callers (``f_back``)."""
    inside: set[int] = set()
    for frame in frames:
        tb = frame.get("tb") if isinstance(frame, dict) else None
        if tb is None or id(tb) in inside or not _in_authentication_module(tb):
            continue
        while tb is not None:
            inside.add(id(tb))
            tb = tb.tb_next
    return inside


def _masked_frame(frame: Any, secrets: tuple[str, ...], hidden: bool) -> Any:
    if not isinstance(frame, dict):
        return frame
    masked = {key: value if key == "tb" else _shown(value, secrets) for key, value in frame.items()}
    if hidden and isinstance(masked.get("vars"), list):
        substitute = repr(SafeExceptionReporterFilter.cleansed_substitute)
        masked["vars"] = [
            (name, shown if name in _AUTH_HARMLESS else substitute)
            for name, shown in masked["vars"]
        ]
    return masked


def _wrap_traceback_data(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_traceback_data(self: ExceptionReporter) -> Any:
        data = original(self)
        secrets = configured_secrets()
        substitute = SafeExceptionReporterFilter.cleansed_substitute
        masked: dict[str, Any] = {}
        for key, value in data.items():
            if key == "request":
                masked[key] = value
            elif key == "frames":
                inside = _inside_authentication(value)
                masked[key] = [
                    _masked_frame(
                        frame, secrets, isinstance(frame, dict) and id(frame.get("tb")) in inside
                    )
                    for frame in value
                ]
            elif key.endswith("_items"):  # request.GET, POST, FILES, COOKIES: (name, value) pairs
                masked[key] = [
                    (name, mask_value(item, secrets, substitute)) for name, item in value
                ]
            elif isinstance(value, str | dict | list | tuple):
                masked[key] = mask_value(value, secrets, substitute)
            elif isinstance(value, BaseException):  # Django 6.0+: exception_value is the exception
                masked[key] = mask_value(str(value), secrets, substitute)
            else:
                masked[key] = value
        if "lastframe" in masked and masked.get("frames"):
            masked["lastframe"] = masked["frames"][-1]
        return masked

    setattr(get_traceback_data, _MARK, True)
    return get_traceback_data


def installed() -> bool:
    return getattr(SafeExceptionReporterFilter.cleanse_setting, _MARK, False)


def install() -> None:
    """Wrap Django's default reporter filter and reporter once per process (``AppConfig.ready()``)."""
    with _lock:
        if installed():
            return
        cls = SafeExceptionReporterFilter
        cls.cleanse_setting = _wrap_cleanse_setting(cls.cleanse_setting)  # type: ignore[method-assign]
        cls.get_traceback_frame_variables = _wrap_frame_variables(  # type: ignore[method-assign]
            cls.get_traceback_frame_variables
        )
        ExceptionReporter.get_traceback_data = _wrap_traceback_data(  # type: ignore[method-assign]
            ExceptionReporter.get_traceback_data
        )
