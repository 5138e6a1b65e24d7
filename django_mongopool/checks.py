"""System checks (``django_mongopool.E0xx`` errors, ``W0xx`` warnings). No network I/O.

Ids are never reused; every id is listed in the README.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from django_mongopool.conf import conf

MIDDLEWARE_PATH = "django_mongopool.middleware.MongoSessionMiddleware"


@checks.register("django_mongopool")
def check_uri(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not conf.MONGOPOOL_URI:
        return [
            checks.Error(
                "MONGOPOOL_URI is not set, so django-mongopool has no server to connect to.",
                hint="Set MONGOPOOL_URI to a connection string such as mongodb://host:27017/dbname.",
                id="django_mongopool.E001",
            )
        ]
    return []


@checks.register("django_mongopool")
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    count = middleware.count(MIDDLEWARE_PATH)
    if count == 0:
        return [
            checks.Error(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE, so request.mongo_session does not exist "
                "and no request session is ended for you.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE.",
                id="django_mongopool.E002",
            )
        ]
    if count > 1:
        return [
            checks.Error(
                f"{MIDDLEWARE_PATH} is listed {count} times in MIDDLEWARE; the inner copy would "
                "replace request.mongo_session and the outer session would never be used.",
                hint="Keep exactly one entry.",
                id="django_mongopool.E003",
            )
        ]
    return []
