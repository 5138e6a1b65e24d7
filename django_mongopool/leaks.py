"""Find sessions that user code started during a request and never ended.

The middleware opens a scope for each request (a context variable, so it
follows the request into ``sync_to_async`` threads); every session started
through ``get_client().start_session()`` while it is open is recorded in the
scope's tracking list (made by the first one) with the file and line that
started it. ``request.mongo_session`` itself is never
tracked: the middleware always ends it.

A thread the view starts itself does not inherit context variables, so a
session started there belongs to no request. Two ways it is still found:

- hand the request's context to the thread (``ctx = contextvars.copy_context()``
  then ``Thread(target=ctx.run, args=(work,))``): its sessions are tracked like
  the view's own and reported when the request ends (so join the thread first);
- any other session the app's clients start outside a request (a plain thread,
  a management command, a task) is reported when it is garbage-collected
  without having been ended, with the file and line that started it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.conf import settings

from django_mongopool.conf import conf
from django_mongopool.exceptions import LeakedSessionError, LeakedSessionWarning
from django_mongopool.scope import RequestScope, current

logger = logging.getLogger("django_mongopool")
_lock = threading.Lock()


@dataclass
class Tracked:
    session: Any
    filename: str
    lineno: int
    module: str

    @property
    def site(self) -> str:
        return f"{self.filename}:{self.lineno}"


OUTSIDE_REQUESTS = (
    "code outside any request (a thread, command or task without the request's context)"
)


def record(session: Any, frame: FrameType | None) -> None:
    """Called by the app's client for each session it starts on behalf of user code."""
    if frame is None:
        return
    site = (frame.f_code.co_filename, frame.f_lineno, str(frame.f_globals.get("__name__", "")))
    scope = current.get()
    if scope is not None and not scope.ended:
        tracked = scope.tracked
        if tracked is None:
            with _lock:  # threads sharing the request's context: one list
                if scope.tracked is None:
                    scope.needs_end = True
                    scope.tracked = []
                tracked = scope.tracked
        tracked.append(Tracked(session, *site))
    elif hasattr(session, "_mongopool_site"):
        # No request to check it at its end: the session (a sessions._Watched) reports itself
        # if it is garbage-collected without having been ended.
        session._mongopool_site = site


def collected_unended(site: tuple[str, int, str]) -> None:
    """A session started outside any request was garbage-collected without being ended."""
    report([Tracked(None, *site)], OUTSIDE_REQUESTS, may_raise=False)


def leaked(tracked: list[Tracked]) -> list[Tracked]:
    return [t for t in tracked if not t.session.has_ended]


@contextlib.contextmanager
def tracking() -> Iterator[list[Tracked]]:
    """Track the sessions started in the block (inside a request: the request's scope's)."""
    tracked: list[Tracked] = []
    scope = current.get()
    if scope is not None and not scope.ended:
        scope.needs_end = True
        previous, scope.tracked = scope.tracked, tracked
        try:
            yield tracked
        finally:
            # The enclosing request or block still checks them at its end.
            if previous is not None:
                previous.extend(tracked)
                scope.tracked = previous
        return
    scope = RequestScope()
    scope.pins, scope.tracked = False, tracked
    token = current.set(scope)
    try:
        yield tracked
    finally:
        current.reset(token)


def report(leaks: list[Tracked], where: str, *, may_raise: bool = True) -> None:
    """Warn, log or raise according to MONGOPOOL_LEAKED_SESSIONS (the caller counts them)."""
    if not leaks:
        return
    mode = conf.leaked_sessions
    if mode == "off":
        return
    sites = ", ".join(t.site for t in leaks)
    message = (
        f"{len(leaks)} MongoDB session(s) started during {where} were not ended (started at "
        f"{sites}). End them (use a 'with' block) or use request.mongo_session, which is always ended."
    )
    if mode == "raise" and may_raise:
        raise LeakedSessionError(message)
    if settings.DEBUG or mode == "raise":
        first = leaks[0]
        warnings.warn_explicit(
            message, LeakedSessionWarning, first.filename, first.lineno, module=first.module
        )
    else:
        logger.warning(message)
