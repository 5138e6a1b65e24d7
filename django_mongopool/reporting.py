"""Keep MongoDB credentials out of Django's own error reports (DEBUG 500 page, ADMINS e-mails).

Why this exists: Django's default exception reporter filter
(``django.views.debug.SafeExceptionReporterFilter``) hides a setting, a
``request.META`` entry or a cookie only when its *name* looks secret
(``API|TOKEN|KEY|SECRET|PASS|SIGNATURE``). ``MONGOPOOL_URI`` does not match, nor
does ``authMechanismProperties`` in ``MONGOPOOL_CLIENT_OPTIONS``, nor an
environment variable such as ``MONGODB_URL`` (django-environ settings; under
runserver and many WSGI servers the environment is part of ``request.META``).
So the password would be printed in clear in the DEBUG page's settings dump and
in every error e-mail.

What it does: :func:`install` (called from ``AppConfig.ready()``, idempotent)
wraps two methods of ``SafeExceptionReporterFilter`` (so the default filter and
any subclass that calls ``super()`` are covered, without touching the user's
settings):

- ``cleanse_setting`` (settings, ``request.META``, cookies, recursively into
  dicts, lists and tuples): a key named like a credential-carrying pymongo
  option (:data:`~django_mongopool.redact.SECRET_OPTIONS`, any case) is hidden
  whole; in every string, each ``mongodb://`` / ``mongodb+srv://`` URI loses its
  password and credential options (:func:`~django_mongopool.redact.redact_uri`),
  and every credential of the configured client (in any of its encodings) is
  masked wherever it appears.
- ``get_traceback_frame_variables`` (the local variables shown per frame): the
  same masking for strings, dicts, lists and tuples.

The filter's ``cleansed_substitute`` replaces what is hidden whole; inside a
string only the credential is replaced (by ``***``), so the host stays readable.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.views.debug import SafeExceptionReporterFilter

from django_mongopool.conf import conf
from django_mongopool.options import credential_values
from django_mongopool.redact import SECRET_OPTIONS, redact_uri, scrub

_URI = re.compile(r"mongodb(?:\+srv)?://\S+", re.IGNORECASE)
_MARK = "_mongopool_redacts"
_lock = threading.Lock()


def configured_secrets() -> tuple[str, ...]:
    """The credentials of the configured client, even when its settings do not validate."""
    try:
        if conf.uri_is_set:
            return conf.client_config.secrets
    except Exception:  # an invalid setting must not break the error page that reports it
        pass
    return credential_values(conf.raw("MONGOPOOL_URI"), conf.raw("MONGOPOOL_CLIENT_OPTIONS"))


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every MongoDB URI's credentials and each of ``secrets`` masked."""
    if "://" in text:
        text = _URI.sub(lambda match: redact_uri(match.group(0)), text)
    return scrub(text, secrets)


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in SECRET_OPTIONS


def _mask_value(value: Any, secrets: tuple[str, ...], substitute: Any) -> Any:
    """Strings masked; plain dicts, lists and tuples rebuilt with their contents masked;
    anything else (bytes, pymongo's credential tuples, objects) shown as its masked repr
    whenever its repr carries a credential."""
    if isinstance(value, str):
        return mask_text(value, secrets)
    if type(value) is dict:
        return {
            k: substitute if is_secret_key(k) else _mask_value(v, secrets, substitute)
            for k, v in value.items()
        }
    if type(value) in (list, tuple):
        return type(value)(_mask_value(v, secrets, substitute) for v in value)
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__ is Django's to report, not ours
        return value
    masked = mask_text(shown, secrets)
    return value if masked == shown else masked


def _wrap_cleanse_setting(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def cleanse_setting(self: SafeExceptionReporterFilter, key: Any, value: Any) -> Any:
        if is_secret_key(key):
            return self.cleansed_substitute
        cleansed = original(self, key, value)  # recurses through this wrapper
        if isinstance(cleansed, str):
            return mask_text(cleansed, configured_secrets())
        return cleansed

    setattr(cleanse_setting, _MARK, True)
    return cleanse_setting


def _wrap_frame_variables(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_traceback_frame_variables(
        self: SafeExceptionReporterFilter, request: Any, tb_frame: Any
    ) -> Any:
        variables = original(self, request, tb_frame)
        secrets = configured_secrets()
        return [
            (
                name,
                self.cleansed_substitute
                if is_secret_key(name)
                else _mask_value(value, secrets, self.cleansed_substitute),
            )
            for name, value in variables
        ]

    setattr(get_traceback_frame_variables, _MARK, True)
    return get_traceback_frame_variables


def installed() -> bool:
    return getattr(SafeExceptionReporterFilter.cleanse_setting, _MARK, False)


def install() -> None:
    """Wrap Django's default reporter filter once per process (``AppConfig.ready()``)."""
    with _lock:
        if installed():
            return
        cls = SafeExceptionReporterFilter
        cls.cleanse_setting = _wrap_cleanse_setting(cls.cleanse_setting)  # type: ignore[method-assign]
        cls.get_traceback_frame_variables = _wrap_frame_variables(  # type: ignore[method-assign]
            cls.get_traceback_frame_variables
        )
