# Celery's Django layout: the app is loaded with Django, so @shared_task uses it (and
# django-mongopool hooks into Celery). The guestbook runs without Celery installed too.
try:
    from example_project.celery import app as celery_app
except ImportError:  # pragma: no cover - Celery is optional
    celery_app = None

__all__ = ("celery_app",)
