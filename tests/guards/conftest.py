"""Shared by the guards' tests: the error e-mails a 500 sends."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import django
import pytest
from django.core import mail
from django.utils.log import AdminEmailHandler

from tests.helpers import ADMINS


@pytest.fixture
def error_mails(settings) -> Iterator[list[mail.EmailMessage]]:
    """The ADMINS e-mails of the test's 500s: Django's own (text) and one with the HTML page
    (``AdminEmailHandler(include_html=True)``), in the order they are sent."""
    if django.VERSION >= (6, 1):  # Django 6.1 deprecates sending without MAILERS
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    settings.DEBUG = False
    settings.ADMINS = ADMINS
    mail.outbox = []
    with_html = AdminEmailHandler(include_html=True)
    logger = logging.getLogger("django.request")
    logger.addHandler(with_html)
    try:
        yield mail.outbox
    finally:
        logger.removeHandler(with_html)
        mail.outbox = []
