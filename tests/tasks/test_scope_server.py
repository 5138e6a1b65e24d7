"""The task scope in this process, on the real server: Celery's traced runs (``apply()``),
Django's tasks framework (the immediate backend), ``task_scope()`` and ``join_fleet()``.

The worker processes themselves are tested in test_celery_server.py and
test_django_tasks_server.py.
"""

from __future__ import annotations

import logging
import os

import pytest
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from django.test import override_settings
from pymongo.errors import AutoReconnect, InvalidOperation

from django_mongopool import get_async_database, get_client, get_database
from django_mongopool.client import pools
from django_mongopool.exceptions import LeakedSessionError, LeakedSessionWarning
from django_mongopool.fleet import heartbeat, roles
from django_mongopool.tasks import celery as celery_integration
from django_mongopool.tasks import django_tasks as tasks_integration
from django_mongopool.tasks.fleet import join_fleet
from django_mongopool.tasks.scope import atask_session, running, task_scope, task_session

try:
    from django.tasks import task as django_task  # Django 6
    from django.tasks.base import TaskResultStatus
except ImportError:
    from django_tasks import task as django_task  # the backport on Django 5.2
    from django_tasks.base import TaskResultStatus

pytestmark = [pytest.mark.server, pytest.mark.core]

IMMEDIATE = {
    "default": {
        "BACKEND": (
            "django.tasks.backends.immediate.ImmediateBackend"
            if tasks_integration.FRAMEWORKS[0] in tasks_integration.frameworks()
            else "django_tasks.backends.immediate.ImmediateBackend"
        )
    }
}


_sessions: list = []


@django_task()
def sign(key: str) -> str:
    session = task_session()
    get_database()["items"].insert_one({"_id": key}, session=session)
    _sessions.append(session)
    return key


@django_task()
def unreachable() -> None:
    get_database()["items"].insert_one({}, session=task_session())
    raise AutoReconnect("db1:27017: connection refused")


@django_task()
async def sign_async(key: str) -> bool:
    session = await atask_session()
    assert await atask_session() is session
    await get_async_database()["items"].insert_one({"_id": key}, session=session)
    _sessions.append(session)
    return True


@pytest.fixture(autouse=True)
def _installed():
    """The receivers, as ready() connects them in a process that has imported Celery and the
    tasks framework (this one imported them after Django started)."""
    assert celery_integration.install()
    assert tasks_integration.install()
    yield
    heartbeat.stop()
    roles.set_role(None)


@pytest.fixture
def app():
    return Celery("unit", broker="memory://", set_as_current=False)


def _counts() -> tuple[int, int]:
    snapshot = pools.snapshot()
    return snapshot.sessions_started, snapshot.sessions_ended


def test_task_scope_builds_its_session_on_first_use_and_ends_it(mongo):
    with task_scope("nightly import") as session:
        assert task_session() is session
        assert _counts() == (0, 0)  # nothing built yet: no session, no client work
        mongo["items"].insert_one({"_id": 1}, session=session)
        mongo["items"].find_one({"_id": 1}, session=session)
    assert _counts() == (1, 1)
    assert session.has_ended
    with pytest.raises(InvalidOperation, match="ended session"):
        mongo["items"].find_one({}, session=session)
    with pytest.raises(RuntimeError, match="outside a task"):
        task_session()


def test_an_unused_scope_counts_nothing(mongo):
    with task_scope("idle"):
        pass
    assert _counts() == (0, 0)


def test_task_scope_ends_its_session_when_the_block_raises(mongo):
    with pytest.raises(ZeroDivisionError), task_scope("failing") as session:
        mongo["items"].insert_one({"_id": 2}, session=session)
        1 / 0  # noqa: B018
    assert session.has_ended and _counts() == (1, 1)


def test_a_leak_in_a_task_scope_is_reported_with_the_task(mongo, settings):
    settings.DEBUG = True
    with (
        pytest.warns(LeakedSessionWarning, match="nightly import") as caught,
        task_scope("nightly import"),
    ):
        leaked = get_client().start_session()  # LEAK
        mongo["items"].find_one({}, session=leaked)
    assert caught[0].filename == __file__
    assert pools.snapshot().leaked_sessions == 1
    leaked.end_session()
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"
    with pytest.raises(LeakedSessionError, match="during second"), task_scope("second"):
        get_client().start_session()


def test_celery_task_gets_a_session_ended_whatever_the_outcome(mongo, app):
    seen = []

    @app.task(bind=True)
    def work(self, outcome):
        session = task_session()
        assert self.request.mongo_session is session
        get_database()["items"].insert_one({"outcome": outcome}, session=session)
        seen.append(session)
        if outcome == "raise":
            raise ValueError("boom")
        if outcome == "soft time limit":
            raise SoftTimeLimitExceeded()
        if outcome == "retry" and not self.request.retries:
            raise self.retry(countdown=0, max_retries=1)
        return outcome

    assert work.apply(args=["return"]).get() == "return"
    for outcome in ("raise", "soft time limit"):
        assert work.apply(args=[outcome]).failed()
    assert work.apply(args=["retry"]).get() == "retry"  # eager: the retry runs at once
    assert len(seen) == 5 and all(s.has_ended for s in seen)
    assert len({id(s) for s in seen}) == 5  # one session per run
    assert _counts() == (5, 5)
    assert running() is None


def test_nested_celery_tasks_each_have_their_own_session(mongo, app):
    @app.task
    def inner():
        get_database()["items"].insert_one({}, session=task_session())
        return id(task_session())

    @app.task
    def outer():
        mine = task_session()
        get_database()["items"].insert_one({}, session=mine)
        other = inner.apply().get()
        assert task_session() is mine and not mine.has_ended
        return other != id(mine)

    assert outer.apply().get() is True
    assert _counts() == (2, 2)


def test_celery_leak_is_reported_not_raised(mongo, app, settings, caplog):
    settings.MONGOPOOL_LEAKED_SESSIONS = "raise"

    @app.task(name="shop.leaky")
    def leaky():
        session = get_client().start_session()
        get_database()["items"].find_one({}, session=session)

    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert leaky.apply(task_id="abc").successful()
    assert "Celery task shop.leaky[abc]" in caplog.text
    assert pools.snapshot().leaked_sessions == 1


def test_a_worker_retries_celery_tasks_that_meet_an_outage(mongo, app, caplog, settings):
    settings.MONGOPOOL_RETRY_AFTER = 1
    attempts = []

    @app.task(bind=True, max_retries=3, name="shop.charge")
    def charge(self, fail_times):
        attempts.append(self.request.retries)
        get_database()["items"].insert_one({}, session=task_session())
        if len(attempts) <= fail_times:
            raise AutoReconnect("db1:27017: connection refused")
        return "charged"

    @app.task(name="shop.broken")
    def broken():
        raise ValueError("not an outage")

    celery_integration._worker_init(sender=type("Worker", (), {"app": app})())
    assert roles.current() == roles.WORKER
    assert hasattr(charge, "_mongopool_run") and hasattr(broken, "_mongopool_run")
    assert not any(
        hasattr(t, "_mongopool_run") for n, t in app.tasks.items() if n.startswith("celery.")
    )

    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert charge.apply(args=[2]).get() == "charged"  # eager: retries run at once
    assert attempts == [0, 1, 2]
    assert "MongoDB unavailable for Celery task shop.charge[" in caplog.text
    assert "AutoReconnect: db1:27017: connection refused; retry 1 of 3 in " in caplog.text
    assert pools.snapshot().as_dict()["unavailable_tasks"] == 2

    attempts.clear()
    result = charge.apply(args=[10])
    assert result.failed() and isinstance(result.result, AutoReconnect)
    assert attempts == [0, 1, 2, 3]  # max_retries, then the error itself
    assert broken.apply().failed() and pools.snapshot().as_dict()["unavailable_tasks"] == 6
    assert _counts()[0] == _counts()[1] == 7


def test_django_task_run_inline_gets_a_session_and_keeps_the_role(mongo):
    _sessions.clear()
    with override_settings(TASKS=IMMEDIATE):
        assert sign.enqueue("a").return_value == "a"
        failed = unreachable.enqueue()
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[-1].exception_class_path == "pymongo.errors.AutoReconnect"
    assert _sessions[0].has_ended and _counts() == (2, 2)
    assert pools.snapshot().as_dict()["unavailable_tasks"] == 1
    assert roles.current() == roles.WEB and not heartbeat.running_here


def test_join_fleet_publishes_as_a_command_and_leaves_at_the_end(mongo, settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    with join_fleet() as publisher:
        assert publisher is not None and heartbeat.wait_for_beats(1)
        (beat,) = heartbeat.collection().find({"pid": os.getpid()})
        assert beat["role"] == "command"
        assert [p["role"] for p in heartbeat.read_fleet().processes] == ["command"]
    assert not heartbeat.running_here
    assert heartbeat.collection().count_documents({"pid": os.getpid()}) == 0
    assert roles.current() == roles.WEB


def test_an_async_django_task_gets_the_loops_session_ended_with_the_task(mongo):
    _sessions.clear()
    with override_settings(TASKS=IMMEDIATE):
        assert sign_async.enqueue("async").return_value is True
    (session,) = _sessions
    assert session.has_ended and running() is None
    assert _counts() == (1, 1)
    assert mongo["items"].find_one({"_id": "async"}) is not None


def test_a_worker_whose_pool_runs_tasks_in_threads_joins_the_fleet_at_its_first_task(mongo, app):
    @app.task
    def noop():
        return heartbeat.running_here

    roles.set_role(roles.WORKER)  # what worker_init did; no worker_process_init (threads pool)
    assert not heartbeat.running_here
    assert noop.apply().get() is True
