"""``manage.py test`` with MongoDB isolated: Django's own command, run on a test server and
``test_<name>`` (see :mod:`django_mongopool.testing.isolation`).

An app's command of the same name replaces Django's, as ``django.contrib.staticfiles`` does for
``runserver``: the isolation wraps whatever ``TEST_RUNNER`` is configured, with no change to the
project's settings and nothing patched in Django (a runner setting, or a wrapper around
``DiscoverRunner``, would need a line in the project's settings, or a patch, and would miss
custom runners). An app listed before ``django_mongopool`` in ``INSTALLED_APPS`` with a ``test``
command of its own takes precedence.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.test import Command as DjangoTestCommand
from django.test.runner import get_max_test_processes

from django_mongopool.testing import explain_missing_sessions
from django_mongopool.testing.ferretdb import FerretDBUnavailable
from django_mongopool.testing.isolation import Isolation


def _processes(parallel: Any) -> int:
    if parallel == "auto":
        return get_max_test_processes()
    try:
        return int(parallel or 1)
    except (TypeError, ValueError):
        return 1


class Command(DjangoTestCommand):
    help = (
        DjangoTestCommand.help + " MongoDB (django-mongopool) runs on a test server and "
        "test_<name>: MONGOPOOL_TEST_URL's server, else a FerretDB started for the run."
    )

    def handle(self, *test_labels: Any, **options: Any) -> None:
        processes = _processes(options.get("parallel"))
        if processes > 1 and multiprocessing.get_start_method() != "fork":
            raise CommandError(
                "django-mongopool keeps parallel test workers on the test database only when they "
                f"are forked, and this platform starts them with {multiprocessing.get_start_method()!r}: "
                "a spawned worker would read MONGOPOOL_URI from your settings. Run without "
                "--parallel."
            )
        with (
            Isolation(os.environ.get("MONGOPOOL_TEST_URL")) as isolation,
            explain_missing_sessions(),
        ):
            if processes > 1:
                try:
                    isolation.start_now()  # forked workers use the server their parent started
                except FerretDBUnavailable as exc:
                    raise CommandError(str(exc)) from exc
            super().handle(*test_labels, **options)
