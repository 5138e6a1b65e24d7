"""The task integrations without a server: roles in heartbeats, the opt-out setting, the
Celery backoff, where a task scope may be used, the mongomock tier."""

from __future__ import annotations

import datetime as dt
import logging
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_mongopool.apps import install_task_integrations
from django_mongopool.conf import conf
from django_mongopool.fleet import heartbeat, reading, roles
from django_mongopool.request.unavailable import _RateLimitedLog
from django_mongopool.tasks import celery as celery_integration
from django_mongopool.tasks import django_tasks as tasks_integration
from django_mongopool.tasks.scope import atask_session, running, task_scope, task_session


@pytest.fixture(autouse=True)
def _default_role():
    yield
    roles.set_role(None)


NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _beat(**fields):
    return heartbeat.sign(
        {
            "_id": "h:1:x",
            "host": "h",
            "pid": 1,
            "updated_at": NOW,
            "interval": 10,
            "max_pool_size": 5,
            **fields,
        }
    )


def test_heartbeats_carry_the_process_role():
    assert heartbeat.build_document("b", dt.datetime.now(dt.UTC), 0)["role"] == "web"
    roles.set_role(roles.WORKER)
    assert heartbeat.build_document("b", dt.datetime.now(dt.UTC), 0)["role"] == "worker"


def test_the_fleet_reads_roles_and_skips_beats_with_a_bogus_one():
    assert "role" in reading.FIELDS  # signed: a forged role is a forged beat
    assert reading.parse(_beat(role="worker"), NOW)["role"] == "worker"
    assert reading.parse(_beat(role="command"), NOW)["role"] == "command"
    assert reading.parse(_beat(), NOW)["role"] == "web"  # a beat from an older version
    signed = [_beat(role=bad) for bad in ("admin", 5, ["web"], {"$gt": ""}, None)] + [_beat()]
    found = reading.read(signed, NOW, secrets=heartbeat.secrets())
    assert found.unreadable == 5 and [p["role"] for p in found.processes] == ["web"]
    tampered = {**_beat(role="web"), "role": "worker"}
    found = reading.read([tampered], NOW, secrets=heartbeat.secrets())
    assert found.forged == 1 and not found.processes


def test_a_role_must_be_one_the_app_knows():
    with pytest.raises(ValueError, match="role must be one of 'web', 'worker', 'command'"):
        roles.set_role("cron")
    roles.set_role(roles.COMMAND)
    assert roles.current() == "command" and roles.is_set()
    roles.set_role(None)
    assert roles.current() == "web" and not roles.is_set()


def test_the_opt_out_setting_is_validated(settings):
    assert conf.task_integration is True
    settings.MONGOPOOL_TASK_INTEGRATION = "no"
    with pytest.raises(
        ImproperlyConfigured, match="MONGOPOOL_TASK_INTEGRATION must be True or False"
    ):
        _ = conf.task_integration


@pytest.mark.parametrize("enabled", [True, False])
def test_ready_connects_the_integrations_unless_opted_out(settings, monkeypatch, enabled):
    settings.MONGOPOOL_TASK_INTEGRATION = enabled
    called = []
    monkeypatch.setattr(celery_integration, "install", lambda: called.append("celery"))
    monkeypatch.setattr(tasks_integration, "install", lambda: called.append("django_tasks"))
    install_task_integrations()  # what AppConfig.ready() runs
    assert called == (["celery", "django_tasks"] if enabled else [])


def test_celery_hooks_need_celery_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "celery", raising=False)
    assert celery_integration.install() is False


def test_the_tasks_framework_in_use():
    import django

    found = tasks_integration.frameworks()
    if django.VERSION >= (6, 0):
        assert found[0] == "django.tasks"
    else:
        import django_tasks  # noqa: F401  (in INSTALLED_APPS it is imported at start-up)

        assert tasks_integration.frameworks() == ["django_tasks"]
    assert tasks_integration._inline(type("ImmediateBackend", (), {}))
    assert not tasks_integration._inline(type("DatabaseBackend", (), {}))


@pytest.mark.parametrize("retries", range(12))
def test_celery_backoff_doubles_never_retries_at_once_and_has_a_ceiling(settings, retries):
    settings.MONGOPOOL_RETRY_AFTER = 5
    base = min(600, 5 * 2**retries)
    for _ in range(50):
        assert base / 2 <= celery_integration.backoff(retries) <= base
    assert celery_integration.backoff(retries, ceiling=7) <= 7


def test_task_session_outside_a_task_says_where_it_works():
    assert running() is None
    with pytest.raises(RuntimeError, match="outside a task: call it from a Celery task"):
        task_session()


async def test_atask_session_outside_a_task_says_where_it_works():
    with pytest.raises(RuntimeError, match="outside a task: await it in an async Django task"):
        await atask_session()


def test_task_scope_on_the_mock_tier(mongopool_mock):
    with task_scope("import") as session:
        assert task_session() is session
        mongopool_mock["items"].insert_one({"_id": 1}, session=session)
    assert running() is None
    assert mongopool_mock["items"].count_documents({}) == 1


def test_task_outage_lines_are_rate_limited_and_counted(caplog, monkeypatch):
    clock = iter([100.0, 101.0, 102.0, 111.0])
    monkeypatch.setattr("django_mongopool.request.unavailable.time.monotonic", lambda: next(clock))
    limiter = _RateLimitedLog(10.0, "tasks that met an outage")
    with caplog.at_level(logging.WARNING, logger="django_mongopool"):
        assert [limiter("outage %s", n) for n in range(4)] == [True, False, False, True]
    assert caplog.messages == [
        "outage 0",
        "outage 3 (2 more tasks that met an outage since the previous line)",
    ]
