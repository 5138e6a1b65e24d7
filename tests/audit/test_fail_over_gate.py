"""``--fail-over N --accept-unknown-capacity`` that could check nothing fails.

A CI gate must not pass having compared nothing, on a server that reports no capacity and no
current connections (FerretDB, proxies, a user without clusterMonitor): the command exits 3
with a message saying nothing was checked, and the JSON says so in ``fail_over.result``
("nothing_checked") and ``fail_over.checked`` (0).
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.audit.mockup import cursor_reply, server_status, start_servers


def _run(*args: str) -> tuple[dict, int, str]:
    out = StringIO()
    try:
        call_command("mongo_connections", "--format", "json", "--timeout", "1", *args, stdout=out)
    except CommandError as exc:
        return json.loads(out.getvalue()), exc.returncode, str(exc)
    return json.loads(out.getvalue()), 0, ""


@pytest.fixture
def serve(point_at):
    def start(status: dict) -> None:
        (server,) = start_servers(1)
        server.serve({"ismaster": True}, status, cursor_reply([]))
        point_at(f"mongodb://{server.address}/shop?directConnection=true", [server])

    return start


def test_accepting_unknown_figures_when_every_figure_is_unknown_exits_3(serve):
    serve({"ok": 1, "version": "7.0.42"})  # like FerretDB: no serverStatus.connections
    report, code, message = _run("--fail-over", "90", "--accept-unknown-capacity")
    assert code == 3
    assert (
        "--fail-over checked nothing" in message and "MONGOPOOL_SERVER_MAX_CONNECTIONS" in message
    )
    gate = report["fail_over"]
    assert gate["result"] == "nothing_checked" and gate["checked"] == 0
    assert gate["evaluated"] is False and len(gate["unknown"]) == 2


def test_the_result_names_every_outcome(serve):
    serve(server_status(40, 60))  # utilisation 40 %; capacity 100 from serverStatus
    report, code, _message = _run("--fail-over", "90", "--processes", "1")  # ceiling 12 %
    assert code == 0
    assert report["fail_over"]["result"] == "within_limit" and report["fail_over"]["checked"] == 2
    report, code, _message = _run("--fail-over", "30", "--processes", "1")
    assert code == 1 and report["fail_over"]["result"] == "exceeded"
    assert _run("--processes", "1")[0]["fail_over"]["result"] is None  # no gate asked for


def test_some_figures_known_passes_with_accept_unknown_capacity(serve, settings):
    serve({"ok": 1, "version": "7.0.42"})
    settings.MONGOPOOL_SERVER_MAX_CONNECTIONS = 1000
    report, code, _message = _run("--fail-over", "90")
    assert code == 3 and report["fail_over"]["result"] == "unknown"
    report, code, _message = _run("--fail-over", "90", "--accept-unknown-capacity")
    assert code == 0
    assert report["fail_over"]["result"] == "within_limit" and report["fail_over"]["checked"] == 1
