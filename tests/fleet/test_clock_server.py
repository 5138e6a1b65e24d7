"""Liveness and age judged by the server's clock, not each host's.

Two real processes (forked) share a fleet budget of 40 with maxPoolSize 30: together they
must take 18 each (40 // 2 - 2 monitors), never 30 each, even when one host's clock is
10 s behind or ahead. The skewed process's own clock is replaced by one that is off by
``skew`` seconds: every ``datetime.now()`` the heartbeat and fleet modules make.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import types
from typing import Any

import pytest

from django_mongopool.fleet import budget, heartbeat, reading, shares
from tests.helpers import bound_child, wait_children

pytestmark = [pytest.mark.server]

BUDGET = 40
MAX_POOL = 30


def skewed_clock(seconds: float) -> types.SimpleNamespace:
    """The ``datetime`` module as a host whose clock is off by ``seconds`` sees it."""
    real = dt.datetime

    class _Meta(type):
        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, real)

    class SkewedDatetime(real, metaclass=_Meta):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return real.now(tz) + dt.timedelta(seconds=seconds)

    module = types.SimpleNamespace(**{k: getattr(dt, k) for k in dir(dt) if not k.startswith("__")})
    module.datetime = SkewedDatetime
    return module


def _process(skew: float, to_parent: int, from_parent: int) -> int:
    """One web process: beat, wait until the other has beaten, beat again, report its share."""
    if skew:
        heartbeat.dt = reading.dt = skewed_clock(skew)  # this process only (a forked child)
    publisher = heartbeat.Publisher()
    publisher.beat()
    os.write(to_parent, b"beaten\n")
    assert os.read(from_parent, 3) == b"go\n"
    publisher.beat()
    state = shares.report() or {}
    os.write(to_parent, json.dumps([state.get("share"), state.get("live_processes")]).encode())
    return 0


@pytest.fixture
def fleet_settings(mongo, settings, monkeypatch):
    heartbeat.stop()  # no background publisher in this process
    monkeypatch.setattr(heartbeat, "running_here", True)
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": MAX_POOL}
    settings.MONGOPOOL_FLEET_BUDGET = BUDGET
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5  # alive for 16 s: far wider than the test runs
    heartbeat.collection().drop()
    yield
    heartbeat.collection().drop()


@pytest.mark.parametrize("skew", [-10, 10])
def test_a_host_clock_off_by_ten_seconds_keeps_the_budget(fleet_settings, skew):
    children: list[tuple[int, int, int]] = []  # pid, and the parent's ends of its pipes up, down
    for own_skew in (0, skew):
        up_read, up_write = os.pipe()
        down_read, down_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                bound_child()  # a hung child ends, and with it the parent's read of its pipe
                os.close(up_read)
                os.close(down_write)
                for _, up, down in children:  # the parent's ends of the first child's pipes:
                    os.close(up)  # held here, they would keep that child from ever seeing
                    os.close(down)  # end-of-file once the parent closes its own
                code = _process(own_skew, up_write, down_read)
            finally:
                os._exit(code)
        os.close(up_write)
        os.close(down_read)
        children.append((pid, up_read, down_write))
    open_fds = {fd for _, up, down in children for fd in (up, down)}
    results = []
    try:
        for _, up, _ in children:
            assert os.read(up, 7) == b"beaten\n"
        for _, _, down in children:
            os.write(down, b"go\n")
        for _, up, _ in children:
            open_fds.discard(up)
            with os.fdopen(up) as reader:
                results.append(json.loads(reader.read()))
    finally:
        # Every pipe first (a child blocked on one sees end-of-file), then every child is
        # reaped, then the exit codes are asserted.
        for fd in open_fds:
            os.close(fd)
        codes = wait_children([pid for pid, _, _ in children])
    assert codes == [0, 0]
    share = budget.fleet_share(BUDGET, 2, MAX_POOL)
    assert results == [[share, 2], [share, 2]], results  # 18 each, not 30
    assert 2 * budget.per_server(share) <= BUDGET
