"""Settings for django-mongopool's own test suite.

MONGOPOOL_URI points at a closed port here; fixtures in conftest.py point it at
the real server (FerretDB, or MONGOPOOL_TEST_URL) for the tests that need one.
"""

SECRET_KEY = "django-mongopool-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_mongopool",
    "guestbook",
]

MIDDLEWARE = [
    "django_mongopool.middleware.MongoSessionMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

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

MONGOPOOL_URI = "mongodb://127.0.0.1:9/mongopool_test"
MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 1500, "waitQueueTimeoutMS": 1000}

# Django 6.1 replaces EMAIL_BACKEND by MAILERS and warns (an error here) when a project sends
# e-mail without it; earlier Djangos ignore the setting. The error e-mail tests send to ADMINS.
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
