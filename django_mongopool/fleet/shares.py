"""This process's share of ``MONGOPOOL_FLEET_BUDGET``, applied to its pools.

How the share is enforced: by resizing the pools pymongo already has. pymongo's
pool admits a check-out only while fewer than ``pool.max_pool_size`` connections
are checked out or being created, and otherwise waits (at most
``waitQueueTimeoutMS``) for one to come back. With a budget the client is built
with ``maxPoolSize`` = ``MONGOPOOL_FLEET_MIN_SHARE``, so every pool starts small,
and each heartbeat sets every pool's limit to the process's share (up to the
configured ``maxPoolSize``), waking waiters when it grows. A request above the
share waits like any request on a full pool and gets the usual 503 +
``Retry-After`` after ``waitQueueTimeoutMS``; requests in flight keep their
connections. Idle connections above a shrunken share are closed by the
background thread within :data:`TRIM_SECONDS`. No request is dropped or hangs
because the share changed.

Resizing needs pymongo internals (the pools' ``max_pool_size``, ``size_cond``, idle
connections). On a pymongo where :func:`django_mongopool.client.pymongo_internals.verify` finds one moved,
the budget is *refused* rather than pretending to limit: it is logged once as an error,
system check E010 names what moved, :func:`report` says ``active: False``, and no pool is
ever resized, so every pool keeps the size it was built with, ``MONGOPOOL_FLEET_MIN_SHARE``
(pymongo's own ``maxPoolSize``, which needs no internal).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from pymongo.monitoring import ConnectionClosedReason

from django_mongopool.client import pools, pymongo_internals
from django_mongopool.client.event_loops import loop_clients
from django_mongopool.client.process import built_client
from django_mongopool.conf import conf
from django_mongopool.fleet import budget
from django_mongopool.guards import forks

logger = logging.getLogger("django_mongopool")

TRIM_SECONDS = 0.5  # how often the background thread closes idle connections above the share


@dataclass
class ShareState:
    budget: int | None = None
    share: int | None = None  # pooled connections per server, per pool
    max_pool_size: int | None = None
    live_processes: int | None = None
    source: str = "no budget"
    updated_at: float | None = None
    too_small: bool = False  # even one connection per pool takes the fleet over the budget


_lock = threading.Lock()
_state = ShareState()
_warned_unreadable = False
_warned_too_small = False
_logged_refusal = False


def refused() -> str | None:
    """Why the budget cannot run on this pymongo (what moved), or None when it can."""
    feature = pymongo_internals.status().feature("fleet_budget")
    return None if feature.ok else feature.summary()


def _refuse(reason: str) -> None:
    """Log the refusal once per process."""
    global _logged_refusal
    if _logged_refusal:
        return
    _logged_refusal = True
    logger.error(
        "Fleet budget refused: pymongo %s does not have the pool internals the budget resizes "
        "(%s). No pool is resized; each keeps MONGOPOOL_FLEET_MIN_SHARE = %d connection(s) per "
        "server. See system check django_mongopool.E010.",
        pymongo_internals.status().pymongo_version,
        reason,
        conf.fleet_min_share,
    )


def _all_pools() -> list[tuple[Any, bool]]:
    """(pool, is_sync) for the sync client and every event loop's async client of this process."""
    found: list[tuple[Any, bool]] = []
    sync = built_client()
    if sync is not None:
        found += [(pool, True) for pool in pymongo_internals.client_pools(sync)]
    for loop_client in loop_clients():
        found += [(pool, False) for pool in pymongo_internals.client_pools(loop_client)]
    return found


def _pool_count() -> int:
    return len(pools.all_pools())


def apply(share: int) -> None:
    """Set every pool's limit to ``share``; wake waiters when it grows; trim when it shrinks."""
    reason = refused()
    if reason is not None:
        _refuse(reason)
        return
    for pool, is_sync in _all_pools():
        pymongo_internals.set_pool_limit(pool, share, is_sync)
    _mark_limited(share)
    trim()


def _mark_limited(share: int) -> None:
    limited = share < (_state.max_pool_size or share)
    for metrics in pools.all_pools():
        metrics.limited = limited


def trim() -> int:
    """Close idle connections of sync pools above their limit; return how many were closed."""
    if refused() is not None:
        return 0
    closed = 0
    for pool, is_sync in _all_pools():
        if is_sync:  # async pools shed idle connections through maxIdleTimeMS
            closed += pymongo_internals.trim_idle(pool, ConnectionClosedReason.IDLE)
    return closed


def update(live_processes: int) -> int | None:
    """Recompute the share from the live processes seen in the heartbeats, and apply it."""
    global _warned_unreadable, _warned_too_small
    fleet_budget = conf.fleet_budget
    if fleet_budget is None:
        return None
    reason = refused()
    if reason is not None:
        _refuse(reason)
        return None
    max_pool = conf.client_config.max_pool_size
    pools_here = _pool_count()
    share = budget.fleet_share(fleet_budget, live_processes, max_pool, pools_here)
    too_small = budget.too_small(fleet_budget, live_processes, pools_here)
    if too_small and not _warned_too_small:
        logger.warning(
            "Fleet budget: %d live processes with %d pool(s) each need at least %d connections "
            "per server, more than MONGOPOOL_FLEET_BUDGET = %d; each pool keeps one connection.",
            live_processes,
            pools_here,
            live_processes * budget.per_server(1, pools_here),
            fleet_budget,
        )
    _warned_too_small = too_small
    with _lock:
        _state.budget, _state.max_pool_size = fleet_budget, max_pool
        _state.share, _state.live_processes = share, live_processes
        _state.source, _state.updated_at = "fleet", time.time()
        _state.too_small = too_small
        if _warned_unreadable:
            logger.warning(
                "Fleet budget: heartbeats readable again; share %d from the fleet.", share
            )
        _warned_unreadable = False
    apply(share)
    return share


def fleet_unreadable(reason: str) -> int | None:
    """The heartbeats cannot be read: keep the last known share, or the minimum share."""
    global _warned_unreadable
    fleet_budget = conf.fleet_budget
    if fleet_budget is None:
        return None
    refusal = refused()
    if refusal is not None:
        _refuse(refusal)
        return None
    with _lock:
        known = _state.share is not None and not _state.source.startswith("minimum")
        _state.budget = fleet_budget
        _state.max_pool_size = conf.client_config.max_pool_size
        if not known:
            _state.share = min(conf.fleet_min_share, _state.max_pool_size)
        _state.source = (
            "last known share (heartbeats unreadable)"
            if known
            else "minimum share (heartbeats unreadable)"
        )
        share = _state.share
        first = not _warned_unreadable
        _warned_unreadable = True
    if first:
        logger.warning(
            "Fleet budget: the heartbeat collection cannot be read (%s); keeping %s of %d "
            "pooled connection(s) per server until it can.",
            reason,
            "the last known share" if known else "the minimum share",
            share,
        )
    assert share is not None
    apply(share)
    return share


def pool_limit(max_pool_size: int) -> int:
    """What a pool of this process may hold now: its share under a budget, else maxPoolSize."""
    if conf.fleet_budget is None:
        return max_pool_size
    share = _state.share
    return min(conf.fleet_min_share, max_pool_size) if share is None else share


def report() -> dict[str, Any] | None:
    """The budget section of the page, JSON, metrics and heartbeats (None without a budget)."""
    fleet_budget = conf.fleet_budget
    if fleet_budget is None:
        return None
    reason = refused()
    with _lock:
        state = asdict(_state)
    if state["share"] is None or reason is not None:
        state.update(
            budget=fleet_budget,
            share=min(conf.fleet_min_share, conf.client_config.max_pool_size),
            max_pool_size=conf.client_config.max_pool_size,
            source="minimum share (fleet not seen yet)",
        )
    state["active"] = reason is None
    if reason is not None:
        state.update(
            live_processes=None,
            updated_at=None,
            source=f"refused on pymongo {pymongo_internals.status().pymongo_version}, pools stay at "
            f"the minimum share (check E010): {reason}",
        )
    snapshot = pools.snapshot()
    state["waits"] = sum(s.budget_waits for s in snapshot.servers)
    state["refusals"] = sum(s.budget_refusals for s in snapshot.servers)
    return state


def forget() -> None:
    """A new client (settings change): the share is unknown again."""
    global _state, _warned_unreadable, _logged_refusal
    with _lock:
        _state = ShareState()
        _warned_unreadable = _logged_refusal = False


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: a lock held at fork time is replaced, never acquired."""
    global _lock, _state, _warned_unreadable, _warned_too_small, _logged_refusal
    _lock = threading.Lock()
    _state = ShareState()
    _warned_unreadable = _warned_too_small = _logged_refusal = False
