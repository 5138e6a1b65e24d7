# Celery's Django layout: the app is loaded with Django, so @shared_task uses it.
from example_project.celery import app as celery_app

__all__ = ("celery_app",)
