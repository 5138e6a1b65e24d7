from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed

# Settings read at use time; changing them needs no new client.
_LIVE_SETTINGS = {
    "MONGOPOOL_STRAY_CLIENTS",
    "MONGOPOOL_ALLOWED_CLIENT_MODULES",
    "MONGOPOOL_LEAKED_SESSIONS",
    "MONGOPOOL_METRICS_TOKEN",
}


def _settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("MONGOPOOL_"):
        from django_mongopool import stray
        from django_mongopool.client import reset_client

        if setting not in _LIVE_SETTINGS:
            from django_mongopool.async_client import reset_async_clients

            reset_client()
            reset_async_clients()
        stray.sync_with_settings()


class MongoPoolConfig(AppConfig):
    name = "django_mongopool"
    verbose_name = "MongoDB connection pool"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django_mongopool import (
            checks,  # noqa: F401  (registers the system checks)
            stray,
        )
        from django_mongopool.client import build_client
        from django_mongopool.conf import conf

        setting_changed.connect(_settings_changed, dispatch_uid="django_mongopool.settings_changed")
        # A missing URI is reported by system check E001 instead of failing every
        # manage.py command; anything malformed raises ImproperlyConfigured here.
        if conf.MONGOPOOL_URI:
            build_client()
        stray.sync_with_settings()
