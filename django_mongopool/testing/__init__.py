"""Test helpers for projects that use django-mongopool (see also the pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django_mongopool import sessions
from django_mongopool.client import get_metrics

__all__ = ["assert_max_connections", "assert_no_leaked_sessions"]


@contextmanager
def assert_max_connections(limit: int) -> Iterator[None]:
    """Fail if the pool ever held more than ``limit`` connections to one server in the block.

    Exact, not sampled: it reads the pool listener's high-water mark (monitor
    connections, which pymongo keeps outside the pool, are not counted).
    """
    get_metrics().reset_peaks()
    yield
    peaks = {server.address: server.peak_open for server in get_metrics().snapshot().servers}
    over = {address: peak for address, peak in peaks.items() if peak > limit}
    if over:
        raise AssertionError(f"More than {limit} pooled connection(s) to a server: {over}")


@contextmanager
def assert_no_leaked_sessions() -> Iterator[None]:
    """Fail if a session started in the block (or in a request served in it) was left open."""
    before = get_metrics().snapshot().leaked_sessions
    with sessions.tracking() as tracked:
        yield
    leaked = sessions.leaked(tracked)
    during_requests = get_metrics().snapshot().leaked_sessions - before
    if leaked or during_requests > 0:
        sites = ", ".join(t.site for t in leaked) or "inside a request (see the warning or log)"
        raise AssertionError(
            f"{len(leaked) + max(during_requests, 0)} MongoDB session(s) were not ended: {sites}"
        )
