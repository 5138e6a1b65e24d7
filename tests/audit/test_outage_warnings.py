"""A server that cannot be reached, or refuses the app's credentials, is a warning of the report.

The page, its JSON and ``mongo_connections`` list the outage in ``warnings`` (the details stay
in ``notes``): a dashboard or an alert reading ``warnings`` must not see ``[]`` during an outage.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from django_mongopool.audit import report
from tests.audit.mockup import cursor_reply, start_servers
from tests.helpers import closed_port

PAGE = "admin:django_mongopool_poolhealth_changelist"


def _command_json() -> dict:
    out = StringIO()
    with pytest.raises(CommandError) as info:
        call_command("mongo_connections", "--format", "json", "--timeout", "1", stdout=out)
    assert info.value.returncode == 2
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_a_server_that_cannot_be_reached_is_a_warning(settings, admin_client):
    settings.MONGOPOOL_URI = f"mongodb://127.0.0.1:{closed_port()}/shop"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 300}
    report.clear_cache()
    result = admin_client.get(reverse(PAGE), {"format": "json"}).json()
    assert result["server"]["reachable"] is False
    (warning,) = result["warnings"]
    assert "did not answer (ServerSelectionTimeoutError)" in warning
    assert any("could not be reached" in note for note in result["notes"])  # the detail stays
    html = admin_client.get(reverse(PAGE)).content.decode()
    assert 'class="warning">The MongoDB server did not answer' in html
    assert any("did not answer" in w for w in _command_json()["warnings"])


def test_a_refused_authentication_is_a_warning(point_at):
    (server,) = start_servers(1)
    server.serve({"ismaster": True}, {"ok": 1}, cursor_reply([]))
    server.mock.autoresponds("ping", {"ok": 0, "code": 18, "errmsg": "Authentication failed."})
    point_at(f"mongodb://{server.address}/shop?directConnection=true", [server])
    result = _command_json()
    assert result["server"]["authentication_failed"] is True
    assert result["warnings"] == [
        "The MongoDB server refused authentication: only the configuration is reported."
    ]
