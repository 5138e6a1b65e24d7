"""Faults against real processes: the example project (waitress or gunicorn) in its own
process, FerretDB started per test, load from another process. Bounded in count and time.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from pymongo import MongoClient

from django_mongopool.testing.ferretdb import FerretDB
from tests.helpers import MONITORS_PER_SERVER, ROOT, closed_port, established_to, run_manage
from tests.live import ExampleServer, Load

pytestmark = [
    pytest.mark.server,
    pytest.mark.reliability,
    pytest.mark.usefixtures("checking_client"),  # reads what the web server wrote
]


POOL = 4
TIMEOUTS = {
    "MONGODB_MAX_POOL_SIZE": str(POOL),
    "MONGODB_SERVER_SELECTION_TIMEOUT_MS": "1000",
    "MONGODB_CONNECT_TIMEOUT_MS": "1000",
    "MONGODB_SOCKET_TIMEOUT_MS": "1500",
    "MONGODB_WAIT_QUEUE_TIMEOUT_MS": "1000",
}
# The longest a request may take with these timeouts (selection + socket + wait queue), plus slack.
REQUEST_BOUND = 1.0 + 1.5 + 1.0 + 3.0
RECOVERY_BOUND = 30.0
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def web(ferretdb, tmp_path):
    server = ExampleServer(ferretdb.url, tmp_path, **TIMEOUTS).start()
    yield server
    server.stop()


def _record(name: str, **data) -> None:
    """Measurements for the failure table of docs/failures.md: test-artifacts/failure_behaviour.jsonl."""
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "failure_behaviour.jsonl", "a") as out:
        out.write(json.dumps({"fault": name, **data}) + "\n")


def _wait_until(predicate, seconds: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def _stored_ids(ferretdb: FerretDB, database: str) -> set[str]:
    with MongoClient(ferretdb.url) as client:
        return {doc["_id"] for doc in client[database]["entries"].find({}, {"_id": 1})}


def _check_outcomes(results, ferretdb, web) -> Counter:
    statuses = Counter(status for _id, status, _t, _s in results)
    assert set(statuses) <= {201, 503}, statuses  # never a 500, never a dropped connection
    assert max(seconds for *_rest, seconds in results) < REQUEST_BOUND  # no hung worker
    acknowledged = {entry_id for entry_id, status, *_ in results if status == 201}
    assert acknowledged <= _stored_ids(ferretdb, web.env["MONGODB_DATABASE"])  # nothing lost
    return statuses


def _sessions_balanced(web: ExampleServer) -> None:
    metrics = web.metrics()
    assert metrics["mongopool_sessions_started_total"] == metrics["mongopool_sessions_ended_total"]
    assert metrics["mongopool_pool_open_connections"] <= POOL


def test_server_killed_and_restarted_mid_load(ferretdb, web, tmp_path):
    load = Load(web.base, tmp_path, workers=8)
    time.sleep(1.5)
    ferretdb.kill()  # SIGKILL, like a crash
    time.sleep(3)
    ferretdb.start()  # same port, same data directory
    recovered = _wait_until(lambda: web.ready() == 200, RECOVERY_BOUND)
    time.sleep(1.5)
    results = load.finish()
    assert recovered is not None, "the same worker never served again"
    statuses = _check_outcomes(results, ferretdb, web)
    assert statuses[503] > 0 and statuses[201] > 0
    # 201s again after the restart, from the same worker process
    assert max(r[2] for r in results if r[1] == 201) > max(r[2] for r in results if r[1] == 503)
    _sessions_balanced(web)
    _record(
        "killed",
        recovered_s=round(recovered, 2),
        statuses=dict(statuses),
        max_request_s=max(r[3] for r in results),
        lost=0,
    )


def test_server_stalled_then_resumed(ferretdb, web, tmp_path):
    load = Load(web.base, tmp_path, workers=8)
    time.sleep(1.5)
    ferretdb.pause()  # SIGSTOP: connections stay open, nothing answers
    time.sleep(4)  # longer than socketTimeoutMS
    ferretdb.resume()
    recovered = _wait_until(lambda: web.ready() == 200, RECOVERY_BOUND)
    time.sleep(1.5)
    results = load.finish()
    assert recovered is not None
    statuses = _check_outcomes(results, ferretdb, web)
    assert statuses[503] > 0 and statuses[201] > 0
    # pymongo closes each connection whose read timed out (the pool is cleared only when the
    # monitor gives up on the server, connectTimeoutMS + heartbeatFrequencyMS later).
    _sessions_balanced(web)
    _record(
        "stalled",
        recovered_s=round(recovered, 2),
        statuses=dict(statuses),
        max_request_s=max(r[3] for r in results),
        lost=0,
    )


def test_refused_connections(tmp_path):
    url = f"mongodb://127.0.0.1:{closed_port()}/"
    assert run_manage("check", MONGODB_URL=url).returncode == 0
    audit = run_manage(
        "mongo_connections", MONGODB_URL=url, MONGODB_SERVER_SELECTION_TIMEOUT_MS="500"
    )
    assert audit.returncode == 2
    assert "could not be reached within 0.5s" in audit.stdout and "Traceback" not in audit.stderr
    web = ExampleServer(url, tmp_path, **TIMEOUTS).start()
    try:
        assert web.ready() == 503
        status, body, seconds = web.get("/api/entries/")
        assert status == 503 and b"temporarily unavailable" in body
        assert seconds < REQUEST_BOUND
        _record("refused", request_s=round(seconds, 2), status=status)
    finally:
        web.stop()


def test_preforking_server_under_load_keeps_per_worker_pools(ferretdb, tmp_path):
    workers = 3
    web = ExampleServer(ferretdb.url, tmp_path, workers=workers, threads=8, **TIMEOUTS).start()
    try:
        samples = []
        load = Load(web.base, tmp_path, workers=16, seconds=60)
        for _ in range(40):
            pids = web.pids()
            samples.append([established_to({ferretdb.port}, pid) for pid in pids])
            time.sleep(0.1)
        results = load.finish()
        pids = web.pids()
        assert len(pids) == workers
        statuses = Counter(r[1] for r in results)
        assert statuses[201] > 0 and set(statuses) <= {201, 503}
        assert max(sum(s) for s in samples) <= workers * (POOL + MONITORS_PER_SERVER)
        assert all(max(s) <= POOL + MONITORS_PER_SERVER for s in samples)
        assert max(max(s) for s in samples) > 0  # the workers did connect
        master_connections = established_to({ferretdb.port}, web.process.pid)
        assert master_connections == 0  # --preload built the client with connect=False
        _record(
            "preforked",
            workers=workers,
            peak_total=max(sum(s) for s in samples),
            peak_per_worker=max(max(s) for s in samples),
            statuses=dict(statuses),
        )
    finally:
        web.stop()
