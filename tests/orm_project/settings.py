"""A project whose default database is ``ENGINE: "django_mongopool.backends.mongodb"``.

Run in subprocesses by tests/test_orm_backend_server.py (the main suite's default database
is SQLite). ``ORM_TEST_URL`` points the app at the test server, ``ORM_TEST_DB`` names the
database. django_mongopool and the small ``ormapp`` live on the MongoDB default database; the
contrib apps are routed to SQLite, because their migrations create partial indexes, which
FerretDB does not implement (on real MongoDB they would use django-mongodb-backend's
ObjectIdAutoField app configs and migrations).
"""

import os

SECRET_KEY = "orm-project-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "tests.orm_project.urls"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_mongopool",
    "tests.orm_project.ormapp",
]
MIDDLEWARE = [
    "django_mongopool.middleware.MongoSessionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

# ORM_ENGINE=django_mongodb_backend: the stock engine, with its own client, for comparison.
STOCK = os.environ.get("ORM_ENGINE") == "django_mongodb_backend"
DATABASES = {
    "default": (
        {
            "ENGINE": "django_mongodb_backend",
            "HOST": os.environ.get("ORM_TEST_URL", ""),
            "NAME": os.environ.get("ORM_TEST_DB", "orm_project"),
            "OPTIONS": {"maxPoolSize": int(os.environ.get("ORM_POOL", "5"))},
        }
        if STOCK
        else {"ENGINE": "django_mongopool.backends.mongodb"}
    ),
    "sql": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("ORM_SQLITE", ":memory:"),
    },
}
DATABASE_ROUTERS = ["tests.orm_project.routers.ContribToSQLite"]

MONGOPOOL_URI = os.environ.get("ORM_TEST_URL", "mongodb://127.0.0.1:9/")
MONGOPOOL_DATABASE = os.environ.get("ORM_TEST_DB", "orm_project")
MONGOPOOL_CLIENT_OPTIONS = {
    "maxPoolSize": int(os.environ.get("ORM_POOL", "5")),
    "serverSelectionTimeoutMS": 2000,
    "waitQueueTimeoutMS": 30000,
}
MONGOPOOL_STRAY_CLIENTS = os.environ.get("ORM_STRAY", "raise")
