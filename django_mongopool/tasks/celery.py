"""Celery: every task runs in a task scope, outages become retries with backoff, and every
worker process is in the fleet.

``AppConfig.ready()`` installs this when Celery has been imported by then (a Celery worker
always has; so has a web process whose project imports its Celery app from its package's
``__init__.py``, as Celery's Django layout does), unless ``MONGOPOOL_TASK_INTEGRATION`` is
False. Only Celery's public signals are used:

- ``task_prerun`` / ``task_postrun`` (every traced run: in a worker, ``apply()``, eager mode):
  the task's scope (:mod:`django_mongopool.tasks.scope`). ``task_session()`` and, in a bound
  task, ``self.request.mongo_session`` are its session. Celery sends ``task_postrun`` whatever
  the outcome (returned, raised, ``self.retry()``, ``SoftTimeLimitExceeded``); a hard time
  limit kills the child process, and its connections close with it.
- ``worker_init`` (the worker's main process, before its pool starts): the process is a
  worker, and the ``run`` of each task registered by then is wrapped so that an error meaning
  "MongoDB cannot serve this now" (:func:`~django_mongopool.request.unavailable.unavailable_cause`:
  ``ConnectionFailure``, a check-out or server-selection timeout) becomes ``self.retry()`` after
  a backoff instead of a failure: ``MONGOPOOL_RETRY_AFTER`` seconds doubled at each retry, up to
  the task's ``retry_backoff_max``, half of it jittered, at most the task's ``max_retries``
  times (then the task fails with the error). A task's own ``autoretry_for`` handles its errors
  first. Prefork children inherit the wrapped tasks: Celery builds their tracers after the fork.
- ``worker_process_init`` (each prefork child when it starts, and the solo pool's worker):
  the process starts its heartbeats and takes its share of ``MONGOPOOL_FLEET_BUDGET`` whether
  or not it ever runs a task. Other pools (threads, gevent) join at their first task. A child
  never uses a client built before the fork: the app's fork hook (``os.register_at_fork``,
  which billiard's fork runs) makes it build its own.
"""

from __future__ import annotations

import functools
import random
import sys
from typing import Any

from django_mongopool.conf import conf
from django_mongopool.fleet import heartbeat, roles
from django_mongopool.request.unavailable import unavailable_cause
from django_mongopool.tasks import fleet
from django_mongopool.tasks.scope import begin, report_unavailable, running

BACKOFF_CEILING = 600.0  # Celery's own default retry_backoff_max


def backoff(retries: int, ceiling: float = BACKOFF_CEILING) -> float:
    """Seconds before retry number ``retries + 1``: ``MONGOPOOL_RETRY_AFTER`` doubled per retry,
    at most ``ceiling``; the upper half is random so that the workers of a fleet do not all come
    back at once, the lower half keeps them away for a while (never an immediate retry)."""
    base = min(float(ceiling), conf.retry_after * 2.0 ** min(max(retries, 0), 32))
    return base / 2 + random.uniform(0, base / 2)


def retry_on_outage(task: Any) -> None:
    """Wrap ``task.run``: an error meaning "MongoDB cannot serve this now" becomes a retry."""
    if str(getattr(task, "name", "")).startswith("celery.") or hasattr(task, "_mongopool_run"):
        return  # Celery's own tasks use no MongoDB; a task is wrapped once
    from celery.exceptions import TaskPredicate

    run = task.run

    @functools.wraps(run)
    def run_or_retry(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except TaskPredicate:  # Retry, Ignore, Reject: Celery's own outcomes
            raise
        except Exception as exc:
            cause = unavailable_cause(exc)
            if cause is None:
                raise
            retries = task.request.retries or 0
            limit = task.max_retries
            name = f"Celery task {task.name}[{task.request.id}]"
            if limit is not None and retries >= limit:
                report_unavailable(name, cause, f"failed after {retries} retries")
                raise
            countdown = backoff(retries, getattr(task, "retry_backoff_max", BACKOFF_CEILING))
            of = "" if limit is None else f" of {limit}"
            report_unavailable(name, cause, f"retry {retries + 1}{of} in {countdown:.1f} s")
            raise task.retry(exc=exc, countdown=countdown) from exc

    task._mongopool_run = run
    task.run = run_or_retry


def _task_prerun(task: Any = None, task_id: Any = None, **kwargs: Any) -> None:
    if task is None or not conf.task_integration:
        return
    if not heartbeat.running_here and roles.current() == roles.WORKER:
        fleet.start_worker()  # threads and gevent pools: at the first task
    scope = begin(f"Celery task {getattr(task, 'name', '?')}[{task_id}]")
    scope.key = task_id
    request = getattr(task, "request", None)
    if request is not None:
        request.mongo_session = scope.lazy


def _task_postrun(task_id: Any = None, **kwargs: Any) -> None:
    scope = running()
    if scope is not None and scope.key == task_id:
        scope.close()


def _worker_init(sender: Any = None, **kwargs: Any) -> None:
    if not conf.task_integration:
        return
    roles.set_role(roles.WORKER)
    app = getattr(sender, "app", None)
    for task in list(getattr(app, "tasks", {}).values()):
        retry_on_outage(task)


def _worker_process_init(**kwargs: Any) -> None:
    if conf.task_integration:
        fleet.start_worker()


def install() -> bool:
    """Connect the receivers (once); False when Celery is not imported in this process."""
    if "celery" not in sys.modules:
        return False
    try:
        from celery import signals
    except ImportError:
        return False
    for signal, receiver in (
        (signals.task_prerun, _task_prerun),
        (signals.task_postrun, _task_postrun),
        (signals.worker_init, _worker_init),
        (signals.worker_process_init, _worker_process_init),
    ):
        signal.connect(receiver, weak=False, dispatch_uid=f"django_mongopool.{receiver.__name__}")
    return True
