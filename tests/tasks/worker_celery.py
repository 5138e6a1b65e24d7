"""The Celery app of the worker tests (``celery -A tests.tasks.worker_celery worker``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.tasks.worker_settings")

from celery import Celery, signals  # noqa: E402

app = Celery("mongopool_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = ["tests.tasks.worker_tasks"]


@signals.worker_init.connect
def _parent_uses_mongodb(**kwargs):
    """With MONGOPOOL_TEST_PARENT_PING, the worker's main process uses MongoDB before it forks
    its pool (the case prefork children must survive)."""
    if os.environ.get("MONGOPOOL_TEST_PARENT_PING"):
        from django_mongopool import get_client

        get_client().admin.command("ping")
