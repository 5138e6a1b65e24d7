"""MONGOPOOL_FLEET_BUDGET: the share arithmetic, the checks, and the client it starts with (no server)."""

from __future__ import annotations

import pytest
from django.core import checks

from django_mongopool.conf import conf
from django_mongopool.fleet import budget


@pytest.mark.parametrize(
    ("fleet_budget", "live", "max_pool", "pools", "share"),
    [
        (24, 2, 5, 1, 5),  # 12 per process - 2 monitors = 10, capped at maxPoolSize
        (24, 8, 5, 1, 1),  # 3 per process - 2 monitors
        (24, 4, 10, 1, 4),
        (24, 4, 10, 2, 1),  # two clients (sync + one event loop), each with its monitors
        (48, 2, 10, 2, 10),  # 24 per process, 12 per client, less 2 monitors
        (24, 30, 10, 1, 1),  # too small a budget: one connection, never zero (check E006)
        (100, 1, 10, 1, 10),
    ],
)
def test_share(fleet_budget, live, max_pool, pools, share):
    assert budget.fleet_share(fleet_budget, live, max_pool, pools) == share


@pytest.mark.parametrize("pools", [1, 2, 3])
def test_shares_of_the_fleet_stay_within_the_budget(pools):
    for fleet_budget in range(3, 200, 7):
        for live in range(1, 60):
            share = budget.fleet_share(fleet_budget, live, 10_000, pools)
            within = live * budget.per_server(share, pools) <= fleet_budget
            assert within or budget.too_small(fleet_budget, live, pools), (fleet_budget, live)


def _ids(**overrides) -> set[str]:
    from django.test import override_settings

    with override_settings(**overrides):
        return {m.id for m in checks.run_checks() if m.id.startswith("django_mongopool.")}


def test_checks_quiet_without_and_with_a_sound_budget():
    assert not _ids() & {"django_mongopool.E006", "django_mongopool.E007", "django_mongopool.W006"}
    sound = {
        "MONGOPOOL_FLEET_BUDGET": 60,
        "MONGOPOOL_PROCESSES": 4,
        "MONGOPOOL_HEARTBEAT_SECONDS": 5,
    }
    assert not _ids(**sound) & {"django_mongopool.E006", "django_mongopool.E007"}


def test_budget_too_small_for_the_processes_is_an_error():
    found = _ids(MONGOPOOL_FLEET_BUDGET=10, MONGOPOOL_PROCESSES=4, MONGOPOOL_HEARTBEAT_SECONDS=5)
    assert "django_mongopool.E006" in found  # 4 x (1 + 2 monitors) = 12 > 10


def test_budget_without_heartbeats_is_an_error():
    assert "django_mongopool.E007" in _ids(MONGOPOOL_FLEET_BUDGET=60)


def test_budget_above_known_capacity_is_a_warning_and_replaces_e005():
    found = _ids(
        MONGOPOOL_FLEET_BUDGET=500,
        MONGOPOOL_SERVER_MAX_CONNECTIONS=100,
        MONGOPOOL_PROCESSES=50,
        MONGOPOOL_HEARTBEAT_SECONDS=5,
    )
    assert "django_mongopool.W006" in found
    assert "django_mongopool.E005" not in found  # the budget bounds the fleet, not maxPoolSize


def test_a_budgeted_client_starts_at_the_minimum_share(settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 20, "minPoolSize": 5}
    settings.MONGOPOOL_FLEET_BUDGET = 100
    settings.MONGOPOOL_FLEET_MIN_SHARE = 2
    config = conf.client_config
    assert config.max_pool_size == 20  # what the share may grow to
    assert (config.kwargs["maxPoolSize"], config.kwargs["minPoolSize"]) == (2, 0)
    settings.MONGOPOOL_FLEET_BUDGET = None
    assert conf.client_config.kwargs["maxPoolSize"] == 20


def test_budget_settings_are_validated(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.MONGOPOOL_FLEET_BUDGET = "24"
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_FLEET_BUDGET must be an integer"):
        conf.fleet_budget  # noqa: B018
