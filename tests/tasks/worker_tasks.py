"""Tasks the worker tests run, for Celery and for Django's tasks framework alike.

Every write is idempotent by the task's key (an upsert), so a task that runs twice (its
child was killed mid-task and the message redelivered) leaves one document; ``runs`` logs
each run with the process that ran it, which the tests compare with that process's session
counters.
"""

from __future__ import annotations

import os
import time

import pymongo
from celery import shared_task
from django.db import transaction

from django_mongopool import get_client, get_database
from django_mongopool.client.process import _process
from django_mongopool.tasks.scope import task_session

try:
    from django.tasks import task as django_task  # Django 6
except ImportError:
    from django_tasks import task as django_task  # the backport on Django 5.2


def store(key: str) -> None:
    """Two writes on the task's session: the result (by key) and a log of this run."""
    session = task_session()
    db = get_database()
    db["results"].update_one(
        {"_id": key},
        {"$inc": {"runs": 1}, "$set": {"pid": os.getpid()}},
        upsert=True,
        session=session,
    )
    db["runs"].insert_one({"key": key, "pid": os.getpid()}, session=session)


def victim(key: str) -> None:
    """Says which process runs it, then waits to be killed; run again afterwards, it stores."""
    session = task_session()
    db = get_database()
    db["markers"].update_one(
        {"_id": "victim"}, {"$setOnInsert": {"pid": os.getpid()}}, upsert=True, session=session
    )
    deadline = time.monotonic() + 60
    while db["markers"].find_one({"_id": "killed"}, session=session) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the test never killed this process")
        time.sleep(0.05)
    store(key)


@shared_task(name="mongopool_tests.store", bind=True)
def celery_store(self, key: str) -> None:
    store(key)


@shared_task(name="mongopool_tests.victim", bind=True)
def celery_victim(self, key: str) -> None:
    victim(key)


@shared_task(name="mongopool_tests.flaky", bind=True, max_retries=3)
def celery_flaky(self, key: str) -> None:
    """The first run meets a real pymongo timeout (MongoDB cannot serve this in time)."""
    db = get_database()
    db["attempts"].insert_one({"key": key, "retries": self.request.retries, "at": time.time()})
    if self.request.retries == 0:
        with pymongo.timeout(1e-6):
            db["unreachable"].find_one({})
    store(key)


@shared_task(name="mongopool_tests.slow", bind=True, soft_time_limit=1)
def celery_slow(self, key: str) -> None:
    """Uses its session, then runs past its soft time limit (SoftTimeLimitExceeded)."""
    store(key)
    time.sleep(30)


@shared_task(name="mongopool_tests.whose_client", bind=True)
def celery_whose_client(self, key: str) -> None:
    """Records whether this process uses a client of its own or one built before the fork."""
    client = get_client()
    get_database()["clients"].replace_one(
        {"_id": key},
        {
            "pid": os.getpid(),
            "inherited": len(_process.inherited),
            "own": all(client is not old for old in _process.inherited),
            "connected_before_fork": _process.connected_before_fork,
        },
        upsert=True,
        session=task_session(),
    )


@django_task()
def django_store(key: str) -> None:
    store(key)


@django_task()
def django_victim(key: str) -> None:
    victim(key)


def enqueue_django(count: int) -> None:
    """Enqueue the victim, then ``count`` stores (run in a process with the worker settings)."""
    with transaction.atomic():  # one commit: the workers see them all at once
        django_victim.enqueue("victim")
        for n in range(count):
            django_store.enqueue(f"task-{n}")
