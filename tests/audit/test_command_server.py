"""manage.py mongo_connections against the real server, an unreachable one, and bad input."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.helpers import closed_port, run_manage

pytestmark = pytest.mark.server


def _run(*args: str) -> str:
    out = StringIO()
    call_command("mongo_connections", *args, stdout=out)
    return out.getvalue()


def test_text_report_against_the_real_server(mongo, mongo_server):
    text = _run()
    assert "MongoDB connection audit" in text
    assert "Per process           1 host(s) x (10 pooled + 2 monitor) = 12 connections" in text
    if mongo_server.is_ferretdb:
        assert "does not report serverStatus.connections" in text
        assert "does not support $currentOp" in text


def test_json_schema_is_stable(mongo):
    report = json.loads(_run("--format", "json", "--processes", "4"))
    assert report["schema"] == "django-mongopool/audit/1"
    assert set(report) == {
        "schema",
        "generated_at",
        "config",
        "budget",
        "topology",
        "server",
        "process",
        "fleet",
        "fleet_budget",
        "notes",
        "warnings",
        "fail_over",
    }
    assert report["budget"]["processes"] == 4
    assert report["budget"]["fleet_ceiling"] == 4 * 12
    assert report["server"]["reachable"] is True
    assert report["topology"]["servers"]
    assert {"open", "in_use", "waiting", "servers", "sessions_started"} <= set(report["process"])


def test_watch_repeats(mongo):
    text = _run("--watch", "0.01", "--count", "3")
    assert text.count("MongoDB connection audit") == 3


def test_unreachable_server_exits_2_quickly_with_the_configuration(settings):
    settings.MONGOPOOL_URI = f"mongodb://ops:n0t-this-one@127.0.0.1:{closed_port()}/app"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 300}
    out = StringIO()
    started = time.monotonic()
    with pytest.raises(CommandError, match="could not be reached") as info:
        call_command("mongo_connections", stdout=out)
    assert time.monotonic() - started < 0.3 + 10
    assert info.value.returncode == 2
    text = out.getvalue()
    assert "could not be reached within 0.3s" in text
    assert "mongodb://ops:***@127.0.0.1" in text and "n0t-this-one" not in text
    assert "12 connections" in text  # the budget is still computed


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--processes", "0"], "must be from 1 to 100000"),
        (["--processes", "many"], "whole number"),
        (["--fail-over", "-5"], "more than 0"),
        (["--format", "xml"], "invalid choice"),
        (["--watch", "abc"], "number of seconds"),
        (["--count", "2"], "only makes sense with --watch"),
        (["--hosts", "-1"], "must be from 0 to 1000"),
        (["--hosts", "all"], "whole number of hosts"),
        (["--accept-unknown-capacity"], "only makes sense with --fail-over"),
    ],
)
def test_bad_arguments_are_usage_errors(args, needle):
    with pytest.raises(CommandError, match=needle):
        call_command("mongo_connections", *args, stdout=StringIO())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--processes", "-1"], "usage:"),
        (["--count", "2"], "only makes sense with --watch"),
        (["--accept-unknown-capacity"], "only makes sense with --fail-over"),
    ],
)
def test_bad_arguments_from_the_shell_exit_2_not_a_traceback(mongo_server, args, needle):
    """Exit 2 for every argument error: a deploy gate must not read one as "over the limit"."""
    result = run_manage("mongo_connections", *args, MONGODB_URL=mongo_server.url)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_configuration_error_is_a_message_not_a_traceback(settings):
    settings.MONGOPOOL_URI = "mongodb://h/?maxPoolSize=0"
    with pytest.raises(
        CommandError, match="Configuration error: MONGOPOOL_URI option maxPoolSize"
    ) as info:
        call_command("mongo_connections", stdout=StringIO())
    assert info.value.returncode == 2


def test_fail_over_cannot_pass_by_accident(mongo, mongo_server, settings):
    """Without the server's capacity and current connections, --fail-over exits 3, not 0."""
    if not mongo_server.is_ferretdb:
        pytest.skip("a real mongod reports serverStatus.connections")
    with pytest.raises(CommandError, match="could not be evaluated") as info:
        _run("--fail-over", "90")
    assert info.value.returncode == 3
    settings.MONGOPOOL_SERVER_MAX_CONNECTIONS = 1000
    text = _run("--fail-over", "90", "--accept-unknown-capacity")
    assert "only the known figures checked" in text
    with pytest.raises(CommandError, match="fleet ceiling 120.0% > 90%") as info:
        _run("--fail-over", "90", "--accept-unknown-capacity", "--processes", "100")
    assert info.value.returncode == 1


def test_json_reports_the_member_and_the_commands_own_process(mongo):
    report = json.loads(_run("--format", "json"))
    (member,) = report["server"]["members"]
    assert member["answered"] is True
    assert report["budget"]["members"][0]["fleet_ceiling"] == 12
    assert report["process"]["role"] == "command"
