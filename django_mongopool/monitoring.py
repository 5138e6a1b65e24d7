"""pymongo pool and command listeners feeding thread-safe counters.

Each listener hook is O(1) under one lock; :meth:`PoolMetrics.snapshot`
returns frozen dataclasses that views, the command and heartbeats share.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from pymongo import monitoring

WAIT_SAMPLES = 1024  # recent check-out waits kept per server for percentiles
HISTORY_SAMPLES = 150  # pool samples kept for the page's chart (5 minutes at one per 2 s)


@dataclass
class _ServerCounters:
    created: int = 0
    closed: int = 0
    closed_by_reason: Counter[str] = field(default_factory=Counter)
    checkout_started: int = 0
    checked_out: int = 0
    checkout_failed: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    checked_in: int = 0
    pool_cleared: int = 0
    peak_open: int = 0
    peak_in_use: int = 0
    waits_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WAIT_SAMPLES))


@dataclass(frozen=True)
class ServerPoolSnapshot:
    address: str
    open: int
    in_use: int
    idle: int
    waiting: int
    checkouts: int
    checkout_failures: dict[str, int]
    connections_created: int
    connections_closed: dict[str, int]
    pool_clears: int
    peak_open: int
    peak_in_use: int
    wait_ms_p50: float | None
    wait_ms_p95: float | None
    wait_ms_p99: float | None
    wait_ms_max: float | None

    @property
    def checkout_failures_total(self) -> int:
        return sum(self.checkout_failures.values())


@dataclass(frozen=True)
class PoolSnapshot:
    pid: int
    taken_at: float
    servers: tuple[ServerPoolSnapshot, ...]
    sessions_started: int
    sessions_ended: int
    commands_succeeded: int
    commands_failed: int
    unavailable_responses: int
    leaked_sessions: int

    @property
    def open(self) -> int:
        return sum(server.open for server in self.servers)

    @property
    def in_use(self) -> int:
        return sum(server.in_use for server in self.servers)

    @property
    def waiting(self) -> int:
        return sum(server.waiting for server in self.servers)

    @property
    def sessions_open(self) -> int:
        return self.sessions_started - self.sessions_ended

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by heartbeats, the command and the page."""
        data = asdict(self)
        data["servers"] = [asdict(server) for server in self.servers]
        data.update(open=self.open, in_use=self.in_use, waiting=self.waiting)
        data["checkout_timeouts"] = sum(
            server.checkout_failures.get("timeout", 0) for server in self.servers
        )
        return data


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return round(ordered[index], 3)


def _address(address: Any) -> str:
    host, port = address
    return f"{host}:{port}"


class PoolMetrics:
    """Counters for one process. Safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[str, _ServerCounters] = {}
        self.pid = os.getpid()
        self.sessions_started = 0
        self.sessions_ended = 0
        self.commands_succeeded = 0
        self.commands_failed = 0
        self.unavailable_responses = 0
        self.leaked_sessions = 0
        self._history: deque[tuple[float, int, int, int]] = deque(maxlen=HISTORY_SAMPLES)

    def reset_peaks(self) -> None:
        """Start the high-water marks again from the current values (for assertions on a block)."""
        with self._lock:
            for server in self._servers.values():
                server.peak_open = server.created - server.closed
                server.peak_in_use = server.checked_out - server.checked_in

    def sample(self) -> None:
        """Record (time, open, in use, waiting) for the history chart."""
        snapshot = self.snapshot()
        with self._lock:
            self._history.append(
                (round(snapshot.taken_at, 3), snapshot.open, snapshot.in_use, snapshot.waiting)
            )

    def history(self) -> list[dict[str, float]]:
        with self._lock:
            samples = list(self._history)
        return [{"t": t, "open": o, "in_use": u, "waiting": w} for t, o, u, w in samples]

    def _server(self, address: Any) -> _ServerCounters:
        key = _address(address)
        counters = self._servers.get(key)
        if counters is None:
            counters = self._servers[key] = _ServerCounters()
        return counters

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # Called by the pool listener.
    def connection_created(self, address: Any) -> None:
        with self._lock:
            server = self._server(address)
            server.created += 1
            server.peak_open = max(server.peak_open, server.created - server.closed)

    def connection_closed(self, address: Any, reason: str) -> None:
        with self._lock:
            server = self._server(address)
            server.closed += 1
            server.closed_by_reason[reason] += 1

    def checkout_started(self, address: Any) -> None:
        with self._lock:
            self._server(address).checkout_started += 1

    def checked_out(self, address: Any, duration: float | None) -> None:
        with self._lock:
            server = self._server(address)
            server.checked_out += 1
            server.peak_in_use = max(server.peak_in_use, server.checked_out - server.checked_in)
            if duration is not None:
                server.waits_ms.append(duration * 1000)

    def checkout_failed(self, address: Any, reason: str) -> None:
        with self._lock:
            server = self._server(address)
            server.checkout_failed += 1
            server.failed_by_reason[reason] += 1

    def checked_in(self, address: Any) -> None:
        with self._lock:
            self._server(address).checked_in += 1

    def pool_cleared(self, address: Any) -> None:
        with self._lock:
            self._server(address).pool_cleared += 1

    def snapshot(self) -> PoolSnapshot:
        with self._lock:
            servers = []
            for address, c in sorted(self._servers.items()):
                waits = sorted(c.waits_ms)
                open_ = c.created - c.closed
                in_use = c.checked_out - c.checked_in
                servers.append(
                    ServerPoolSnapshot(
                        address=address,
                        open=open_,
                        in_use=in_use,
                        idle=max(0, open_ - in_use),
                        waiting=max(0, c.checkout_started - c.checked_out - c.checkout_failed),
                        checkouts=c.checked_out,
                        checkout_failures=dict(c.failed_by_reason),
                        connections_created=c.created,
                        connections_closed=dict(c.closed_by_reason),
                        pool_clears=c.pool_cleared,
                        peak_open=c.peak_open,
                        peak_in_use=c.peak_in_use,
                        wait_ms_p50=_percentile(waits, 0.50),
                        wait_ms_p95=_percentile(waits, 0.95),
                        wait_ms_p99=_percentile(waits, 0.99),
                        wait_ms_max=round(waits[-1], 3) if waits else None,
                    )
                )
            return PoolSnapshot(
                pid=self.pid,
                taken_at=time.time(),
                servers=tuple(servers),
                sessions_started=self.sessions_started,
                sessions_ended=self.sessions_ended,
                commands_succeeded=self.commands_succeeded,
                commands_failed=self.commands_failed,
                unavailable_responses=self.unavailable_responses,
                leaked_sessions=self.leaked_sessions,
            )


class PoolListener(monitoring.ConnectionPoolListener):
    """Feeds :class:`PoolMetrics` from pymongo's connection pool events."""

    def __init__(self, metrics: PoolMetrics) -> None:
        self.metrics = metrics

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        self.metrics.pool_cleared(event.address)

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self.metrics.connection_created(event.address)

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self.metrics.connection_closed(event.address, event.reason)

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        self.metrics.checkout_started(event.address)

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        self.metrics.checkout_failed(event.address, event.reason)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.metrics.checked_out(event.address, event.duration)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.metrics.checked_in(event.address)


class CommandCounter(monitoring.CommandListener):
    """Counts commands that succeeded and failed (e.g. FerretDB's unimplemented endSessions)."""

    def __init__(self, metrics: PoolMetrics) -> None:
        self.metrics = metrics

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.metrics.count("commands_succeeded")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.metrics.count("commands_failed")
