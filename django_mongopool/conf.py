"""Lazy, typed access to the ``MONGOPOOL_*`` settings.

Every property reads ``django.conf.settings`` when it is used, so
``override_settings`` works and nothing is read at import time. Values are
returned as the user wrote them; :mod:`django_mongopool.options` validates them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

# Production defaults: a bounded pool and bounded waits everywhere, so a
# saturated pool or an unreachable server fails a request instead of hanging
# a worker. Keys use pymongo's spelling.
DEFAULT_CLIENT_OPTIONS: dict[str, Any] = {
    "maxPoolSize": 10,
    "minPoolSize": 0,
    "maxIdleTimeMS": 60_000,
    "maxConnecting": 2,
    "waitQueueTimeoutMS": 2_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 30_000,
    "serverSelectionTimeoutMS": 5_000,
    "appname": "django-mongopool",
}


class Settings:
    @property
    def MONGOPOOL_URI(self) -> Any:
        return getattr(settings, "MONGOPOOL_URI", None)

    @property
    def MONGOPOOL_DATABASE(self) -> Any:
        return getattr(settings, "MONGOPOOL_DATABASE", None)

    @property
    def MONGOPOOL_CLIENT_OPTIONS(self) -> Any:
        return getattr(settings, "MONGOPOOL_CLIENT_OPTIONS", {})

    @property
    def MONGOPOOL_RETRY_AFTER(self) -> Any:
        return getattr(settings, "MONGOPOOL_RETRY_AFTER", 5)

    @property
    def MONGOPOOL_TRANSACTION_TIMEOUT(self) -> Any:
        return getattr(settings, "MONGOPOOL_TRANSACTION_TIMEOUT", 10)

    @property
    def MONGOPOOL_PROCESSES(self) -> Any:
        return getattr(settings, "MONGOPOOL_PROCESSES", 1)

    @property
    def MONGOPOOL_SERVER_MAX_CONNECTIONS(self) -> Any:
        return getattr(settings, "MONGOPOOL_SERVER_MAX_CONNECTIONS", None)

    @property
    def MONGOPOOL_HEARTBEAT_SECONDS(self) -> Any:
        return getattr(settings, "MONGOPOOL_HEARTBEAT_SECONDS", 0)

    @property
    def MONGOPOOL_HEARTBEAT_COLLECTION(self) -> Any:
        return getattr(settings, "MONGOPOOL_HEARTBEAT_COLLECTION", "mongopool_heartbeats")

    @property
    def MONGOPOOL_METRICS_TOKEN(self) -> Any:
        return getattr(settings, "MONGOPOOL_METRICS_TOKEN", None)

    @property
    def MONGOPOOL_READINESS_TIMEOUT(self) -> Any:
        return getattr(settings, "MONGOPOOL_READINESS_TIMEOUT", 1.0)

    @property
    def MONGOPOOL_STRAY_CLIENTS(self) -> Any:
        return getattr(settings, "MONGOPOOL_STRAY_CLIENTS", "warn")

    @property
    def MONGOPOOL_ALLOWED_CLIENT_MODULES(self) -> Any:
        return getattr(settings, "MONGOPOOL_ALLOWED_CLIENT_MODULES", ())

    @property
    def MONGOPOOL_LEAKED_SESSIONS(self) -> Any:
        return getattr(settings, "MONGOPOOL_LEAKED_SESSIONS", "warn")

    @property
    def MONGOPOOL_COMMAND_METRICS(self) -> Any:
        return getattr(settings, "MONGOPOOL_COMMAND_METRICS", False)


conf = Settings()
