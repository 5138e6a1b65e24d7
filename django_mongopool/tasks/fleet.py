"""Processes that serve no web requests in the fleet: task workers and long commands.

A web process joins the fleet (heartbeats, its share of ``MONGOPOOL_FLEET_BUDGET``) on its
first request. A worker process serves none, so the task integrations call
:func:`start_worker` instead: a Celery worker's processes when they start (each prefork
child, or the worker itself with the solo pool), a Django tasks worker when it runs its first
task. A long management command or cron job joins with :func:`join_fleet`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pymongo
from pymongo.errors import PyMongoError

from django_mongopool.client.process import active_test_clients
from django_mongopool.fleet import heartbeat, roles

logger = logging.getLogger("django_mongopool")


def start_worker() -> heartbeat.Publisher | None:
    """This process is a worker: its heartbeats say so, and it takes its share of the budget
    now (the background thread starts once; never while a test client replaces the real one)."""
    roles.set_role(roles.WORKER)
    if active_test_clients() is not None:
        return None
    return heartbeat.ensure_started()


@contextlib.contextmanager
def join_fleet(role: str = roles.COMMAND) -> Iterator[heartbeat.Publisher | None]:
    """Count this process in the fleet while the block runs (also a decorator).

    Its heartbeats carry ``role`` (``"command"`` by default; ``"worker"`` for a home-made
    worker loop), and under ``MONGOPOOL_FLEET_BUDGET`` its pools are held to its share. When
    the block ends, a publisher it started is stopped and its heartbeat removed, so the others
    stop counting it at once instead of after three intervals.
    """
    previous = roles.current() if roles.is_set() else None
    roles.set_role(role)
    already = heartbeat.running_here
    publisher = None if active_test_clients() is not None else heartbeat.ensure_started()
    try:
        yield publisher
    finally:
        if publisher is not None and not already:
            heartbeat.stop()
            _remove_beat(publisher)
        roles.set_role(previous)


def _remove_beat(publisher: heartbeat.Publisher) -> None:
    if not publisher.beats:
        return
    try:
        with pymongo.timeout(5):
            heartbeat.collection().delete_one({"_id": publisher.beat_id})
    except PyMongoError as exc:  # it expires after three intervals anyway
        logger.warning("Could not remove this process's heartbeat: %s", type(exc).__name__)
