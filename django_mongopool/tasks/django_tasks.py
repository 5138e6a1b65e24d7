"""Django's tasks framework (``django.tasks`` on Django 6, the ``django-tasks`` backport on 5.2):
every task runs in a task scope, and a worker process is in the fleet.

``AppConfig.ready()`` installs this when the framework is there (Django 6; the backport
when it is in ``INSTALLED_APPS``) unless ``MONGOPOOL_TASK_INTEGRATION`` is False. It uses the framework's
own signals, which every backend that runs tasks sends around each run:

- ``task_started`` / ``task_finished``: the task's scope (:mod:`django_mongopool.tasks.scope`);
  ``task_session()`` (``await atask_session()`` in an async task) is its session, ended when
  the task returns or raises.
- A task run by a backend that runs tasks elsewhere (a worker process, such as
  django-tasks-db's ``manage.py db_worker``) makes its process a worker: at its first task the
  process starts its heartbeats and takes its share of ``MONGOPOOL_FLEET_BUDGET``. The
  immediate backend runs tasks inside the request or command that enqueues them: the process
  keeps its role.
- Errors meaning "MongoDB cannot serve this now": the framework records them on the task's
  result (status FAILED, ``errors[-1].exception_class_path`` naming pymongo's class) and has no
  retries, so the app does not change the outcome; it counts the task (``unavailable_tasks``)
  and logs one WARNING per 10 s at most with pymongo's reason. Enqueue the task again when the
  database is back (the writes of a task that may run twice should be idempotent).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

from django_mongopool.conf import conf
from django_mongopool.fleet import heartbeat
from django_mongopool.request.unavailable import unavailable_cause
from django_mongopool.tasks import fleet
from django_mongopool.tasks.scope import begin, report_unavailable, running

# The framework's modules: Django's own first, then the backport (both may be installed).
FRAMEWORKS = ("django.tasks", "django_tasks")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that is missing
        return False


def frameworks() -> list[str]:
    """The tasks frameworks in use here: Django's own when it has one; the backport when it
    has been imported (Django imports it at start-up when it is in ``INSTALLED_APPS``, as the
    backport and its backends ask)."""
    return [
        name
        for name in FRAMEWORKS
        if name in sys.modules or (name.startswith("django.") and _importable(name))
    ]


def _inline(backend: Any) -> bool:
    """True for the immediate backend: it runs the task in the process that enqueued it."""
    return getattr(backend, "__name__", "") == "ImmediateBackend"


def _name(task_result: Any) -> str:
    task = getattr(task_result, "task", None)
    return f"task {getattr(task, 'module_path', '?')}[{getattr(task_result, 'id', '?')}]"


def _task_started(sender: Any = None, task_result: Any = None, **kwargs: Any) -> None:
    if task_result is None or not conf.task_integration:
        return
    if not _inline(sender) and not heartbeat.running_here:
        fleet.start_worker()
    scope = begin(_name(task_result))
    scope.key = getattr(task_result, "id", None)


def _task_finished(sender: Any = None, task_result: Any = None, **kwargs: Any) -> None:
    scope = running()
    if scope is None or scope.key != getattr(task_result, "id", None):
        return
    try:
        # The backends send task_finished while they handle the task's exception.
        error = sys.exception()
        cause = None if error is None else unavailable_cause(error)
        if cause is not None and str(getattr(task_result, "status", "")) == "FAILED":
            report_unavailable(
                _name(task_result), cause, "the task failed (Django's tasks are not retried)"
            )
    finally:
        scope.close()


def _signals(framework: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"{framework}.signals")
    except ImportError:
        return None


def install() -> bool:
    """Connect the receivers to every importable framework's signals (once)."""
    installed = False
    for framework in frameworks():
        signals = _signals(framework)
        started = getattr(signals, "task_started", None)
        finished = getattr(signals, "task_finished", None)
        if started is None or finished is None:
            continue
        started.connect(_task_started, dispatch_uid=f"django_mongopool.{framework}.started")
        finished.connect(_task_finished, dispatch_uid=f"django_mongopool.{framework}.finished")
        installed = True
    return installed
