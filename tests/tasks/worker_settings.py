"""Settings of the worker processes the worker tests start (Celery and Django's tasks).

Everything that differs between runs comes from the environment the test sets: the servers,
the database, the budget. Workers are separate processes, so nothing here touches the test
process's own settings.
"""

import os

import django

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as _BASE_APPS

MONGOPOOL_URI = os.environ.get("MONGOPOOL_URI", "mongodb://127.0.0.1:9/mongopool_test")
MONGOPOOL_DATABASE = os.environ.get("MONGOPOOL_DATABASE", "mongopool_test")
MONGOPOOL_CLIENT_OPTIONS = {
    "maxPoolSize": 5,
    "serverSelectionTimeoutMS": 5000,
    "waitQueueTimeoutMS": 5000,
    "appname": "mongopool-worker-tests",
}
MONGOPOOL_HEARTBEAT_SECONDS = 1
MONGOPOOL_FLEET_BUDGET = (
    int(os.environ["MONGOPOOL_FLEET_BUDGET"]) if os.environ.get("MONGOPOOL_FLEET_BUDGET") else None
)
MONGOPOOL_RETRY_AFTER = 1  # the first retry after an outage comes 0.5 to 1 s later
# kombu's MongoDB transport (the tests' Celery broker) builds its own client.
MONGOPOOL_ALLOWED_CLIENT_MODULES = ["kombu"]

INSTALLED_APPS = [
    *_BASE_APPS,
    *(["django_tasks"] if django.VERSION < (6, 0) else []),  # Django 6 has django.tasks
    "django_tasks_db",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("WORKER_SQLITE", ":memory:"),
        "OPTIONS": {"timeout": 30},
    }
}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.1}
CELERY_TASK_ACKS_LATE = True  # a task is acknowledged when it has run...
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ...and requeued when its child was killed
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_LOST_WAIT = 1.0  # a killed child's task is requeued 1 s later (default 10 s)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django_mongopool": {"handlers": ["stderr"], "level": "INFO"}},
}
