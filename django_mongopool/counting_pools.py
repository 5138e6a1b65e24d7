"""How the app's clients count their pool figures: inside pymongo's pools, or from its events.

Normally with no event listener: a connection-pool listener makes pymongo build and
dispatch an event object for every check-out and check-in; on a plain client those
calls are skipped. The app's clients instead give pymongo their own pool factory
(:func:`pool_class`, through the option pymongo keeps for deep customisation; Motor used
it, pymongo only calls it). The pools requests use are pymongo's ``Pool`` with hooks
(:func:`django_mongopool._pymongo.pool_factory`): each check-out is counted with its
wait (:meth:`~django_mongopool.metrics._ServerCounters.checked_out_now`), a check-out
waiting for room in a full pool counts as "waiting", a connection being opened as
"connecting", and pymongo's per-pool telemetry object, which pymongo calls for rare
events whether or not anything listens (connection created or closed with its reason,
failed check-out with its reason, pool cleared), counts them first. Monitor pools
(``is_sdam``) are pymongo's own: the pool figures are about the connections requests use.
Gauges are read from these pools by :class:`~django_mongopool.metrics.PoolMetrics` when a
report is built.

Those hooks are pymongo internals, checked at start-up by
:func:`django_mongopool._pymongo.verify`. On a pymongo that moved one, the client gets a
:class:`PoolEventCounter` (pymongo's public ``ConnectionPoolListener``) instead: the same
figures, each check-out paying for pymongo's event objects (system check W010 says so).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo import monitoring

from django_mongopool import _pymongo
from django_mongopool.metrics import PoolMetrics, value

PoolFactory = Callable[..., Any]


def pool_class(metrics: PoolMetrics, is_async: bool) -> PoolFactory:
    """The pool factory a client passes pymongo: counting pools feeding ``metrics`` for the
    connections requests use, pymongo's own ``Pool`` for the monitors' connections. Made once
    per :class:`PoolMetrics`."""
    cached = metrics.pool_classes.get(is_async)
    if cached is None:
        cached = metrics.pool_classes[is_async] = _pymongo.pool_factory(metrics, is_async)
    return cached


def instrument(metrics: PoolMetrics, is_async: bool) -> tuple[dict[str, Any], list[Any]]:
    """What a client of ``metrics`` is built with: (keyword arguments, event listeners).

    The counting pools when pymongo's internals are as expected; otherwise a
    :class:`PoolEventCounter`, and ``metrics`` derives its gauges from the events.
    """
    if _pymongo.status().ok("pool_hooks"):
        return _pymongo.client_options(pool_class(metrics, is_async)), []
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
        retry = event.reason == "timeout" and _pymongo.retried_checkout_timeout()
        self._metrics.checkout_failed(counters, event.reason, retry)

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        counters = self._metrics.server(event.address)
        next(counters.checkout_ended)
        out = value(counters.checked_out) + 1 - value(counters.checked_in)
        counters.checked_out_now(event.duration or 0.0, out)

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        next(self._metrics.server(event.address).checked_in)
