"""Errors that mean "MongoDB cannot serve this request now", and the 503 they become."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.http import HttpRequest, HttpResponse
from pymongo.errors import ConnectionFailure, PyMongoError

from django_mongopool.conf import conf
from django_mongopool.guards import forks
from django_mongopool.guards.redact import scrub
from django_mongopool.request.negotiation import wants_json

logger = logging.getLogger("django_mongopool")
LOG_EVERY_SECONDS = 10.0  # during an outage: one line per 10 s, with the count in between

MESSAGE = (
    "The database is temporarily unavailable (it could not be reached, or every pooled "
    "connection is busy). Please retry shortly."
)


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout)


def unavailable_cause(exc: BaseException) -> PyMongoError | None:
    """The pymongo error that means 'retry later' (unreachable, exhausted pool, timeout), if any.

    Follows ``__cause__``/``__context__``, so an ORM's ``DatabaseError`` raised from a
    pymongo ``ConnectionFailure`` counts like the pymongo error itself.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _is_unavailable(current):
            return current  # type: ignore[return-value]
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class _RateLimitedLog:
    """One WARNING per interval; the lines it holds back are counted into the next one."""

    def __init__(self, every: float, what: str = "503 responses") -> None:
        self.every = every
        self.what = what  # what the lines held back were about
        self.last = -every
        self.suppressed = 0
        self.lock = threading.Lock()

    def __call__(self, message: str, *args: object) -> bool:
        now = time.monotonic()
        with self.lock:
            if now - self.last < self.every:
                self.suppressed += 1
                return False
            held_back, self.suppressed, self.last = self.suppressed, 0, now
        if held_back:
            message += " (%d more %s since the previous line)"
            args = (*args, held_back, self.what)
        logger.warning(message, *args)
        return True


log_unavailable = _RateLimitedLog(LOG_EVERY_SECONDS)
log_unavailable_task = _RateLimitedLog(LOG_EVERY_SECONDS, "tasks that met an outage")
log_stream_cut = _RateLimitedLog(LOG_EVERY_SECONDS, "streams ended early")


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: the limiters' locks may have been held at fork time."""
    log_unavailable.lock = threading.Lock()
    log_unavailable_task.lock = threading.Lock()
    log_stream_cut.lock = threading.Lock()


def reason(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """pymongo's own reason, on one line, without credentials (for logs and the audit)."""
    text = " ".join(str(exc).split())[:500]
    return f"{type(exc).__name__}: {scrub(text, secrets)}"


def stream_cut(request: HttpRequest | None, cause: BaseException, chunks: int) -> None:
    """A streamed response whose first bytes were sent lost MongoDB: it ends there, logged once.

    The status line has been sent, so no 503 can replace it; the body ends early (a client
    tells only by the content it expected). The log line names the request and pymongo's
    reason without credentials, and is rate-limited like the 503 lines.
    """
    where = "a streamed response" if request is None else f"{request.method} {request.path}"
    try:
        secrets = conf.client_config.secrets
    except Exception:  # an invalid setting must not hide the line
        secrets = ()
    log_stream_cut(
        "MongoDB became unavailable while streaming %s; the response was ended after %d "
        "chunk(s): %s",
        where,
        chunks,
        reason(cause, secrets),
    )


ResponseHook = Callable[[HttpRequest, BaseException | None], None]
_response_hooks: list[ResponseHook] = []


@contextmanager
def response_hook(hook: ResponseHook) -> Iterator[None]:
    """While the block runs, ``hook(request, cause)`` runs before each 503 is built.

    The hook may raise instead (the pytest plugin does, with a hint, when a test's
    request cannot reach the server). ``cause`` is the error being handled, if known.
    """
    _response_hooks.append(hook)
    try:
        yield
    finally:
        _response_hooks.remove(hook)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 a request gets when MongoDB cannot serve it in time.

    The app logs it itself (one rate-limited WARNING with the cause), so Django's
    request logger does not log it again as an ERROR (which would mail ADMINS).
    """
    for hook in tuple(_response_hooks):
        hook(request, sys.exception())
    if wants_json(request):
        response = HttpResponse(
            json.dumps({"error": "database_unavailable", "detail": MESSAGE}),
            status=503,
            content_type="application/json",
        )
    else:
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(conf.retry_after)
    response._has_been_logged = True  # type: ignore[attr-defined]  # see django.utils.log.log_response
    return response
