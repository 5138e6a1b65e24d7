from __future__ import annotations

import pytest
from django.core import checks

from django_mongopool.checks import MIDDLEWARE_PATH


def _ids(**kwargs) -> set[str]:
    return {m.id for m in checks.run_checks(tags=["django_mongopool"])}


def test_good_configuration_is_quiet():
    assert _ids() == set()


def test_e001_uri_missing(settings):
    del settings.MONGOPOOL_URI
    assert "django_mongopool.E001" in _ids()


def test_e002_middleware_missing(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    assert "django_mongopool.E002" in _ids()


def test_e003_middleware_twice(settings):
    settings.MIDDLEWARE = [MIDDLEWARE_PATH, *settings.MIDDLEWARE]
    assert "django_mongopool.E003" in _ids()


def test_every_message_has_a_hint(settings):
    del settings.MONGOPOOL_URI
    settings.MIDDLEWARE = []
    messages = checks.run_checks(tags=["django_mongopool"])
    assert messages and all(m.hint for m in messages)


@pytest.mark.django_db
def test_migrations_are_in_sync():
    from io import StringIO

    from django.core.management import call_command

    try:
        call_command(
            "makemigrations", "django_mongopool", "--check", "--dry-run", stdout=StringIO()
        )
    except SystemExit as exc:  # pragma: no cover - only when a migration is missing
        pytest.fail(f"django_mongopool needs a new migration ({exc})")
