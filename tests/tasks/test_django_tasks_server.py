"""Django's tasks framework with real worker processes: four ``manage.py db_worker`` processes
(django-tasks-db's database backend; on Django 5.2 through the django-tasks backport, on
Django 6 through django.tasks) running a few hundred tasks that use MongoDB.

The framework has no acknowledgements or redelivery: a task whose worker is killed stays
RUNNING and is not run again. Every write is idempotent by the task's key, so the test
enqueues the killed task again, as an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.tasks.worker_processes import (
    ConnectionSampler,
    Process,
    beats_by_pid,
    runs_by_pid,
    scratch,
    wait_for,
    worker_environment,
)

# Not marked "reliability": the core tier of every leg runs it, so the backport (Django 5.2)
# and django.tasks (Django 6) are both tested with real workers.
pytestmark = [pytest.mark.server, pytest.mark.core]

BUDGET = 12  # 4 workers: a share of 1 pooled connection each, plus monitors
WORKERS = 4
STORES = 200


def _django(env: dict[str, str], *code: str) -> str:
    """Run Python in a process with the worker settings (migrate, enqueue, read results)."""
    script = "import django; django.setup(); " + "; ".join(code)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _statuses(env: dict[str, str]) -> dict[str, list[str]]:
    """Each task's recorded statuses by its key, as the framework's database backend has them."""
    rows = json.loads(
        _django(
            env,
            "import json",
            "from django_tasks_db.models import DBTaskResult",
            "print(json.dumps([[str(r.status), r.args_kwargs['args'][0]] "
            "for r in DBTaskResult.objects.order_by('enqueued_at')]))",
        )
    )
    found: dict[str, list[str]] = {}
    for status, key in rows:
        found.setdefault(key, []).append(status)
    return found


@pytest.fixture
def database(tmp_path):
    with scratch(tmp_path, "tasks") as directory:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory / "tasks.sqlite3"


def test_db_workers_hold_the_budget_end_every_session_and_lose_no_acknowledged_write(
    mongo, mongo_server, tmp_path, database
):
    env = worker_environment(
        MONGOPOOL_URI=mongo_server.url,
        MONGOPOOL_DATABASE=mongo.name,
        MONGOPOOL_FLEET_BUDGET=str(BUDGET),
        WORKER_SQLITE=str(database),
    )
    _django(
        env,
        "from django.core.management import call_command",
        "call_command('migrate', verbosity=0)",
    )
    _django(env, "from tests.tasks.worker_tasks import enqueue_django", f"enqueue_django({STORES})")
    command = [
        sys.executable,
        "-m",
        "django",
        "db_worker",
        "--interval=0.1",
        "--no-startup-delay",
        "--no-reload",
    ]
    workers = [
        Process([*command, f"--worker-id=w{n}"], env, tmp_path / f"db_worker-{n}.log")
        for n in range(WORKERS)
    ]
    sampler = ConnectionSampler(mongo_server.ports, lambda: [w.pid for w in workers if w.alive()])
    sampler.start()
    try:
        marker = wait_for(lambda: mongo["markers"].find_one({"_id": "victim"}), "the victim")
        (victim,) = [w for w in workers if w.pid == marker["pid"]]
        os.kill(victim.pid, signal.SIGKILL)
        mongo["markers"].insert_one({"_id": "killed"})
        keys = {f"task-{n}" for n in range(STORES)}
        wait_for(
            lambda: mongo["results"].count_documents({}) == STORES,
            "every other task's write",
            timeout=120,
        )
        # The killed task was not run again: enqueue it again.
        assert "victim" not in {doc["_id"] for doc in mongo["results"].find({}, {"_id": 1})}
        _django(
            env,
            "from tests.tasks.worker_tasks import django_victim",
            "django_victim.enqueue('victim')",
        )
        wait_for(lambda: mongo["results"].find_one({"_id": "victim"}), "the victim, run again")

        live = [w.pid for w in workers if w.alive()]
        assert len(live) == WORKERS - 1 and victim.pid not in live

        def settled():
            beats, runs = beats_by_pid(mongo), runs_by_pid(mongo)
            return all(
                pid in beats
                and beats[pid]["role"] == "worker"
                and beats[pid]["sessions_started"]
                == beats[pid]["sessions_ended"]
                == runs.get(pid, 0)
                for pid in live
            )

        def counters():
            beats, runs = beats_by_pid(mongo), runs_by_pid(mongo)
            return {
                pid: (
                    beats.get(pid, {}).get("sessions_started"),
                    beats.get(pid, {}).get("sessions_ended"),
                    runs.get(pid, 0),
                )
                for pid in {*live, *beats, *runs}
            }

        # Every session a task used was ended: each worker's counters match its runs.
        wait_for(settled, "the workers' counters to match their runs", 30, counters)
    finally:
        samples = sampler.finish()
        for worker in workers:
            worker.stop()

    results = {doc["_id"]: doc for doc in mongo["results"].find()}
    assert set(results) == keys | {"victim"}
    statuses = _statuses(env)
    assert statuses.pop("victim") == ["RUNNING", "SUCCESSFUL"]  # killed; enqueued again
    assert set(statuses) == keys
    assert all(s == ["SUCCESSFUL"] for s in statuses.values())
    # Connections of the workers to the server never went above the budget.
    assert samples and 0 < max(samples) <= BUDGET, max(samples)
