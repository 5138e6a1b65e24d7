"""The example project's Celery app (``celery -A example_project worker``; set CELERY_BROKER_URL).

Nothing in it is about MongoDB: django-mongopool hooks into Celery by itself.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
