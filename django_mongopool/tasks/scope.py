"""A task's ``mongo_session`` with a request's guarantees: Celery tasks, Django tasks, any block.

A task runs in a scope of its own, the same
:class:`~django_mongopool.request.middleware.RequestSessions` a request runs in (one implementation):

- :func:`task_session` is the task's session, pymongo's real ``ClientSession`` of the shared
  client, built the first time the task uses it (a task that never touches MongoDB builds no
  session and no client) and ended when the task ends: it returns, raises, is retried, or hits
  a soft time limit;
- the client the task uses is pinned for the task: a settings change never closes it under it;
- sessions the task starts itself (``get_client().start_session()``) and leaves open are
  reported with the line that started them when the task ends (``MONGOPOOL_LEAKED_SESSIONS``;
  a warning or a log line even in ``"raise"`` mode when the framework ends the task: there is
  no response to fail);
- the figures count the task's session like a request's (sessions started / ended).

:mod:`django_mongopool.tasks.celery` and :mod:`django_mongopool.tasks.django_tasks` open
and close the scope from the frameworks' own signals; :func:`task_scope` does the same around
any block (a cron job, each item of a long command).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import Token
from typing import Any

from django_mongopool.client.process import get_config, process_counters
from django_mongopool.client.scope import RequestScope, current
from django_mongopool.guards.terminal import safe
from django_mongopool.request.middleware import RequestSessions
from django_mongopool.request.unavailable import log_unavailable_task, reason

logger = logging.getLogger("django_mongopool")


class TaskSessions(RequestSessions):
    """One task's scope and sessions: a request's (:class:`RequestSessions`), named for the task."""

    name = "a task"
    key: Any = None  # the framework's id of the task run (matched when it finishes)
    lazy: Any = None  # the task's mongo_session (built on first use)
    token: Token[RequestScope | None] | None = None

    def describe(self, request: Any) -> str:
        return self.name

    def close(self, may_raise: bool = False) -> None:
        """End the task's sessions (once) and leave its scope."""
        token, self.token = self.token, None
        try:
            self.end(None, may_raise)
        finally:
            if token is not None:
                _leave(self, token)


def _leave(scope: TaskSessions, token: Token[RequestScope | None]) -> None:
    try:
        current.reset(token)
    except (ValueError, RuntimeError):  # ended from another context than the one it began in
        if current.get() is scope:
            previous = token.old_value
            current.set(None if previous is Token.MISSING else previous)


def begin(name: str) -> TaskSessions:
    """Open a task's scope in the current context (the frameworks' "task started" signal).

    ``name`` is shown in leak reports and log lines (control characters escaped). End it with
    :meth:`TaskSessions.close` in the same context ("task finished").
    """
    scope = TaskSessions()
    scope.name = safe(name)
    scope.lazy = scope.lazy_session()
    scope.token = current.set(scope)
    return scope


def running() -> TaskSessions | None:
    """The scope of the task running in this context, if any."""
    scope = current.get()
    return scope if isinstance(scope, TaskSessions) and not scope.ended else None


def task_session() -> Any:
    """The running task's ``mongo_session``: pymongo's ``ClientSession`` of the shared client,
    built on first use and ended when the task ends."""
    scope = running()
    if scope is None:
        raise RuntimeError(
            "task_session() was used outside a task: call it from a Celery task or a Django "
            "task run by a worker, or inside `with task_scope(...)`."
        )
    return scope.lazy


async def atask_session() -> Any:
    """The running task's ``AsyncClientSession`` of this event loop's client (an async task),
    started on first use and ended when the task ends."""
    scope = running()
    if scope is None:
        raise RuntimeError(
            "atask_session() was used outside a task: await it in an async Django task, or "
            "inside `with task_scope(...)`."
        )
    return await scope.aget()


@contextlib.contextmanager
def task_scope(name: str = "a task") -> Iterator[Any]:
    """Run the block as a task: yields its ``mongo_session`` (also :func:`task_session`), ended
    when the block ends; sessions left open in it are reported then (raised in ``"raise"`` mode
    when the block itself did not raise)."""
    scope = begin(name)
    failed = False
    try:
        yield scope.lazy
    except BaseException:
        failed = True
        raise
    finally:
        scope.close(may_raise=not failed)


def report_unavailable(name: str, cause: BaseException, outcome: str) -> None:
    """A task met an error meaning "MongoDB cannot serve this now": counted (``unavailable_tasks``)
    and logged, one WARNING per 10 s at most, with pymongo's reason and what happens next."""
    process_counters().count("unavailable_tasks")
    log_unavailable_task(
        "MongoDB unavailable for %s: %s; %s",
        safe(name),
        reason(cause, get_config().secrets),
        outcome,
    )
