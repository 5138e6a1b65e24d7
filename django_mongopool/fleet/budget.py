"""Connection arithmetic: what one process and the whole fleet may open, and when a pool is full.

The checks, the audit, the page, the readiness probe and the heartbeats all use
these functions, so the numbers they show always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# pymongo keeps a monitor and an RTT-monitor connection to every server, outside the pool.
MONITORS_PER_SERVER = 2


def per_server(max_pool_size: int, pools: int = 1) -> int:
    """Connections one process may open to one server: each pool is a client with its own
    monitors (the sync client, and one async client per running event loop)."""
    return pools * (max_pool_size + MONITORS_PER_SERVER)


def per_process(max_pool_size: int, hosts: int, pools: int = 1) -> int:
    """Connections one process may open to the whole deployment."""
    return hosts * per_server(max_pool_size, pools)


def fleet_per_server(processes: int, max_pool_size: int, pools: int = 1) -> int:
    """Connections all processes together may open to one server."""
    return processes * per_server(max_pool_size, pools)


def largest_pool_that_fits(capacity: int, processes: int) -> int:
    """The largest maxPoolSize with which ``processes`` processes stay within ``capacity``."""
    return max(capacity // processes - MONITORS_PER_SERVER, 0)


def percent(part: float, whole: float | None) -> float | None:
    if not whole:
        return None
    return round(100.0 * part / whole, 1)


def is_saturated(pool: Mapping[str, Any], max_pool_size: int) -> bool:
    """A pool is saturated when a request waits for a connection, or every connection is in use."""
    waiting = pool.get("waiting", 0)
    in_use = pool.get("in_use", 0)
    return bool(waiting > 0 or (max_pool_size and in_use >= max_pool_size))


def fleet_share(budget: int, live_processes: int, max_pool_size: int, pools: int = 1) -> int:
    """Pooled connections per server each pool of one process may hold under a fleet budget.

    The budget (per server, monitors included) is split evenly among the live processes,
    and each process's part among its pools (each pool is a client with its own monitors).
    Never above maxPoolSize; never below one connection: a budget too small for the live
    processes is reported (:func:`too_small`), not enforced by starving every request.
    """
    per_pool = budget // max(live_processes, 1) // max(pools, 1)
    return max(1, min(max_pool_size, per_pool - MONITORS_PER_SERVER))


def too_small(budget: int, live_processes: int, pools: int = 1) -> bool:
    """True when even one connection per pool takes the live processes over the budget."""
    return live_processes * per_server(1, pools) > budget


def smallest_budget(processes: int) -> int:
    """The smallest fleet budget that gives each of ``processes`` one pooled connection."""
    return processes * per_server(1)
