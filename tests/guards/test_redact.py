"""The redactor never lets a password through, whatever the URI looks like."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from django_mongopool.guards.redact import redact_uri, scrub, uri_secrets


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://h:27017/db", "mongodb://h:27017/db"),
        ("mongodb://alice:pw@h:27017/db", "mongodb://alice:***@h:27017/db"),
        (
            "mongodb://alice:p%40ss@h1,h2/db?replicaSet=rs",
            "mongodb://alice:***@h1,h2/db?replicaSet=rs",
        ),
        ("mongodb://alice:p@ss@h/db", "mongodb://alice:***@h/db"),
        ("mongodb://alice:pa/ss@h/db", "mongodb://alice:***@h/db"),
        (
            "mongodb+srv://alice:pw@cluster.example.com/",
            "mongodb+srv://alice:***@cluster.example.com/",
        ),
        (
            "mongodb://alice@h/?authMechanism=MONGODB-X509",
            "mongodb://alice@h/?authMechanism=MONGODB-X509",
        ),
        (
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok",
            "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
        ),
        (
            "mongodb://h/?tlsCertificateKeyFilePassword=kp&tls=true",
            "mongodb://h/?tlsCertificateKeyFilePassword=***&tls=true",
        ),
    ],
)
def test_redact_examples(uri, expected):
    assert redact_uri(uri) == expected


def test_non_string_is_not_echoed():
    assert redact_uri(b"mongodb://a:b@h") == "<bytes>"


def test_scrub_masks_encoded_forms():
    secrets = uri_secrets("mongodb://alice:p%40ss w@h/")
    text = "failed: p%40ss w / p@ss w / p%40ss+w / 'p@ss w'"
    assert "p@ss" not in scrub(text, secrets)
    assert "p%40ss" not in scrub(text, secrets)


password_chars = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=4,
    max_size=24,
)
hosts = st.lists(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5})?(:[0-9]{1,5})?", fullmatch=True),
    min_size=1,
    max_size=3,
)
queries = st.lists(
    st.sampled_from(
        ["replicaSet=rs0", "tls=true", "appname=a@b", "authSource=admin", "w=majority"]
    ),
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["mongodb://", "mongodb+srv://", ""]),
    user=st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True),
    password=password_chars,
    hosts=hosts,
    query=queries,
    encode=st.booleans(),
)
def test_password_never_survives(scheme, user, password, hosts, query, encode):
    shown_password = quote_plus(password) if encode else password
    uri = f"{scheme}{user}:{shown_password}@{','.join(hosts)}/db"
    if query:
        uri += "?" + "&".join(query)
    public = f"{scheme}{user}:@{','.join(hosts)}/db?{'&'.join(query)}"
    assume(shown_password not in public and password not in public)
    assert shown_password not in redact_uri(uri)
    # The robust statement: the secret text is gone from the redacted form and from any message.
    message = f"cannot connect to {uri}"
    assert shown_password not in scrub(message, uri_secrets(uri))
    assert password not in scrub(message, uri_secrets(uri))


@settings(max_examples=200, deadline=None)
@given(token=st.text(min_size=6, max_size=30).filter(lambda t: "&" not in t and "#" not in t))
def test_credential_options_never_survive(token):
    uri = f"mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:{token}&tls=true"
    assert f"AWS_SESSION_TOKEN:{token}" not in redact_uri(uri)
