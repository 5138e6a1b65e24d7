"""Every pool of this process (the sync client's and each event loop's) in one snapshot."""

from __future__ import annotations

from django_mongopool.client.event_loops import loop_pools
from django_mongopool.client.figures import PoolMetrics, ProcessSnapshot, process_snapshot
from django_mongopool.client.process import process_counters, sync_pool


def all_pools() -> list[PoolMetrics]:
    return [sync_pool(), *loop_pools()]


def snapshot() -> ProcessSnapshot:
    """Figures of every pool of this process and its counters, now."""
    return process_snapshot(process_counters(), all_pools())
