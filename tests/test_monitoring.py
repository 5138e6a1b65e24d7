"""The listeners are tested directly: pymongo only prints a listener's exceptions."""

from __future__ import annotations

from pymongo import monitoring

from django_mongopool.monitoring import CommandCounter, PoolListener, PoolMetrics

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

    (server,) = metrics.snapshot().servers
    assert server.address == "db:27017"
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
    assert server.peak_in_use == 3
    assert server.wait_ms_p50 == 4.0
    assert server.wait_ms_max == 6.0


def test_empty_metrics_have_no_percentiles():
    metrics = PoolMetrics()
    metrics.checkout_started(ADDR)
    (server,) = metrics.snapshot().servers
    assert server.wait_ms_p99 is None


def test_command_counter_counts_success_and_failure():
    metrics = PoolMetrics()
    counter = CommandCounter(metrics)
    counter.succeeded(None)  # type: ignore[arg-type]
    counter.failed(None)  # type: ignore[arg-type]
    counter.failed(None)  # type: ignore[arg-type]
    snapshot = metrics.snapshot()
    assert (snapshot.commands_succeeded, snapshot.commands_failed) == (1, 2)


def test_totals_across_servers():
    metrics = PoolMetrics()
    for addr in (("a", 1), ("b", 2)):
        metrics.connection_created(addr)
        metrics.checkout_started(addr)
        metrics.checked_out(addr, 0.001)
    snapshot = metrics.snapshot()
    assert (snapshot.open, snapshot.in_use, snapshot.waiting) == (2, 2, 0)
