"""Shared by the guards' tests."""

from __future__ import annotations

from collections.abc import Iterator

import django
import pytest
from django.core import mail


@pytest.fixture
def outbox(settings) -> Iterator[list[mail.EmailMessage]]:
    if django.VERSION >= (6, 1):  # Django 6.1 deprecates sending without MAILERS
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    mail.outbox = []
    yield mail.outbox
    mail.outbox = []
