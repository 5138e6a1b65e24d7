"""A real SCRAM-SHA-256 failure with a non-ASCII password: Django's reports show no form of it.

The TLS + SCRAM server refuses the configured (wrong, non-ASCII) password, so the 500's
traceback runs through pymongo's real ``_authenticate_scram`` frame, whose locals hold the
password's UTF-8 bytes and the keys derived from it.
"""

from __future__ import annotations

import pytest
from django.test import Client

from django_mongopool.pytest_plugin import SecureMongoServer
from tests.guards.spellings import assert_hidden
from tests.helpers import with_password

pytestmark = [pytest.mark.server, pytest.mark.django_db]

WRONG = "Wrøng-pässwörd-€-ﬁ"


@pytest.fixture
def wrong_password(mongopool_secure_server: SecureMongoServer, settings) -> None:
    settings.MONGOPOOL_URI = with_password(mongopool_secure_server.url, WRONG)
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 3000}
    settings.MONGOPOOL_DATABASE = "redaction"


@pytest.mark.urls("tests.failure_urls")
def test_debug_page_after_a_refused_non_ascii_password(settings, wrong_password):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    page = client.get("/h/query/")
    assert page.status_code == 500
    shown = page.content.decode()
    assert "Authentication failed" in shown
    assert "_authenticate_scram" in shown and "salted_pass" in shown  # pymongo's frame is there
    assert_hidden(shown, WRONG)
    text = client.get("/h/query/", HTTP_ACCEPT="text/plain").content.decode()
    assert "_authenticate_scram" in text
    assert_hidden(text, WRONG)


@pytest.mark.urls("tests.failure_urls")
def test_error_mails_after_a_refused_non_ascii_password(wrong_password, error_mails):
    assert Client(raise_request_exception=False).get("/h/query/").status_code == 500
    assert len(error_mails) == 2
    for message in error_mails:
        assert_hidden(message.subject + message.body, WRONG)
        for content, *_mime in getattr(message, "alternatives", []):
            assert "_authenticate_scram" in str(content)
            assert_hidden(str(content), WRONG)
