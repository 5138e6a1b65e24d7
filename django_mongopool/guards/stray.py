"""Report pymongo clients built outside django-mongopool ("stray clients").

How it works: while ``MONGOPOOL_STRAY_CLIENTS`` is ``"warn"`` or ``"raise"``,
``MongoClient.__init__`` and ``AsyncMongoClient.__init__`` are wrapped by a
function that, before calling the original, looks at the code that called the
constructor. The app's own clients (a class of the package that says
``mongopool_own_client = True``: the one marker every client class of the package sets),
clients built by pymongo itself, and
clients built from a module listed in ``MONGOPOOL_ALLOWED_CLIENT_MODULES`` pass
untouched; any other emits :class:`StrayClientWarning` at the caller's file and
line (``"warn"``) or raises :class:`StrayClientError` before anything is
connected (``"raise"``). In ``"warn"`` mode each source location is reported
once per process (a client built per request would otherwise warn on every
request); ``"raise"`` refuses every time; changing the mode starts afresh.
Setting the mode to ``"off"`` puts the original ``__init__`` methods back:
nothing of this module stays in pymongo.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from types import FrameType
from typing import Any

from pymongo import AsyncMongoClient, MongoClient

from django_mongopool.conf import conf
from django_mongopool.exceptions import StrayClientError, StrayClientWarning
from django_mongopool.guards import forks

_PATCHED: dict[type, Any] = {}
_lock = threading.Lock()
# (filename, lineno) already warned about in this process ("warn" mode).
_reported: set[tuple[str, int]] = set()


def _module(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _allowed(module: str) -> bool:
    allowed = conf.allowed_client_modules
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


def _caller(start: FrameType | None) -> FrameType | None:
    """The first frame that is not a MongoClient constructor (subclasses call super())."""
    frame = start
    while (
        frame is not None
        and frame.f_code.co_name == "__init__"
        and isinstance(frame.f_locals.get("self"), MongoClient | AsyncMongoClient)
    ):
        frame = frame.f_back
    return frame


# Libraries whose own client has a django-mongopool integration that shares the app's client.
INTEGRATIONS = {
    "django_mongodb_backend": ' Django ORM: use ENGINE "django_mongopool.backends.mongodb".',
    "mongoengine": " MongoEngine: use django_mongopool.mongoengine.connect().",
}


def _integration_hint(module: str) -> str:
    root = module.partition(".")[0]
    return INTEGRATIONS.get(root, "")


def _own(cls: type) -> bool:
    """A client class of the package's own: the marker, on a class the package defines (a user's
    subclass of one inherits the marker, not the exemption)."""
    return getattr(cls, "mongopool_own_client", False) is True and cls.__module__.startswith(
        "django_mongopool."
    )


def check_construction(client: Any, frame: FrameType | None) -> None:
    """Warn or raise for a client built by ``frame``'s code, per the current mode."""
    mode = conf.stray_clients
    if mode == "off" or _own(type(client)):
        return
    caller = _caller(frame)
    if caller is None:
        return
    module = _module(caller)
    if module.startswith("pymongo") or _allowed(module):
        return
    filename, lineno = caller.f_code.co_filename, caller.f_lineno
    message = (
        f"{type(client).__name__} built at {filename}:{lineno} outside django-mongopool: every "
        "client opens its own pool and monitor connections. Use django_mongopool.get_client() "
        "(or add the module to MONGOPOOL_ALLOWED_CLIENT_MODULES if it must have its own)."
        + _integration_hint(module)
    )
    if mode == "raise":
        raise StrayClientError(message)
    site = (filename, lineno)
    if site in _reported:
        return
    _reported.add(site)  # a race may warn twice for one site; never zero times
    warnings.warn_explicit(message, StrayClientWarning, filename, lineno, module=module)


def _wrap(cls: type) -> None:
    original = cls.__init__  # type: ignore[misc]

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        check_construction(self, sys._getframe(1))
        original(self, *args, **kwargs)

    _PATCHED[cls] = original
    cls.__init__ = __init__  # type: ignore[misc]


def sync_with_settings() -> None:
    """Install the constructor check for "warn"/"raise", remove it for "off"."""
    mode = conf.stray_clients  # validated by conf
    with _lock:
        _reported.clear()
        if mode == "off":
            for cls, original in _PATCHED.items():
                cls.__init__ = original  # type: ignore[misc]
            _PATCHED.clear()
        elif not _PATCHED:
            for cls in (MongoClient, AsyncMongoClient):
                _wrap(cls)


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: report each source location again, once, in this process."""
    global _lock
    _lock = threading.Lock()
    _reported.clear()


def installed() -> bool:
    return bool(_PATCHED)
