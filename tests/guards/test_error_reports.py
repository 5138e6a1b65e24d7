"""Credentials are masked by what a value *is*, not by its repr text.

A non-ASCII password reaches Django's error reports as ``bytes`` (pymongo's SCRAM
code encodes it: ``data = b'P\\xc3\\xa4ss...'``, whose repr escapes the non-ASCII
characters), inside sets and other containers, in keys derived from it
(``salted_pass``, ``client_key``, ``stored_key``) and quoted in exception messages.
These tests render Django's real technical 500 page (HTML and text) and the
``ADMINS`` e-mails (text, and HTML with ``AdminEmailHandler(include_html=True)``)
and look for every spelling of the password.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import html
import json
import unicodedata
from base64 import standard_b64encode
from urllib.parse import quote_plus

import pytest
from django.test import Client
from django.views.debug import SafeExceptionReporterFilter

from django_mongopool.guards.error_reports import mask_value
from django_mongopool.guards.redact import scrub, scrub_bytes
from tests.guards.spellings import assert_hidden
from tests.helpers import ADMINS
from tests.redaction_urls import ITERATIONS, SALT

PASSWORD = "Päss wörd/€-ﬁ&ünï"  # non-ASCII, not Latin-1, changed by NFKC, needs quoting
URI = f"mongodb://alice:{quote_plus(PASSWORD)}@127.0.0.1:9/shop?authSource=admin"
OTHER = "öther-sécret-42"  # the password of a URI that is not the configured one
OTHER_URI = f"mongodb://bob:{quote_plus(OTHER)}@db2.example.net:27017/x"
SUBSTITUTE = SafeExceptionReporterFilter.cleansed_substitute


def scram_keys(password: str) -> set[str]:
    """How SCRAM-SHA-256's keys derived from ``password`` would be shown (repr, hex, base64)."""
    data = unicodedata.normalize("NFKC", password).encode()
    salted = hashlib.pbkdf2_hmac("sha256", data, SALT, ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    shown = set()
    for key in (salted, client_key, server_key, stored_key):
        inner = repr(key)[2:-1]
        shown |= {inner, html.escape(inner), key.hex(), standard_b64encode(key).decode()}
    return shown


@pytest.fixture
def configured(settings):
    settings.MONGOPOOL_URI = URI
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 300}
    settings.MONGO_REPLICAS = {OTHER_URI}  # a set-valued setting
    settings.MONGO_FROZEN = frozenset({f"backup={OTHER_URI}"})
    settings.MONGO_NESTED = {"targets": [({OTHER_URI},)], "raw": OTHER_URI.encode()}


# Values ---------------------------------------------------------------------------------


def test_bytes_of_every_encoding_are_masked():
    secrets = (PASSWORD,)
    for value in (
        PASSWORD.encode(),
        b"n,," + PASSWORD.encode() + b",tail",
        unicodedata.normalize("NFKC", PASSWORD).encode(),  # what SCRAM hashes
        quote_plus(PASSWORD).encode(),
        bytearray(PASSWORD.encode()),
        memoryview(PASSWORD.encode()),
    ):
        masked = mask_value(value, secrets, SUBSTITUTE)
        assert isinstance(masked, bytes | bytearray | memoryview)
        assert_hidden(repr(bytes(masked)), PASSWORD)
    assert mask_value(b"harmless", secrets, SUBSTITUTE) == b"harmless"
    assert scrub_bytes(b"x" + PASSWORD.encode("utf-8") + b"y", secrets) == b"x***y"


def test_a_bytes_repr_in_text_is_masked():
    text = f"data = {PASSWORD.encode()!r}; ascii {ascii(PASSWORD)}; json {json.dumps(PASSWORD)}"
    assert_hidden(scrub(text, [PASSWORD]), PASSWORD)


Credential = collections.namedtuple("Credential", "mechanism source username password")


@pytest.mark.parametrize(
    "value",
    [
        {OTHER_URI},
        frozenset({OTHER_URI, "other"}),
        [("x", {"k": {OTHER_URI}})],
        (1, [frozenset({OTHER_URI.encode()})]),
        {"uri": OTHER_URI, OTHER_URI: 1},
        collections.OrderedDict(uri=OTHER_URI),
        collections.deque([OTHER_URI.encode()]),
    ],
    ids=["set", "frozenset", "nested", "bytes-in-frozenset", "key-and-value", "subclass", "deque"],
)
def test_containers_of_any_kind_are_masked(value):
    shown = repr(mask_value(value, (), SUBSTITUTE))
    assert_hidden(shown, OTHER)
    assert "db2.example.net" in shown  # the host stays readable


def test_a_named_tuple_keeps_its_fields():
    credential = Credential("SCRAM-SHA-256", "admin", "alice", PASSWORD)
    masked = mask_value(credential, (PASSWORD,), SUBSTITUTE)
    assert isinstance(masked, Credential)
    assert masked.username == "alice" and masked.password == "***"


def test_values_without_a_credential_are_returned_as_they_are():
    unchanged = (
        {"a": [1, (2, {3})]},
        collections.OrderedDict(a="b"),
        ["x"],
        (1,),
        frozenset({"y"}),
        b"z",
        object(),
    )
    for value in unchanged:
        assert mask_value(value, (PASSWORD,), SUBSTITUTE) is value


def test_an_object_whose_repr_carries_a_credential_is_shown_masked():
    class Holder:
        def __repr__(self) -> str:
            return f"Holder(data={PASSWORD.encode()!r})"

    shown = mask_value(Holder(), (PASSWORD,), SUBSTITUTE)
    assert shown == "Holder(data=b'***')"


# Django's own reports -------------------------------------------------------------------


@pytest.mark.urls("tests.redaction_urls")
@pytest.mark.parametrize("view", ["/r/scram/", "/r/scram-async/", "/r/quoting/"])
def test_debug_500_page_shows_no_form_of_the_password(settings, configured, view):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    page = client.get(view, MONGODB_URL=URI)
    assert page.status_code == 500
    text = client.get(view, MONGODB_URL=URI, HTTP_ACCEPT="text/plain")
    for shown in (page.content.decode(), text.content.decode()):
        assert_hidden(shown, PASSWORD)
        assert_hidden(shown, OTHER)
        for key in scram_keys(PASSWORD):
            assert key not in shown
        assert "MONGO_REPLICAS" in shown and "bob:***@db2.example.net" in shown
    html_page = page.content.decode()
    if view.startswith("/r/scram"):
        # pymongo's frame is listed, its credential material hidden whole
        assert "_authenticate_scram" in html_page
        for name in ("salted_pass", "client_key", "stored_key"):
            assert name in html_page
        assert "SCRAM-SHA-256" in html_page  # harmless names stay readable
        # the frames it called (the connection's command) hide the proof sent: c=biws,r=...,p=...
        assert "c=biws" not in html_page
    else:
        assert "could not log in: ***" in html_page


@pytest.mark.urls("tests.redaction_urls")
@pytest.mark.parametrize("view", ["/r/scram/", "/r/scram-async/", "/r/quoting/"])
def test_error_mails_text_and_html_show_no_form_of_the_password(configured, error_mails, view):
    response = Client(raise_request_exception=False).get(view, MONGODB_URL=URI)
    assert response.status_code == 500
    assert len(error_mails) == 2  # Django's own (text) and the one with the HTML page
    alternatives = [alt for message in error_mails for alt in getattr(message, "alternatives", [])]
    assert alternatives, "no HTML e-mail was sent"
    bodies = [m.subject + m.body for m in error_mails] + [
        str(content) for content, *_ in alternatives
    ]
    for body in bodies:
        assert_hidden(body, PASSWORD)
        assert_hidden(body, OTHER)
        for key in scram_keys(PASSWORD):
            assert key not in body
    assert any("MONGO_REPLICAS" in body for body in bodies)


# --- no setting the app reads puts a credential on Django's error pages or e-mails ---

SETTING_PASSWORD = "Pa55-w0rd-never-shown"
SETTING_TOKEN = "session-token-never-shown"
SETTING_URI = f"mongodb://alice:{SETTING_PASSWORD}@127.0.0.1:9/shop?authSource=admin"


@pytest.fixture
def credentials(settings):
    settings.MONGOPOOL_URI = SETTING_URI
    settings.MONGOPOOL_CLIENT_OPTIONS = {
        "serverSelectionTimeoutMS": 300,
        "authMechanismProperties": {"AWS_SESSION_TOKEN": SETTING_TOKEN},
    }
    settings.MONGODB_URL = SETTING_URI  # what django-environ settings read the SETTING_URI from
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.2


def _assert_no_credentials(text: str) -> None:
    assert SETTING_PASSWORD not in text
    assert SETTING_TOKEN not in text


@pytest.mark.urls("tests.failure_urls")
def test_debug_500_page_shows_no_credential(settings, credentials):
    settings.DEBUG = True
    client = Client(raise_request_exception=False)
    response = client.get(
        "/h/boom/", MONGODB_URL=SETTING_URI
    )  # the process environment, as runserver has it
    assert response.status_code == 500
    page = response.content.decode()
    assert "MONGOPOOL_URI" in page and "MONGODB_URL" in page  # the dump is there ...
    assert "alice:***@127.0.0.1:9" in page  # ... with the host readable
    _assert_no_credentials(page)
    text = client.get("/h/boom/", HTTP_ACCEPT="text/plain").content.decode()  # the plain-text page
    assert "MONGOPOOL_URI" in text
    _assert_no_credentials(text)


@pytest.mark.urls("tests.failure_urls")
def test_error_mails_to_admins_carry_no_credential(settings, credentials, mailoutbox):
    settings.DEBUG = False
    settings.ADMINS = ADMINS
    client = Client(raise_request_exception=False)
    assert client.get("/h/boom/", MONGODB_URL=SETTING_URI).status_code == 500
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert "MONGOPOOL_URI" in mail.body
    _assert_no_credentials(mail.subject + mail.body)
    for alternative, _mime in getattr(mail, "alternatives", []):
        _assert_no_credentials(str(alternative))


@pytest.mark.urls("tests.failure_urls")
def test_503s_send_no_mail(settings, credentials, mailoutbox):
    settings.DEBUG = False
    settings.ADMINS = ADMINS
    client = Client(raise_request_exception=False)
    assert client.get("/h/unavailable/").status_code == 503  # the middleware's 503
    assert client.get("/mongopool/ready").status_code == 503  # the probe: nothing listens on :9
    assert mailoutbox == []


def test_reporter_filter_is_wrapped_once_and_masks_any_mongodb_uri(credentials):
    from django.views.debug import SafeExceptionReporterFilter

    from django_mongopool.guards import error_reports

    error_reports.install()
    error_reports.install()
    wrapped = SafeExceptionReporterFilter.cleanse_setting
    assert not getattr(wrapped.__wrapped__, "_mongopool_redacts", False)  # one layer only
    cleanse = SafeExceptionReporterFilter().cleanse_setting
    other = "db=mongodb+srv://bob:other-pw@c.example.net/?authMechanismProperties=X:y-tok&w=1"
    assert cleanse("ANY_NAME", other) == (
        "db=mongodb+srv://bob:***@c.example.net/?authMechanismProperties=***&w=1"
    )
    options = cleanse("OPTIONS", {"AuthMechanismProperties": "AWS_SESSION_TOKEN:t", "w": 1})
    assert options == {"AuthMechanismProperties": "********************", "w": 1}
    # The configured password is masked wherever it appears, however it is spelled.
    assert SETTING_PASSWORD not in str(
        cleanse("NOTE", [f"pw was {SETTING_PASSWORD}", (SETTING_PASSWORD,)])
    )
