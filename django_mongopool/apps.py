"""``AppConfig.ready()``: validate settings, register checks, signals, fork and exit hooks (once)."""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started, setting_changed

from django_mongopool.guards import forks

_hooks_lock = threading.Lock()
_hooks_installed = False


@forks.in_child
def _fresh_hooks_lock_in_child() -> None:
    """In a forked child: the lock may have been held by another thread at fork time."""
    global _hooks_lock
    _hooks_lock = threading.Lock()


def settings_changed(*, setting: str, **kwargs: Any) -> None:
    """Drop cached settings; a change to a client setting retires the clients."""
    from django_mongopool.client import event_loops, process
    from django_mongopool.conf import CLIENT_SETTINGS, SETTINGS, conf
    from django_mongopool.fleet import shares
    from django_mongopool.guards import stray

    if setting not in SETTINGS:
        return
    conf.clear(setting)
    if setting in CLIENT_SETTINGS:
        process.reset_client()
        event_loops.reset_async_clients()
        shares.forget()
    if setting == "MONGOPOOL_STRAY_CLIENTS":
        stray.sync_with_settings()


def install_process_hooks() -> None:
    """Fork and exit hooks, registered once per interpreter however often ready() runs."""
    global _hooks_installed
    from django_mongopool.client import process
    from django_mongopool.fleet import heartbeat

    with _hooks_lock:
        if _hooks_installed:
            return
        # Every module registers what it forgets in a forked child (guards.forks): one hook
        # runs them all.
        os.register_at_fork(before=forks.run_before, after_in_child=forks.run_in_child)
        atexit.register(process.close_clients)
        # atexit runs the last registered first: the heartbeat thread stops before the
        # clients it writes with are closed.
        atexit.register(heartbeat.stop_at_exit)
        _hooks_installed = True


def install_task_integrations() -> None:
    """Celery's and Django's tasks framework's hooks, unless MONGOPOOL_TASK_INTEGRATION is False
    (then nothing is connected); each is connected once, whatever calls this."""
    from django_mongopool.conf import conf
    from django_mongopool.tasks import celery, django_tasks

    if conf.task_integration:
        celery.install()  # when the project's Celery app has been imported
        django_tasks.install()  # Django 6's django.tasks, or the django-tasks backport


class MongoPoolConfig(AppConfig):
    name = "django_mongopool"
    verbose_name = "MongoDB connection pool"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django_mongopool import checks
        from django_mongopool.client import pymongo_internals
        from django_mongopool.conf import conf
        from django_mongopool.fleet import heartbeat
        from django_mongopool.guards import error_reports, stray

        pymongo_internals.verify()  # pymongo internals checked once; what moved: checks E010, W010-W015
        checks.register()
        install_process_hooks()
        error_reports.install()  # credentials out of Django's error pages and e-mails
        setting_changed.connect(settings_changed, dispatch_uid="django_mongopool.settings_changed")
        request_started.connect(
            heartbeat.on_request_started, dispatch_uid="django_mongopool.heartbeat"
        )
        # A missing URI is reported by system check E001 instead of failing every
        # manage.py command; anything malformed raises ImproperlyConfigured here.
        conf.validate_all()
        stray.sync_with_settings()
        install_task_integrations()
