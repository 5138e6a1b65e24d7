"""Test helpers for projects that use django-mongopool (see also the pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django_mongopool import leaks, pools

__all__ = ["assert_max_connections", "assert_no_leaked_sessions"]


@contextmanager
def assert_max_connections(limit: int) -> Iterator[None]:
    """Fail if the pool ever held more than ``limit`` connections to one server in the block.

    Exact, not sampled: it reads the pool listener's high-water mark (monitor
    connections, which pymongo keeps outside the pool, are not counted).
    """
    for pool in pools.all_pools():
        pool.reset_peaks()
    yield
    peaks = {(s.pool, s.address): s.peak_open for s in pools.snapshot().servers}
    over = {f"{pool} {address}": peak for (pool, address), peak in peaks.items() if peak > limit}
    if over:
        raise AssertionError(f"More than {limit} pooled connection(s) to a server: {over}")


@contextmanager
def assert_no_leaked_sessions() -> Iterator[None]:
    """Fail if a session started in the block (or in a request served in it) was left open."""
    before = pools.snapshot().leaked_sessions
    with leaks.tracking() as tracked:
        yield
    leaked = leaks.leaked(tracked)
    during_requests = pools.snapshot().leaked_sessions - before
    if leaked or during_requests > 0:
        sites = ", ".join(t.site for t in leaked) or "inside a request (see the warning or log)"
        raise AssertionError(
            f"{len(leaked) + max(during_requests, 0)} MongoDB session(s) were not ended: {sites}"
        )
