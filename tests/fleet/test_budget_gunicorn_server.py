"""The fleet budget with real processes: gunicorn scaled from 2 to 8 workers and back under load.

The example project runs under a gunicorn master (``--preload``, gthread workers) with
``MONGODB_FLEET_BUDGET=24``; another process posts entries continuously. The test adds six
workers with SIGTTIN, kills one with SIGKILL (the master replaces it), removes six with
SIGTTOU, and samples the established connections of every worker to the server at the
operating system every 0.1 s. The timeline is written to test-artifacts/ (docs/fleet-budget.md quotes
the committed copy in docs/).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
from pymongo import MongoClient

from django_mongopool.fleet import budget
from tests.helpers import ROOT, established_to
from tests.live import ExampleServer, Load

pytestmark = [
    pytest.mark.server,
    pytest.mark.reliability,
    pytest.mark.usefixtures("checking_client"),  # reads what the web server wrote
]

BUDGET = 24
POOL = 5
HEARTBEAT = 1.0
# A worker that has just started holds the minimum share (1) plus its monitors until the
# others have seen its first heartbeat and shrunk: at most one heartbeat interval plus the
# 0.5 s trim period later. Each worker added in the last SETTLE seconds may add that much.
SETTLE = 3.0
PER_NEW_WORKER = budget.per_server(1)
ARTIFACTS = ROOT / "test-artifacts"


def _workers(web: ExampleServer) -> list[int]:
    return web.pids()


def _wait_for_workers(web: ExampleServer, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(_workers(web)) == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not reach {count} workers: {len(_workers(web))}")


def test_budget_holds_while_gunicorn_scales_up_down_and_loses_a_worker(ferretdb, tmp_path):
    web = ExampleServer(
        ferretdb.url,
        tmp_path,
        workers=2,
        threads=8,
        MONGODB_MAX_POOL_SIZE=str(POOL),
        MONGODB_FLEET_BUDGET=str(BUDGET),
        MONGODB_HEARTBEAT_SECONDS=str(HEARTBEAT),
        MONGODB_WAIT_QUEUE_TIMEOUT_MS="1000",
        MONGODB_SERVER_SELECTION_TIMEOUT_MS="2000",
    ).start()
    samples: list[dict] = []
    events: list[tuple[float, str]] = []
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            pids = _workers(web)
            per_worker = []
            for pid in pids:
                try:
                    per_worker.append(established_to({ferretdb.port}, pid))
                except Exception:  # a worker that just exited
                    continue
            samples.append(
                {
                    "t": round(time.monotonic() - started, 2),
                    "workers": len(pids),
                    "total": sum(per_worker) + established_to({ferretdb.port}, web.process.pid),
                }
            )
            stop.wait(0.1)

    def event(name: str) -> None:
        events.append((round(time.monotonic() - started, 2), name))

    sampler = threading.Thread(target=sample, daemon=True)
    load = None
    killed_at = None
    try:
        load = Load(web.base, tmp_path, workers=16, seconds=120)
        sampler.start()
        time.sleep(4)
        for _ in range(6):
            os.kill(web.process.pid, signal.SIGTTIN)
            event("+1 worker (SIGTTIN)")
            time.sleep(1.5)
        _wait_for_workers(web, 8)
        time.sleep(5)
        victim = _workers(web)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        event("SIGKILL one worker")
        time.sleep(5)
        for _ in range(6):
            os.kill(web.process.pid, signal.SIGTTOU)
            event("-1 worker (SIGTTOU)")
            time.sleep(1.0)
        _wait_for_workers(web, 2)
        time.sleep(4 * HEARTBEAT + 2)  # the dead beats expire (3 intervals), the shares grow
        event("end")
        results = load.finish()
        load = None
    finally:
        stop.set()
        if load is not None:
            load.finish()
        sampler.join(10)

    with MongoClient(ferretdb.url) as check:
        database = check[web.env["MONGODB_DATABASE"]]
        stored = {doc["_id"] for doc in database["entries"].find({}, {"_id": 1})}
        beats = list(database["mongopool_heartbeats"].find())
    web_pids = set(_workers(web))
    web.stop()

    # Every request got an answer, except those in flight on the worker that was SIGKILLed.
    statuses = Counter(r[1] for r in results)
    assert statuses[201] > 0 and set(statuses) <= {0, 201, 503}, statuses
    unanswered = [r for r in results if r[1] == 0]
    assert killed_at is not None
    assert all(r[2] - 0.5 <= killed_at <= r[2] + r[3] + 0.5 for r in unanswered), unanswered
    # No acknowledged write is lost.
    acknowledged = {r[0] for r in results if r[1] == 201}
    assert acknowledged <= stored

    # The budget holds, beyond a short transient after workers join.
    joins = [t for t, name in events if name.startswith("+1") or name.startswith("SIGKILL")]

    def allowed(t: float) -> int:
        recent = sum(1 for j in joins if j <= t <= j + SETTLE)
        return BUDGET + recent * PER_NEW_WORKER

    over = [s for s in samples if s["total"] > allowed(s["t"])]
    steady_over = [s for s in samples if s["total"] > BUDGET and allowed(s["t"]) == BUDGET]
    assert not over, over[:10]
    assert not steady_over, steady_over[:10]
    assert max(s["total"] for s in samples) > 0

    # After the scale-down the two remaining workers grew back to maxPoolSize.
    live_shares = [
        b["fleet_budget"]["share"]
        for b in beats
        if b.get("pid") in web_pids and b.get("fleet_budget")
    ]
    assert live_shares and all(share == POOL for share in live_shares), live_shares

    ARTIFACTS.mkdir(exist_ok=True)
    timeline = {
        "budget": BUDGET,
        "max_pool_size": POOL,
        "heartbeat_seconds": HEARTBEAT,
        "samples": samples,
        "events": events,
        "statuses": {str(k): v for k, v in statuses.items()},
        "peak_total": max(s["total"] for s in samples),
        "peak_steady": max((s["total"] for s in samples if allowed(s["t"]) == BUDGET), default=0),
        "unanswered": len(unanswered),
        "acknowledged": len(acknowledged),
    }
    (ARTIFACTS / "fleet_budget_timeline.json").write_text(json.dumps(timeline))
    _plot(timeline, ARTIFACTS / "fleet_budget_timeline.png")


def _plot(timeline: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in timeline["samples"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, [s["total"] for s in timeline["samples"]], label="connections to the server (OS)")
    ax.axhline(timeline["budget"], color="red", linestyle="--", label="fleet budget")
    ax2 = ax.twinx()
    ax2.step(
        t, [s["workers"] for s in timeline["samples"]], color="gray", where="post", label="workers"
    )
    ax2.set_ylabel("gunicorn workers")
    for when, name in timeline["events"]:
        if name != "end":
            ax.axvline(when, color="#ccc", linewidth=0.6)
    ax.set_ylim(0, timeline["budget"] + 6)
    ax2.set_ylim(0, 10)
    ax.set_xlabel("seconds")
    ax.set_ylabel("established connections")
    ax.set_title("MONGOPOOL_FLEET_BUDGET=24 while gunicorn scales 2 -> 8 -> 2 workers under load")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
