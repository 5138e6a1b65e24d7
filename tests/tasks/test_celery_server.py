"""A real Celery worker (prefork pool, concurrency 4) running a few hundred tasks that use MongoDB.

The broker is kombu's MongoDB transport on a FerretDB of its own: it works on FerretDB
(direct queues, and the fanout exchange of Celery's remote control), needs no other service
or system package, and its own connections never reach the data server, so the connections
counted there at the operating system are the app's alone. (The ``kombu[mongodb]`` extra is
not used: it pins one exact pymongo; the transport needs only pymongo itself.)

The worker runs with ``task_acks_late`` and ``task_reject_on_worker_lost``: a task whose child
is killed is requeued and run again, and every task writes by its key (an upsert), so running
twice changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from io import StringIO

import pytest
from celery import Celery
from django.core.management import call_command

from django_mongopool.fleet import heartbeat
from tests.helpers import ROOT
from tests.tasks.worker_processes import (
    ConnectionSampler,
    Process,
    beats_by_pid,
    celery_worker,
    children,
    runs_by_pid,
    throwaway_ferretdb,
    wait_for,
    worker_environment,
)

pytestmark = [pytest.mark.server, pytest.mark.reliability, pytest.mark.django_db]

BUDGET = 16  # 4 children: a share of 2 pooled connections each, plus monitors
CONCURRENCY = 4
STORES = 300
PAGE = "/admin/django_mongopool/poolhealth/"


@pytest.fixture(autouse=True)
def _kombu_may_build_its_client(settings):
    settings.MONGOPOOL_ALLOWED_CLIENT_MODULES = ["kombu"]  # the sender's broker client
    yield
    heartbeat.stop()  # started by the page's request in this process


@pytest.fixture
def broker(tmp_path):
    with throwaway_ferretdb(tmp_path, "broker") as server:
        yield f"{server.url.rstrip('/')}/celery"


@pytest.fixture
def sender(broker):
    app = Celery("sender", broker=broker, set_as_current=False)
    yield app
    app.close()


def _environment(mongo_server, mongo, broker, **extra):
    return worker_environment(
        MONGOPOOL_URI=mongo_server.url,
        MONGOPOOL_DATABASE=mongo.name,
        CELERY_BROKER_URL=broker,
        **extra,
    )


def test_prefork_worker_holds_the_budget_ends_every_session_and_loses_no_write(
    mongo, mongo_server, broker, sender, tmp_path, admin_client
):
    env = _environment(mongo_server, mongo, broker, MONGOPOOL_FLEET_BUDGET=str(BUDGET))
    worker = celery_worker(env, tmp_path / "celery.log", CONCURRENCY)
    sampler = ConnectionSampler(mongo_server.ports, lambda: [worker.pid, *children(worker.pid)])
    sampler.start()
    try:
        # Every child is in the fleet, as a worker, before any task has run.
        first = children(worker.pid)
        wait_for(
            lambda: all(
                (beat := beats_by_pid(mongo).get(pid)) and beat["role"] == "worker" for pid in first
            ),
            "every child's first heartbeat",
        )
        sender.send_task("mongopool_tests.victim", args=["victim"], task_id="victim")
        keys = [f"task-{n}" for n in range(STORES)]
        for key in keys:
            sender.send_task("mongopool_tests.store", args=[key], task_id=key)
        sender.send_task("mongopool_tests.flaky", args=["flaky"], task_id="flaky")
        sender.send_task("mongopool_tests.slow", args=["slow"], task_id="slow")

        # A child is killed in the middle of a task; the task is requeued and run again.
        marker = wait_for(lambda: mongo["markers"].find_one({"_id": "victim"}), "the victim")
        assert marker["pid"] in children(worker.pid)
        os.kill(marker["pid"], signal.SIGKILL)
        mongo["markers"].insert_one({"_id": "killed"})

        expected = {*keys, "victim", "flaky", "slow"}
        wait_for(
            lambda: mongo["results"].count_documents({}) == len(expected),
            "every task's write",
            timeout=120,
        )
        live = wait_for(
            lambda: (pids := children(worker.pid)) and len(pids) == CONCURRENCY and pids,
            "the pool to replace the killed child",
        )
        assert marker["pid"] not in live

        # Every session a task used was ended: each live child's counters (its heartbeat)
        # match the task runs it logged.
        def settled():
            beats, runs = beats_by_pid(mongo), runs_by_pid(mongo)
            return all(
                pid in beats
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

        wait_for(settled, "the children's counters to match their runs", 30, counters)

        # The page, its JSON and the command show the worker's processes, as workers.
        page = admin_client.get(PAGE)
        assert page.status_code == 200
        html = page.content.decode()
        table = html[html.index('id="mp-fleet"') :]
        table = table[: table.index("</table>")]
        for pid in live:
            assert f'<td class="num">{pid}</td><td>worker</td>' in table
        report = admin_client.get(PAGE, {"format": "json"}).json()
        roles = {p["pid"]: p["role"] for p in report["fleet"]["processes"]}
        assert {roles[pid] for pid in live} == {"worker"} and worker.pid not in roles
        out = StringIO()
        call_command("mongo_connections", stdout=out)
        text = out.getvalue()
        # Columns are padded to the widest PID: children whose PIDs differ in width line up apart.
        assert "ROLE" in text and all(re.search(rf"\b{pid} +worker\b", text) for pid in live)
        as_json = StringIO()
        call_command("mongo_connections", "--format", "json", stdout=as_json)
        assert {p["role"] for p in json.loads(as_json.getvalue())["fleet"]["processes"]} == {
            "worker"
        }
    finally:
        samples = sampler.finish()
        worker.stop(sig=signal.SIGQUIT)  # every task has run: a cold shutdown
    log = worker.output()

    # No acknowledged write was lost: every task's document is there, written once.
    results = {doc["_id"]: doc for doc in mongo["results"].find()}
    assert set(results) == expected
    assert results["victim"]["runs"] == 1  # its first run was killed before it stored
    assert "WorkerLostError" in log

    # Connections of the worker's processes to the server never went above the budget.
    assert samples and 0 < max(samples) <= BUDGET, max(samples)

    # The outage became a retry after a backoff (MONGOPOOL_RETRY_AFTER = 1: 0.5 to 1 s),
    # and the task that ran past its soft time limit still ended its session (counted above).
    first, second = sorted(mongo["attempts"].find({"key": "flaky"}), key=lambda a: a["retries"])
    assert (first["retries"], second["retries"]) == (0, 1)
    assert second["at"] - first["at"] >= 0.45
    assert "MongoDB unavailable for Celery task mongopool_tests.flaky[flaky]" in log
    assert "retry 1 of 3" in log
    assert "SoftTimeLimitExceeded" in log


def test_prefork_children_never_use_the_client_their_parent_built(
    mongo, mongo_server, broker, sender, tmp_path
):
    env = _environment(mongo_server, mongo, broker, MONGOPOOL_TEST_PARENT_PING="1")
    worker = celery_worker(env, tmp_path / "celery.log", 2)
    try:
        for n in range(6):
            sender.send_task("mongopool_tests.whose_client", args=[f"c{n}"], task_id=f"c{n}")
        wait_for(lambda: mongo["clients"].count_documents({}) == 6, "the tasks")
        docs = list(mongo["clients"].find())
    finally:
        worker.stop(sig=signal.SIGQUIT)  # every task has run: a cold shutdown
    log = worker.output()
    # The parent's client was connected when the pool forked; each child left it alone and
    # built its own.
    assert all(d["own"] and d["inherited"] == 1 and d["connected_before_fork"] for d in docs)
    assert worker.pid not in {d["pid"] for d in docs}
    assert "django_mongopool.W004" in log
    assert "opened before fork" not in log


def test_the_example_projects_worker_signs_the_guestbook(
    mongo, mongo_server, broker, sender, tmp_path
):
    """``celery -A example_project worker`` as docs/workers.md shows it (solo pool: the worker itself
    runs the tasks and joins the fleet when it starts)."""
    env = {
        k: v
        for k, v in worker_environment().items()
        if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
    }
    env.update(
        MONGODB_URL=mongo_server.url,
        MONGODB_DATABASE=mongo.name,
        MONGODB_HEARTBEAT_SECONDS="1",
        CELERY_BROKER_URL=broker,
        DATABASE_URL=f"sqlite:///{tmp_path / 'example.sqlite3'}",
    )
    worker = Process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "example_project",
            "worker",
            "--pool=solo",
            "-l",
            "INFO",
        ],
        env,
        tmp_path / "example-worker.log",
        cwd=ROOT / "example_project",
    )
    try:
        wait_for(lambda: " ready." in worker.output() or not worker.alive(), "the worker")
        assert worker.alive(), worker.output()[-4000:]
        # In the fleet before it has run any task.
        beat = wait_for(lambda: beats_by_pid(mongo).get(worker.pid), "the worker's heartbeat", 30)
        assert beat["role"] == "worker" and beat["sessions_started"] == 0
        for n in range(3):
            sender.send_task(
                "guestbook.tasks.celery_sign_later", args=[f"later-{n}", "Ada", f"hello {n}"]
            )
        wait_for(
            lambda: mongo["entries"].count_documents({}) == 3, "the entries", 30, worker.output
        )
        wait_for(
            lambda: beats_by_pid(mongo)[worker.pid]["sessions_ended"] == 3,
            "its sessions to end",
            30,
        )
    finally:
        worker.stop(sig=signal.SIGQUIT)
    assert beats_by_pid(mongo)[worker.pid]["sessions_started"] == 3
