"""Example project settings, read from the environment with django-environ.

MONGODB_URL is required. ./scripts/demo sets it to a FerretDB it starts when
you have not set one; this module itself never starts anything.
"""

from importlib.util import find_spec
from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="example-only-insecure-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongopool",
    # Django's tasks framework: Django 6 has it; on 5.2 the django-tasks backport, if installed.
    *(["django_tasks"] if django.VERSION < (6, 0) and find_spec("django_tasks") else []),
    "guestbook",
]

MIDDLEWARE = [
    "django_mongopool.middleware.MongoSessionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's CSS without a separate web server
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
ASGI_APPLICATION = "example_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# Django's own tables (users, admin sessions) stay in SQLite; the guestbook lives in MongoDB.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}

# Static files (the admin's and the pool page's CSS and JavaScript) are served by WhiteNoise from
# the web process itself: under gunicorn nothing else serves them. In production run
# `manage.py collectstatic` into STATIC_ROOT and set WHITENOISE_USE_FINDERS=false; the demo
# serves them straight from the apps (no collectstatic needed).
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
USE_TZ = True
TIME_ZONE = "UTC"

MONGOPOOL_URI = env("MONGODB_URL")
MONGOPOOL_DATABASE = env("MONGODB_DATABASE", default="guestbook")
MONGOPOOL_CLIENT_OPTIONS = {
    "maxPoolSize": env.int("MONGODB_MAX_POOL_SIZE", default=10),
    "waitQueueTimeoutMS": env.int("MONGODB_WAIT_QUEUE_TIMEOUT_MS", default=2000),
    "serverSelectionTimeoutMS": env.int("MONGODB_SERVER_SELECTION_TIMEOUT_MS", default=5000),
    "connectTimeoutMS": env.int("MONGODB_CONNECT_TIMEOUT_MS", default=5000),
    "socketTimeoutMS": env.int("MONGODB_SOCKET_TIMEOUT_MS", default=30000),
    "appname": env("MONGODB_APPNAME", default="guestbook"),
}
# Lets a Prometheus scraper (or the reliability tests) read /mongopool/metrics.
MONGOPOOL_METRICS_TOKEN = env("MONGOPOOL_METRICS_TOKEN", default=None)
# Fleet heartbeats (seen by manage.py mongo_connections and the pool page); 0 turns them off.
MONGOPOOL_HEARTBEAT_SECONDS = env.float("MONGODB_HEARTBEAT_SECONDS", default=10)
# How many web processes the deployment runs in all (for the fleet connection budget).
MONGOPOOL_PROCESSES = env.int("WEB_PROCESSES", default=1)
MONGOPOOL_SERVER_MAX_CONNECTIONS = env.int("MONGODB_SERVER_MAX_CONNECTIONS", default=None)
# Connections per server all live web processes may hold together (unset: no fleet budget).
MONGOPOOL_FLEET_BUDGET = env.int("MONGODB_FLEET_BUDGET", default=None)

# Background tasks (docs/workers.md, "Workers and commands"). Celery: `celery -A example_project worker`
# with the broker CELERY_BROKER_URL names; tasks are acknowledged once they have run, and
# requeued if their worker dies. Without a broker, Celery runs a task where it is called.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=None)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Django's tasks framework: the immediate backend runs a task where it is enqueued; a worker
# backend (django-tasks-db's DatabaseBackend and `manage.py db_worker`) runs it elsewhere.
if django.VERSION >= (6, 0) or "django_tasks" in INSTALLED_APPS:
    _TASKS = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
    TASKS = {"default": {"BACKEND": f"{_TASKS}.backends.immediate.ImmediateBackend"}}
