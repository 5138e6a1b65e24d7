"""pytest's failure output never prints the test server's password.

A failing test that uses ``mongopool_secure_server`` makes pytest print the fixture's
repr (assertion introspection, ``--showlocals``); the plugin's server dataclasses
leave ``url`` and ``password`` out of it.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus

import pytest

from django_mongopool.pytest_plugin import MongoServer, SecureMongoServer
from tests.testing.projects import project_settings

pytestmark = [pytest.mark.server, pytest.mark.core]

SETTINGS = project_settings(urls=False)

FAILING = """
def test_fails(mongopool_secure_server):
    server = mongopool_secure_server
    assert server.ca_file is None, server
"""


def test_reprs_leave_the_credentials_out():
    shown = repr(
        SecureMongoServer(
            url="mongodb://alice:s3cret-pw@127.0.0.1:1/?tls=true",
            username="alice",
            password="s3cret-pw",
        )
    )
    assert "s3cret-pw" not in shown and "alice" in shown
    assert "s3cret" not in repr(MongoServer(url="mongodb://u:s3cret@h/"))


def test_a_failing_test_prints_no_password(pytester, mongopool_secure_server, monkeypatch):
    pytester.makepyfile(proj_settings=SETTINGS, test_secure=FAILING)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.setenv("MONGOPOOL_TEST_SECURE_URL", mongopool_secure_server.url)
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    result = pytester.runpytest_subprocess(
        "--ds=proj_settings", "-p", "no:cacheprovider", "--showlocals", "--tb=long", timeout=300
    )
    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "SecureMongoServer(" in output  # the repr was printed ...
    password = mongopool_secure_server.password
    assert password
    for form in {password, quote(password), quote_plus(password), quote(password, safe="")}:
        assert form not in output  # ... without the password
