"""Find sessions that user code started during a request and never ended.

The middleware opens a scope for each request (a context variable, so it
follows the request into ``sync_to_async`` threads); every session started
through ``get_client().start_session()`` while it is open is recorded in the
scope's tracking list (:func:`django_mongopool.client.scope.track`) with the file
and line that started it; this module finds the ones left open and reports them. ``request.mongo_session`` itself is never
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

import logging
import warnings
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from django.conf import settings

from django_mongopool.conf import conf
from django_mongopool.exceptions import LeakedSessionError, LeakedSessionWarning

logger = logging.getLogger("django_mongopool")


# Where a session was started: the calling frame's code, its last instruction (a byte offset)
# and its module's name. Read from the frame when the session starts (cheap); turned into a file
# and a line only when a leak is reported.
Site = tuple[CodeType, int, Any]


def site(frame: FrameType) -> Site:
    return (frame.f_code, frame.f_lasti, frame.f_globals.get("__name__"))


def line(code: CodeType, lasti: int) -> int:
    """The source line of the instruction at byte offset ``lasti`` (what ``frame.f_lineno``
    gives for a frame stopped there)."""
    for start, end, number in code.co_lines():
        if start <= lasti < end and number is not None:
            return number
    return code.co_firstlineno


@dataclass
class Tracked:
    session: Any
    where: Site

    @property
    def filename(self) -> str:
        return self.where[0].co_filename

    @property
    def lineno(self) -> int:
        return line(self.where[0], self.where[1])

    @property
    def module(self) -> str:
        return str(self.where[2] or "")

    @property
    def site(self) -> str:
        return f"{self.filename}:{self.lineno}"


OUTSIDE_REQUESTS = (
    "code outside any request (a thread, command or task without the request's context)"
)


def collected_unended(where: Site) -> None:
    """A session started outside any request was garbage-collected without being ended."""
    report([Tracked(None, where)], OUTSIDE_REQUESTS, may_raise=False)


def leaked(tracked: list[Tracked]) -> list[Tracked]:
    return [t for t in tracked if not t.session.has_ended]


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
        f"{sites}). End them (use a 'with' block) or use request.mongo_session (in a task: "
        "task_session()), which is always ended."
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
