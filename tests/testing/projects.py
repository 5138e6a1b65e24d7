"""The small Django projects the plugin's tests run in a fresh pytest process (pytester)."""

from __future__ import annotations


def project_settings(uri: str | None = "mongodb://127.0.0.1:9/unused", *, urls: bool = True) -> str:
    """``proj_settings.py``: the app and its middleware on SQLite; ``uri`` the configured
    MONGOPOOL_URI (None: unset), ``urls`` whether ``proj_urls`` is the URLconf."""
    lines = [
        'SECRET_KEY = "x"',
        'INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_mongopool"]',
        'MIDDLEWARE = ["django_mongopool.middleware.MongoSessionMiddleware"]',
        'ROOT_URLCONF = "proj_urls"' if urls else "",
        'DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}',
        f"MONGOPOOL_URI = {uri!r}" if uri is not None else "",
        "USE_TZ = True",
    ]
    return "\n" + "\n".join(line for line in lines if line) + "\n"
