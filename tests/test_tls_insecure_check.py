"""``tlsInsecure=false`` turns TLS on in pymongo, so W101 must not fire (issue 25 item 12).

pymongo expands ``tlsInsecure`` into ``tlsAllowInvalidCertificates``,
``tlsAllowInvalidHostnames`` and ``tlsDisableOCSPEndpointCheck``, and any of those set to
false turns TLS on. The app decides "is TLS on" the way pymongo does; these tests compare
its decision with the client pymongo builds from the same URI.
"""

from __future__ import annotations

import pytest
from pymongo import MongoClient

from django_mongopool import checks
from django_mongopool.conf import conf

HOST = "mongodb://app:pw@db.example.com:27017/shop"


def _pymongo_uses_tls(uri: str) -> bool:
    client = MongoClient(uri, connect=False)
    try:
        return client.options.pool_options._ssl_context is not None
    finally:
        client.close()


@pytest.mark.parametrize(
    ("query", "tls"),
    [
        ("tlsInsecure=false", True),
        ("tlsinsecure=false", True),  # any case of the name
        ("tlsInsecure=true", False),
        ("tlsInsecure=false&tls=false", None),  # pymongo refuses the combination
        ("tlsAllowInvalidHostnames=false", True),
        ("", False),
    ],
)
def test_tls_is_on_exactly_when_pymongo_turns_it_on(settings, query, tls):
    from pymongo.errors import ConfigurationError

    uri = f"{HOST}?{query}" if query else HOST
    settings.MONGOPOOL_URI = uri
    settings.MONGOPOOL_ALLOWED_CLIENT_MODULES = [__name__]  # the reference client below
    if tls is None:
        with pytest.raises(ConfigurationError):
            _pymongo_uses_tls(uri)
        return
    assert _pymongo_uses_tls(uri) is tls
    assert conf.client_config.tls is tls
    w101 = "django_mongopool.W101" in {m.id for m in checks.check_deploy()}
    assert w101 is not tls


def test_tls_insecure_false_in_the_client_options_counts_too(settings):
    settings.MONGOPOOL_URI = HOST
    settings.MONGOPOOL_CLIENT_OPTIONS = {"tlsInsecure": False}
    assert conf.client_config.tls is True
    assert "django_mongopool.W101" not in {m.id for m in checks.check_deploy()}
