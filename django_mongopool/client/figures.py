"""Pool figures at near-zero cost: counted where pymongo's pool does the work, read on demand.

No connection-pool event listener is installed: with one, pymongo builds and
dispatches an event object for every check-out and check-in. Instead the app's
clients give pymongo their own pool factory (:func:`pool_class`, through the option pymongo
keeps for deep customisation; Motor used it, pymongo only calls it):

- per check-out, one atomic :class:`Count` step, one clock read, one bounded-deque
  append (the wait, for the page's percentiles) and one step of the wait histogram (a
  bisect for the bucket, then one increment and one addition under the server's own
  uncontended lock), no allocation of our own;
- waiting for a free connection and opening a new one are counted only when they
  happen (two :class:`Count` steps each);
- rare events (connections created or closed, failed check-outs, pool clears) take
  a lock and keep their reasons;
- figures are derived only when a snapshot is built: open = created - closed, idle
  is read from pymongo's pools, in use = open - idle, waiting = check-outs waiting
  because every connection is in use or being opened, connecting = connections being
  opened.

When a pymongo release has moved the internals those hooks need
(:mod:`django_mongopool.client.pymongo_internals`, checked at start-up), the client gets a
:class:`PoolEventCounter` (pymongo's public ``ConnectionPoolListener``) instead: the same
counters, each check-out paying for pymongo's event objects (system check W010 says so),
and the gauges derived from the events (:attr:`PoolMetrics.from_events`).

One :class:`PoolMetrics` belongs to one client's pool (the sync client, or one
event loop's async client); :class:`ProcessCounters` holds the figures of the
whole process (sessions, 503 responses, tasks that met an outage, leaked
sessions).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pymongo import monitoring

from django_mongopool.client import pymongo_internals

WAIT_SAMPLES = 1024  # recent check-out waits kept per server for percentiles
# Upper bounds (seconds) of the check-out wait histogram's buckets (cumulative since the pool's
# client was built): from a connection handed out at once to a wait-queue timeout.
WAIT_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BUDGET_WAIT_SECONDS = (
    0.005  # a check-out that waited longer, while the pool was held below maxPoolSize
)


class Count(itertools.count):  # type: ignore[type-arg]
    """A count any thread adds one to with ``next(count)``, without a lock; :meth:`read` says
    how many were added.

    ``next()`` is ``itertools.count``'s own (one atomic step in C, the hot path's only cost);
    the number it returns is not the count, because each read takes a step too and keeps
    them apart (reads take a lock among themselves, never the adders' way).
    """

    __slots__ = ("_read_lock", "_reads")

    def __init__(self) -> None:
        self._read_lock = threading.Lock()
        self._reads = 0

    def read(self) -> int:
        """How many times ``next()`` was called on this count (by any thread) so far."""
        with self._read_lock:
            taken = next(self) - self._reads
            self._reads += 1
        return int(taken)


@dataclass(eq=False)
class _ServerCounters:
    owner: PoolMetrics
    checked_out: Count = field(default_factory=Count)
    # Waits for room in a full pool, begun and ended: the difference is "waiting".
    waiting_started: Count = field(default_factory=Count)
    waiting_ended: Count = field(default_factory=Count)
    # New connections being opened, begun and ended: the difference is "connecting".
    connect_started: Count = field(default_factory=Count)
    connect_ended: Count = field(default_factory=Count)
    # Fed by pool events only (PoolMetrics.from_events): check-outs begun and finished (got a
    # connection or failed), check-ins, connections created and not yet ready.
    checkout_started: Count = field(default_factory=Count)
    checkout_ended: Count = field(default_factory=Count)
    checked_in: Count = field(default_factory=Count)
    connecting_ids: set[int] = field(default_factory=set)
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=WAIT_SAMPLES))  # seconds
    # Every check-out's wait, by bucket (the last one: above WAIT_BUCKETS[-1]), and their sum.
    wait_lock: threading.Lock = field(default_factory=threading.Lock)
    wait_counts: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS) + 1))
    wait_sum: float = 0.0
    budget_waits: Count = field(default_factory=Count)
    peak_in_use: int = 0  # raised on check-out without a lock: a high-water mark
    # Rare events, under the owner's lock:
    created: int = 0
    closed: int = 0
    closed_by_reason: Counter[str] = field(default_factory=Counter)
    checkout_failed: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    timed_out_operations: int = 0  # failed for want of a connection (a retried read: once)
    pool_cleared: int = 0
    budget_refusals: int = 0
    peak_open: int = 0

    def in_use(self, idle: int) -> int:
        """Open connections that are not idle in the pool: checked out (or being set up or torn
        down). ``idle`` is read from pymongo's pools."""
        return max(0, self.created - self.closed - idle)

    def checked_out_now(self, wait: float, checked_out: int) -> None:
        """A check-out got its connection after ``wait`` seconds; ``checked_out`` is how many of
        the pool's connections are out now."""
        next(self.checked_out)
        self.waits.append(wait)
        bucket = bisect_left(WAIT_BUCKETS, wait)  # the first bound >= wait ("le")
        with self.wait_lock:
            self.wait_counts[bucket] += 1
            self.wait_sum += wait
        if checked_out > self.peak_in_use:  # then no more than the open connections
            in_use = min(checked_out, self.created - self.closed)
            if in_use > self.peak_in_use:
                self.peak_in_use = in_use
        if wait > BUDGET_WAIT_SECONDS and self.owner.limited:
            next(self.budget_waits)


@dataclass(frozen=True)
class ServerPoolSnapshot:
    pool: str
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
    budget_waits: int = 0
    budget_refusals: int = 0
    connecting: int = 0
    # Operations that failed for want of a free connection (a read that pymongo retries after
    # a check-out timeout counts once); checkout_failures counts every failed check-out.
    checkout_timeouts: int = 0
    # The check-out wait histogram: cumulative counts of check-outs that waited at most each
    # of WAIT_BUCKETS (seconds), how many were counted and their waits' sum (seconds).
    checkout_wait_buckets: tuple[int, ...] = ()
    checkout_wait_count: int = 0
    checkout_wait_seconds_sum: float = 0.0

    @property
    def checkout_failures_total(self) -> int:
        return sum(self.checkout_failures.values())


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of waits in seconds, in milliseconds."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return round(ordered[index] * 1000, 3)


def address_text(address: tuple[str, int | None]) -> str:
    """A pymongo server address as ``host:port`` (an IPv6 host bracketed, the default port when
    none is given; a Unix socket's path alone): how the page, the heartbeats and the audit name
    a server."""
    host, port = address
    if host.startswith("/"):
        return host
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port or 27017}"


class PoolMetrics:
    """The figures of one client's pool, per server. Safe to call from any thread."""

    def __init__(self, name: str = "sync") -> None:
        self.name = name
        self.limited = False  # True while a fleet budget holds this pool below maxPoolSize
        self.from_events = False  # fed by pymongo's public pool events (PoolEventCounter)
        self._lock = threading.Lock()
        self._servers: dict[Any, _ServerCounters] = {}
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()  # pymongo pools feeding these
        self.pool_classes: dict[bool, Any] = {}  # pool_class(), by is_async

    def server(self, address: Any) -> _ServerCounters:
        counters = self._servers.get(address)
        if counters is None:
            with self._lock:
                counters = self._servers.setdefault(address, _ServerCounters(self))
        return counters

    def attach(self, pool: Any, address: Any) -> _ServerCounters:
        """A pymongo pool of this client, for ``address`` (see pool_class()): its gauges are
        read from it."""
        counters = self.server(address)
        with self._lock:
            self._pools.add(pool)
        return counters

    def reset_peaks(self) -> None:
        """Start the high-water marks again from the current values (for assertions on a block)."""
        gauges = self._gauges()
        with self._lock:
            for address, c in self._servers.items():
                c.peak_open = c.created - c.closed
                c.peak_in_use = c.in_use(gauges.get(address, 0))

    def _gauges(self) -> dict[Any, int]:
        """Idle connections per server, read from the live pools now (or, fed by events:
        open connections neither checked out nor being opened)."""
        if self.from_events:
            with self._lock:
                return {
                    address: max(0, self._events_idle(c)) for address, c in self._servers.items()
                }
        with self._lock:
            pools = list(self._pools)
        idle: dict[Any, int] = {}
        for pool in pools:
            gauge = pymongo_internals.idle_connections(pool)  # None once the pool is closed
            if gauge is not None:
                address, count = gauge
                idle[address] = idle.get(address, 0) + count
        return idle

    @staticmethod
    def _events_idle(c: _ServerCounters) -> int:
        out = c.checked_out.read() - c.checked_in.read()
        return c.created - c.closed - out - len(c.connecting_ids)

    def _waiting_and_connecting(self, c: _ServerCounters) -> tuple[int, int]:
        if self.from_events:
            # Events tell when a connection is being opened, not which check-out waits for it:
            # a check-out in progress while no connection is being opened is waiting.
            ended = c.checkout_ended.read()
            in_progress = c.checkout_started.read() - ended
            connecting = len(c.connecting_ids)
            return max(0, in_progress - connecting), connecting
        ended = c.waiting_ended.read()  # read first: a figure may be high, never negative
        waiting = max(0, c.waiting_started.read() - ended)
        ended = c.connect_ended.read()
        return waiting, max(0, c.connect_started.read() - ended)

    def snapshot(self) -> tuple[ServerPoolSnapshot, ...]:
        gauges = self._gauges()
        with self._lock:
            items = sorted(self._servers.items(), key=lambda item: address_text(item[0]))
            return tuple(
                self._server_snapshot(address_text(a), c, gauges.get(a, 0)) for a, c in items
            )

    def _server_snapshot(self, address: str, c: _ServerCounters, idle: int) -> ServerPoolSnapshot:
        waits = sorted(c.waits)
        with c.wait_lock:
            counts, wait_sum = list(c.wait_counts), c.wait_sum
        waiting, connecting = self._waiting_and_connecting(c)
        open_ = c.created - c.closed
        idle = min(idle, open_)
        in_use = c.in_use(idle)
        c.peak_in_use = max(c.peak_in_use, in_use)
        return ServerPoolSnapshot(
            pool=self.name,
            address=address,
            open=open_,
            in_use=in_use,
            idle=idle,
            waiting=waiting,
            checkouts=c.checked_out.read(),
            checkout_failures=dict(c.failed_by_reason),
            connections_created=c.created,
            connections_closed=dict(c.closed_by_reason),
            pool_clears=c.pool_cleared,
            peak_open=c.peak_open,
            peak_in_use=c.peak_in_use,
            wait_ms_p50=_percentile(waits, 0.50),
            wait_ms_p95=_percentile(waits, 0.95),
            wait_ms_p99=_percentile(waits, 0.99),
            wait_ms_max=round(waits[-1] * 1000, 3) if waits else None,
            budget_waits=c.budget_waits.read(),
            budget_refusals=c.budget_refusals,
            connecting=connecting,
            checkout_timeouts=c.timed_out_operations,
            checkout_wait_buckets=tuple(itertools.accumulate(counts[:-1])),
            checkout_wait_count=sum(counts),
            checkout_wait_seconds_sum=wait_sum,
        )

    # Rare events (locked).
    def connection_created(self, c: _ServerCounters) -> None:
        with self._lock:
            c.created += 1
            c.peak_open = max(c.peak_open, c.created - c.closed)

    def connection_closed(self, c: _ServerCounters, reason: str) -> None:
        with self._lock:
            c.closed += 1
            c.closed_by_reason[reason] += 1

    def checkout_failed(self, c: _ServerCounters, reason: str, retry: bool = False) -> None:
        """A check-out failed for ``reason``; ``retry``: pymongo retrying an operation whose
        previous check-out timed out (counted with the failed check-outs, not as another
        timed-out operation)."""
        with self._lock:
            c.checkout_failed += 1
            c.failed_by_reason[reason] += 1
            if reason == "timeout" and not retry:
                c.timed_out_operations += 1
                if self.limited:
                    c.budget_refusals += 1

    def connecting(self, c: _ServerCounters, connection_id: int, opening: bool) -> None:
        """(Pool events) connection ``connection_id`` is being opened, or no longer."""
        with self._lock:
            if opening:
                c.connecting_ids.add(connection_id)
            else:
                c.connecting_ids.discard(connection_id)

    def pool_cleared(self, c: _ServerCounters) -> None:
        with self._lock:
            c.pool_cleared += 1


class ProcessCounters:
    """Figures of the whole process, whatever client or loop they came from (lock-free)."""

    NAMES = (
        "sessions_started",
        "sessions_ended",
        "commands_succeeded",
        "commands_failed",
        "unavailable_responses",
        "unavailable_tasks",  # tasks that met an outage (retried, or failed)
        "leaked_sessions",
    )

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._counters = {name: Count() for name in self.NAMES}
        self.sessions_started = self._counters["sessions_started"]
        self.sessions_ended = self._counters["sessions_ended"]

    def count(self, name: str, n: int = 1) -> None:
        counter = self._counters[name]
        for _ in range(n):
            next(counter)

    def as_dict(self) -> dict[str, int]:
        return {name: counter.read() for name, counter in self._counters.items()}


class CommandCounter(monitoring.CommandListener):
    """Counts commands that succeeded and failed (opt-in: MONGOPOOL_COMMAND_METRICS)."""

    def __init__(self, counters: ProcessCounters) -> None:
        self._succeeded = counters._counters["commands_succeeded"]
        self._failed = counters._counters["commands_failed"]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        next(self._succeeded)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        next(self._failed)


@dataclass(frozen=True)
class ProcessSnapshot:
    """Every pool of this process and its process-wide counters, at one moment."""

    pid: int
    taken_at: float
    servers: tuple[ServerPoolSnapshot, ...]
    counters: dict[str, int]
    pool_count: int = 1  # the sync client's pool and one per running event loop's client
    pool_figures_from: str = "pool hooks"  # or "connection pool events" (see metrics' docstring)
    sessions_counted: bool = True  # False when pymongo's session internals moved

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
    def connecting(self) -> int:
        return sum(server.connecting for server in self.servers)

    @property
    def sessions_started(self) -> int:
        return self.counters["sessions_started"]

    @property
    def sessions_ended(self) -> int:
        return self.counters["sessions_ended"]

    @property
    def unavailable_responses(self) -> int:
        return self.counters["unavailable_responses"]

    @property
    def leaked_sessions(self) -> int:
        return self.counters["leaked_sessions"]

    @property
    def pools(self) -> int:
        return self.pool_count

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by heartbeats, the command and the page."""
        return {
            "pid": self.pid,
            "taken_at": self.taken_at,
            "servers": [asdict(server) for server in self.servers],
            **self.counters,
            "sessions_open": self.counters["sessions_started"] - self.counters["sessions_ended"],
            "open": self.open,
            "in_use": self.in_use,
            "waiting": self.waiting,
            "connecting": self.connecting,
            "pools": self.pools,
            "checkout_timeouts": sum(server.checkout_timeouts for server in self.servers),
            "pool_figures_from": self.pool_figures_from,
            "sessions_counted": self.sessions_counted,
        }


def process_snapshot(counters: ProcessCounters, pools: list[PoolMetrics]) -> ProcessSnapshot:
    servers = tuple(server for pool in pools for server in pool.snapshot())
    return ProcessSnapshot(
        pid=counters.pid,
        taken_at=time.time(),
        servers=servers,
        counters=counters.as_dict(),
        pool_count=len(pools),
        pool_figures_from=(
            "connection pool events" if any(p.from_events for p in pools) else "pool hooks"
        ),
        sessions_counted=pymongo_internals.sessions_hooked,
    )


# --- How the app's clients feed these figures: pymongo's pools with hooks, or its events ---

PoolFactory = Callable[..., Any]


def pool_class(metrics: PoolMetrics, is_async: bool) -> PoolFactory:
    """The pool factory a client passes pymongo: counting pools feeding ``metrics`` for the
    connections requests use, pymongo's own ``Pool`` for the monitors' connections. Made once
    per :class:`PoolMetrics`."""
    cached = metrics.pool_classes.get(is_async)
    if cached is None:
        cached = metrics.pool_classes[is_async] = pymongo_internals.pool_factory(metrics, is_async)
    return cached


def instrument(metrics: PoolMetrics, is_async: bool) -> tuple[dict[str, Any], list[Any]]:
    """What a client of ``metrics`` is built with: (keyword arguments, event listeners).

    The counting pools when pymongo's internals are as expected; otherwise a
    :class:`PoolEventCounter`, and ``metrics`` derives its gauges from the events.
    """
    if pymongo_internals.status().ok("pool_hooks"):
        return pymongo_internals.client_options(pool_class(metrics, is_async)), []
    metrics.from_events = True
    return {}, [PoolEventCounter(metrics)]


class PoolEventCounter(monitoring.ConnectionPoolListener):
    """The pool figures from pymongo's public connection-pool events (the fallback).

    Each hook is O(1): counters, and a lock for the rare events (as with the counting pools).
    Monitor connections publish no events, so only the pools requests use are counted.
    """

    def __init__(self, metrics: PoolMetrics) -> None:
        self._metrics = metrics

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        self._metrics.server(event.address)

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        self._metrics.pool_cleared(self._metrics.server(event.address))

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        counters = self._metrics.server(event.address)
        self._metrics.connection_created(counters)
        self._metrics.connecting(counters, event.connection_id, True)

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        self._metrics.connecting(self._metrics.server(event.address), event.connection_id, False)

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        counters = self._metrics.server(event.address)
        self._metrics.connecting(counters, event.connection_id, False)
        self._metrics.connection_closed(counters, event.reason)

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        next(self._metrics.server(event.address).checkout_started)

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        counters = self._metrics.server(event.address)
        next(counters.checkout_ended)
        retry = event.reason == "timeout" and pymongo_internals.retried_checkout_timeout()
        self._metrics.checkout_failed(counters, event.reason, retry)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        counters = self._metrics.server(event.address)
        next(counters.checkout_ended)
        out = counters.checked_out.read() + 1 - counters.checked_in.read()
        counters.checked_out_now(event.duration or 0.0, out)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        next(self._metrics.server(event.address).checked_in)
