"""The guestbook's background task: sign the book from a worker.

One function, registered with Celery (``celery_sign_later.delay(...)``, run by
``celery -A example_project worker``) and with Django's tasks framework
(``sign_later.enqueue(...)``), the way a project would use either. Like the views, it uses
only ``get_database()`` and its session, ``task_session()``: built when the task first uses
it, ended when the task ends, whatever happens. It writes by the entry's id, so a task that
runs twice (its worker was killed and the message redelivered) signs once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from celery import shared_task

from django_mongopool import get_database
from django_mongopool.tasks.scope import task_session

try:
    from django.tasks import task  # Django 6
except ImportError:
    from django_tasks import task  # the django-tasks backport on Django 5.2


def sign(entry_id: str, name: str, message: str) -> bool:
    """Sign the book once as ``entry_id``; True if this run signed it."""
    result = get_database()["entries"].update_one(
        {"_id": entry_id},
        {"$setOnInsert": {"name": name, "message": message, "created_at": datetime.now(UTC)}},
        upsert=True,
        session=task_session(),
    )
    return result.upserted_id is not None


@shared_task(acks_late=True, reject_on_worker_lost=True)
def celery_sign_later(entry_id: str, name: str, message: str) -> bool:
    return sign(entry_id, name, message)


@task()
def sign_later(entry_id: str, name: str, message: str) -> bool:
    return sign(entry_id, name, message)
