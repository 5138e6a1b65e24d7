"""pymongo pools that keep the app's pool figures themselves, with no event listener.

A connection-pool listener makes pymongo build and dispatch an event object for
every check-out and check-in; on a plain client those calls are skipped. The app's
clients instead pass pymongo their own pool factory through ``_pool_class``, the
option pymongo keeps for deep customisation (Motor used it; pymongo only calls it). The
pools requests use are pymongo's ``Pool`` with two additions:

- ``_get_conn`` (the step of every check-out that hands out a connection) counts the
  check-out as begun and as finished (what is in between is "waiting"), and records it
  and its wait: :meth:`~django_mongopool.metrics._ServerCounters.checked_out_now`;
- the pool's ``_telemetry`` object, which pymongo calls for rare events whether or
  not anything listens (connection created or closed with its reason, failed
  check-out with its reason, pool cleared), is swapped for a subclass that counts
  them before doing what pymongo does.

Monitor pools (``is_sdam``) are pymongo's own: the pool figures are about the
connections requests use. Gauges are read from these pools by
:class:`~django_mongopool.metrics.PoolMetrics` when a report is built.

Both hooks are non-public pymongo internals; they are the same in every pymongo
the package allows (4.18 to 4.x), and the test suite runs on the oldest and newest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo._telemetry import _CmapTelemetry
from pymongo.asynchronous.pool import Pool as AsyncPool
from pymongo.synchronous.pool import Pool

from django_mongopool.metrics import PoolMetrics, _ServerCounters


class _CountingTelemetry(_CmapTelemetry):
    """pymongo's per-pool telemetry, counting the rare events first."""

    __slots__ = ("_mongopool",)
    _mongopool: _ServerCounters

    def connection_created(self, conn_id: int) -> None:
        self._mongopool.owner.connection_created(self._mongopool)
        super().connection_created(conn_id)

    def connection_closed(self, conn_id: int, reason: str) -> None:
        self._mongopool.owner.connection_closed(self._mongopool, reason)
        super().connection_closed(conn_id, reason)

    def checkout_failed(self, reason: str, error: str, start: float) -> None:
        # pymongo passes the message first and the CMAP reason ("timeout", ...) second.
        self._mongopool.owner.checkout_failed(self._mongopool, error)
        super().checkout_failed(reason, error, start)

    def pool_cleared(self, service_id: Any, interrupt_connections: bool) -> None:
        self._mongopool.owner.pool_cleared(self._mongopool)
        super().pool_cleared(service_id, interrupt_connections)


def _counting_telemetry(original: _CmapTelemetry, counters: _ServerCounters) -> _CmapTelemetry:
    telemetry = _CountingTelemetry.__new__(_CountingTelemetry)
    for name in _CmapTelemetry.__slots__:
        setattr(telemetry, name, getattr(original, name))
    telemetry._mongopool = counters
    return telemetry


class _Counting:
    """What the sync and async counting pools share: attach to the client's figures. Only for
    the pools requests use: :func:`pool_class` gives monitors pymongo's own pool."""

    mongopool_metrics: PoolMetrics  # set on the per-client subclass
    _mongopool: _ServerCounters
    _telemetry: _CmapTelemetry

    def __init__(
        self, address: Any, options: Any, is_sdam: bool = False, client_id: Any = None
    ) -> None:
        super().__init__(address, options, is_sdam, client_id)  # type: ignore[call-arg]
        counters = self.mongopool_metrics.attach(self)
        self._telemetry = _counting_telemetry(self._telemetry, counters)
        self._mongopool = counters


# The check-outs call pymongo's own _get_conn directly, not through super(): they run for
# every operation, and super() looks the method up class by class each time.
class CountingPool(_Counting, Pool):
    def _get_conn(self, checkout_started_time: float, handler: Any = None) -> Any:
        counters = self._mongopool
        next(counters.checkout_started)
        try:
            conn = Pool._get_conn(self, checkout_started_time, handler)
        finally:
            next(counters.checkout_ended)
        counters.checked_out_now(checkout_started_time, self.active_sockets)
        return conn


class CountingAsyncPool(_Counting, AsyncPool):
    async def _get_conn(self, checkout_started_time: float, handler: Any = None) -> Any:
        counters = self._mongopool
        next(counters.checkout_started)
        try:
            conn = await AsyncPool._get_conn(self, checkout_started_time, handler)
        finally:
            next(counters.checkout_ended)
        counters.checked_out_now(checkout_started_time, self.active_sockets)
        return conn


PoolFactory = Callable[..., Any]


def pool_class(metrics: PoolMetrics, is_async: bool) -> PoolFactory:
    """What the client passes pymongo as ``_pool_class`` (pymongo only calls it): a counting pool
    feeding ``metrics`` for the connections requests use, pymongo's own ``Pool`` for the
    monitors' connections (``is_sdam``). Made once per :class:`PoolMetrics`."""
    cached = metrics.pool_classes.get(is_async)
    if cached is None:
        base = CountingAsyncPool if is_async else CountingPool
        counting = type(base.__name__, (base,), {"mongopool_metrics": metrics})
        monitor_pool = AsyncPool if is_async else Pool

        def make_pool(
            address: Any, options: Any, is_sdam: bool = False, client_id: Any = None
        ) -> Any:
            return (monitor_pool if is_sdam else counting)(address, options, is_sdam, client_id)

        cached = metrics.pool_classes[is_async] = make_pool
    return cached
