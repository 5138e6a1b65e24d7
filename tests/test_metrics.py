"""The listeners are tested directly: pymongo only prints a listener's exceptions."""

from __future__ import annotations

from pymongo import monitoring

from django_mongopool.metrics import (
    CommandCounter,
    PoolListener,
    PoolMetrics,
    ProcessCounters,
    process_snapshot,
)

ADDR = ("db", 27017)


def test_counters_follow_pool_events():
    metrics = PoolMetrics()
    listener = PoolListener(metrics)
    listener.pool_created(monitoring.PoolCreatedEvent(ADDR, {}))
    for conn_id in (1, 2, 3):
        listener.connection_created(monitoring.ConnectionCreatedEvent(ADDR, conn_id))
        listener.connection_check_out_started(monitoring.ConnectionCheckOutStartedEvent(ADDR))
        listener.connection_checked_out(
            monitoring.ConnectionCheckedOutEvent(ADDR, conn_id, 0.002 * conn_id)
        )
    listener.connection_check_out_started(
        monitoring.ConnectionCheckOutStartedEvent(ADDR)
    )  # waiting
    listener.connection_check_out_started(monitoring.ConnectionCheckOutStartedEvent(ADDR))
    listener.connection_check_out_failed(
        monitoring.ConnectionCheckOutFailedEvent(ADDR, "timeout", 2.0)
    )
    listener.connection_checked_in(monitoring.ConnectionCheckedInEvent(ADDR, 1))
    listener.connection_closed(monitoring.ConnectionClosedEvent(ADDR, 3, "stale"))
    listener.pool_cleared(monitoring.PoolClearedEvent(ADDR))

    (server,) = metrics.snapshot()
    assert (server.pool, server.address) == ("sync", "db:27017")
    assert server.open == 2
    assert (
        server.in_use == 2
    )  # 3 out, 1 in (closing a checked-out connection is counted on check-in)
    assert server.idle == 0
    assert server.waiting == 1
    assert server.checkouts == 3
    assert server.checkout_failures == {"timeout": 1}
    assert server.checkout_failures_total == 1
    assert server.connections_created == 3
    assert server.connections_closed == {"stale": 1}
    assert server.pool_clears == 1
    assert server.peak_open == 3
    assert server.peak_in_use == 2  # sampled when figures are read, not per event
    assert server.wait_ms_p50 == 4.0
    assert server.wait_ms_max == 6.0


def test_empty_metrics_have_no_percentiles():
    metrics = PoolMetrics()
    PoolListener(metrics).connection_check_out_started(
        monitoring.ConnectionCheckOutStartedEvent(ADDR)
    )
    (server,) = metrics.snapshot()
    assert server.wait_ms_p99 is None


def test_command_counter_counts_success_and_failure():
    counters = ProcessCounters()
    counter = CommandCounter(counters)
    counter.succeeded(None)  # type: ignore[arg-type]
    counter.failed(None)  # type: ignore[arg-type]
    counter.failed(None)  # type: ignore[arg-type]
    assert counters.as_dict()["commands_succeeded"] == 1
    assert counters.as_dict()["commands_failed"] == 2


def _checked_out(listener: PoolListener, addr: tuple[str, int]) -> None:
    listener.connection_created(monitoring.ConnectionCreatedEvent(addr, 1))
    listener.connection_check_out_started(monitoring.ConnectionCheckOutStartedEvent(addr))
    listener.connection_checked_out(monitoring.ConnectionCheckedOutEvent(addr, 1, 0.001))


def test_totals_across_servers_and_pools():
    sync, loop = PoolMetrics("sync"), PoolMetrics("async loop 1")
    for addr in (("a", 1), ("b", 2)):
        _checked_out(PoolListener(sync), addr)
    _checked_out(PoolListener(loop), ("a", 1))
    snapshot = process_snapshot(ProcessCounters(), [sync, loop])
    assert (snapshot.open, snapshot.in_use, snapshot.waiting) == (3, 3, 0)
    assert snapshot.pools == 2
    assert [(s.pool, s.address) for s in snapshot.servers] == [
        ("sync", "a:1"),
        ("sync", "b:2"),
        ("async loop 1", "a:1"),
    ]


def test_hot_path_hooks_take_no_lock():
    """Check-out, check-in: counters only (the lock is for rare events)."""
    metrics = PoolMetrics()
    listener = PoolListener(metrics)
    _checked_out(listener, ADDR)
    metrics._lock.acquire()  # a held lock would block a locking hook forever
    try:
        listener.connection_check_out_started(monitoring.ConnectionCheckOutStartedEvent(ADDR))
        listener.connection_checked_out(monitoring.ConnectionCheckedOutEvent(ADDR, 1, 0.0))
        listener.connection_checked_in(monitoring.ConnectionCheckedInEvent(ADDR, 1))
    finally:
        metrics._lock.release()
    (server,) = metrics.snapshot()
    assert (server.checkouts, server.in_use) == (2, 1)
