"""Pool figures: counted by the counting pools' hooks, gauges read from pymongo's pools."""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest

from django_mongopool.client.figures import (
    WAIT_BUCKETS,
    CommandCounter,
    Count,
    PoolMetrics,
    ProcessCounters,
    address_text,
    process_snapshot,
)

ADDR = ("db", 27017)


class FakePool:
    """The pymongo pool attributes read when a snapshot is built."""

    def __init__(self, address=ADDR, idle=0) -> None:
        self.address = address
        self.closed = False
        self.conns = deque(range(idle))


def test_counters_and_gauges():
    metrics = PoolMetrics()
    pool = FakePool(idle=1)
    c = metrics.attach(pool, ADDR)
    for _ in range(3):
        metrics.connection_created(c)
    for n, wait in enumerate((0.002, 0.004, 0.006), start=1):
        c.checked_out_now(wait, checked_out=n)
    next(c.waiting_started)  # a check-out still waiting for room in the pool
    next(c.waiting_started)  # one that waited and gave up
    next(c.waiting_ended)
    next(c.connect_started)  # a connection being opened
    next(c.connect_started)  # one opened
    next(c.connect_ended)
    metrics.checkout_failed(c, "timeout")
    metrics.connection_closed(c, "stale")
    metrics.pool_cleared(c)

    (server,) = metrics.snapshot()
    assert (server.pool, server.address) == ("sync", "db:27017")
    assert server.open == 2
    assert (server.idle, server.in_use, server.waiting, server.connecting) == (1, 1, 1, 1)
    assert server.checkouts == 3
    assert server.checkout_failures == {"timeout": 1}
    assert server.checkout_failures_total == 1
    assert server.checkout_timeouts == 1
    assert server.connections_created == 3
    assert server.connections_closed == {"stale": 1}
    assert server.pool_clears == 1
    assert server.peak_open == 3
    assert server.peak_in_use == 3  # the high-water mark seen at check-out
    assert 4.0 <= server.wait_ms_p50 < 100
    assert 6.0 <= server.wait_ms_max < 100


def test_closed_pools_are_not_read():
    metrics = PoolMetrics()
    pool = FakePool(idle=2)
    c = metrics.attach(pool, ADDR)
    metrics.connection_created(c)
    metrics.connection_created(c)
    assert metrics.snapshot()[0].idle == 2
    pool.closed = True
    (server,) = metrics.snapshot()
    assert (server.idle, server.in_use) == (0, 2)


def test_empty_metrics_have_no_percentiles():
    metrics = PoolMetrics()
    metrics.attach(FakePool(), ADDR)
    (server,) = metrics.snapshot()
    assert server.wait_ms_p99 is None


def test_budget_waits_and_refusals_count_only_while_limited():
    metrics = PoolMetrics()
    c = metrics.attach(FakePool(), ADDR)
    c.checked_out_now(0.05, checked_out=1)
    metrics.checkout_failed(c, "timeout")
    metrics.limited = True
    c.checked_out_now(0.05, checked_out=1)
    c.checked_out_now(0.0, checked_out=1)  # no real wait: not a budget wait
    metrics.checkout_failed(c, "timeout")
    metrics.checkout_failed(c, "timeout", retry=True)  # pymongo's retry of that read
    metrics.checkout_failed(c, "connectionError")
    (server,) = metrics.snapshot()
    assert (server.budget_waits, server.budget_refusals) == (1, 1)


def test_a_retried_check_out_timeout_counts_one_timed_out_operation():
    """pymongo retries a read once after a check-out timeout: two failed check-outs, one
    operation that failed for want of a connection (the 503 it gives)."""
    metrics = PoolMetrics()
    c = metrics.attach(FakePool(), ADDR)
    metrics.checkout_failed(c, "timeout")  # a write: not retried
    metrics.checkout_failed(c, "timeout")  # a read ...
    metrics.checkout_failed(c, "timeout", retry=True)  # ... and its retry
    metrics.checkout_failed(c, "connectionError")
    (server,) = metrics.snapshot()
    assert server.checkout_failures == {"timeout": 3, "connectionError": 1}
    assert server.checkout_timeouts == 2
    snapshot = process_snapshot(ProcessCounters(), [metrics])
    assert snapshot.as_dict()["checkout_timeouts"] == 2


def test_command_counter_counts_success_and_failure():
    counters = ProcessCounters()
    counter = CommandCounter(counters)
    counter.succeeded(None)  # type: ignore[arg-type]
    counter.failed(None)  # type: ignore[arg-type]
    counter.failed(None)  # type: ignore[arg-type]
    assert counters.as_dict()["commands_succeeded"] == 1
    assert counters.as_dict()["commands_failed"] == 2


def _one_connection_checked_out(metrics: PoolMetrics, address: tuple[str, int]) -> None:
    c = metrics.attach(FakePool(address), address)
    metrics.connection_created(c)
    c.checked_out_now(0.0, checked_out=1)


def test_totals_across_servers_and_pools():
    sync, loop = PoolMetrics("sync"), PoolMetrics("async loop 1")
    for addr in (("a", 1), ("b", 2)):
        _one_connection_checked_out(sync, addr)
    _one_connection_checked_out(loop, ("a", 1))
    snapshot = process_snapshot(ProcessCounters(), [sync, loop])
    assert (snapshot.open, snapshot.in_use, snapshot.waiting) == (3, 3, 0)
    assert snapshot.pools == 2
    assert [(s.pool, s.address) for s in snapshot.servers] == [
        ("sync", "a:1"),
        ("sync", "b:2"),
        ("async loop 1", "a:1"),
    ]


class _LockTaken:
    """Stands in for a lock that must not be taken: taking it fails the test at once (holding
    the real one in the test's own thread would deadlock a hook that took it)."""

    def acquire(self, *args: object, **kwargs: object) -> bool:
        raise AssertionError("the check-out hook took the metrics lock")

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        pass


def test_the_check_out_hook_takes_no_lock_of_the_pools_metrics(monkeypatch):
    """Check-out: counters and the server's own histogram lock (the metrics' lock is for rare
    events and snapshots)."""
    metrics = PoolMetrics()
    c = metrics.attach(FakePool(), ADDR)
    metrics.connection_created(c)
    metrics.connection_created(c)
    monkeypatch.setattr(metrics, "_lock", _LockTaken())
    c.checked_out_now(0.0, checked_out=1)
    c.checked_out_now(0.0, checked_out=3)  # capped at the open connections
    monkeypatch.undo()  # the snapshot takes the real lock
    (server,) = metrics.snapshot()
    assert (server.checkouts, server.peak_in_use) == (2, 2)


def test_the_sync_pools_check_out_records_what_checked_out_now_records(monkeypatch):
    """CountingPool._get_conn, around pymongo's own step (stubbed here), gives the same figures
    as the counters' checked_out_now alone, check-out by check-out, and counts nothing for a
    failed one (pymongo's telemetry reports the failure)."""
    from pymongo.errors import AutoReconnect
    from pymongo.pool_options import PoolOptions
    from pymongo.synchronous.pool import Pool

    from django_mongopool.client.figures import pool_class

    inline, reference = PoolMetrics(), PoolMetrics()
    pool = pool_class(inline, is_async=False)(ADDR, PoolOptions())
    counted, expected = pool._mongopool, reference.attach(FakePool(), ADDR)
    for metrics, c in ((inline, counted), (reference, expected)):
        metrics.limited = True
        metrics.connection_created(c)
        metrics.connection_created(c)
    failing = False

    def get_conn(self, started, handler=None):
        if failing:
            raise AutoReconnect("down")
        return "conn"

    monkeypatch.setattr(Pool, "_get_conn", get_conn)
    now = time.monotonic()
    try:
        for started, active in ((now - 0.05, 1), (now, 3), (now, 0), (now - 0.05, 2)):
            pool.active_sockets = active
            assert pool._get_conn(started) == "conn"
            expected.checked_out_now(time.monotonic() - started, active)
            assert counted.peak_in_use == expected.peak_in_use  # after each check-out
        failing = True
        with pytest.raises(AutoReconnect):
            pool._get_conn(now)
    finally:
        monkeypatch.undo()
        pool.close()

    def figures(metrics: PoolMetrics) -> tuple:
        (server,) = metrics.snapshot()
        return (server.checkouts, server.peak_in_use, server.budget_waits, server.waiting)

    assert figures(inline) == figures(reference) == (4, 2, 2, 0)
    assert len(counted.waits) == len(expected.waits) == 4
    assert [w >= 0.05 for w in counted.waits] == [w >= 0.05 for w in expected.waits]


def test_the_check_out_wait_histogram_counts_every_check_out_by_bucket():
    """Cumulative buckets per bound (a wait equal to a bound is in its bucket), every check-out
    in the count, the waits' sum; far more check-outs than the percentiles' recent samples."""
    metrics = PoolMetrics()
    c = metrics.attach(FakePool(), ADDR)
    metrics.connection_created(c)
    waits = [0.0, 0.0001, 0.0002, 0.001, 0.3, 10.0, 42.0]
    for wait in waits:
        c.checked_out_now(wait, checked_out=1)
    for _ in range(2000):
        c.checked_out_now(0.00005, checked_out=1)
    (server,) = metrics.snapshot()
    buckets = dict(zip(WAIT_BUCKETS, server.checkout_wait_buckets, strict=True))
    assert buckets[0.0001] == 2000 + 2  # 0.0 and 0.0001 (le: at most the bound)
    assert buckets[0.00025] == 2000 + 3
    assert buckets[0.001] == buckets[0.0025] == 2000 + 4
    assert buckets[0.25] == 2000 + 4 and buckets[0.5] == 2000 + 5
    assert buckets[10.0] == 2000 + 6  # 42 s: only in +Inf, the count
    assert server.checkout_wait_count == server.checkouts == 2000 + len(waits)
    assert server.checkout_wait_seconds_sum == pytest.approx(sum(waits) + 2000 * 0.00005)
    assert list(server.checkout_wait_buckets) == sorted(server.checkout_wait_buckets)


def test_an_unused_pool_has_an_empty_histogram():
    metrics = PoolMetrics()
    metrics.attach(FakePool(), ADDR)
    (server,) = metrics.snapshot()
    assert server.checkout_wait_buckets == (0,) * len(WAIT_BUCKETS)
    assert (server.checkout_wait_count, server.checkout_wait_seconds_sum) == (0, 0.0)


def test_a_count_reads_every_step_any_thread_took():
    count = Count()
    assert count.read() == 0

    def step() -> None:
        for _ in range(10_000):
            next(count)

    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    readings = [count.read() for _ in range(50)]  # reading meanwhile takes nothing away
    for thread in threads:
        thread.join()
    assert readings == sorted(readings)
    assert count.read() == count.read() == 40_000


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("db.example.net", 27018), "db.example.net:27018"),
        (("::1", 27017), "[::1]:27017"),
        (("fe80::1", None), "[fe80::1]:27017"),
        (("/tmp/mongodb-27017.sock", None), "/tmp/mongodb-27017.sock"),
    ],
)
def test_an_address_is_shown_as_host_and_port_with_ipv6_bracketed(address, shown):
    assert address_text(address) == shown
