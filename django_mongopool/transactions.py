"""Multi-document transactions on ``request.mongo_session``.

MongoDB only runs transactions on a replica set or through mongos. On a
standalone server the hand-written ``with session.start_transaction():`` fails
at the first write; :func:`run_in_transaction` says so before any write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import pymongo
from pymongo.client_session import ClientSession
from pymongo.topology_description import TOPOLOGY_TYPE

from django_mongopool.conf import conf
from django_mongopool.exceptions import TransactionsNotSupported

T = TypeVar("T")

_SUPPORTED = {
    TOPOLOGY_TYPE.ReplicaSetWithPrimary: "replica set",
    TOPOLOGY_TYPE.Sharded: "sharded cluster",
    TOPOLOGY_TYPE.LoadBalanced: "load-balanced cluster",
}
_NAMES = {value: name for name, value in TOPOLOGY_TYPE._asdict().items()}


def ensure_transactions_supported(session: ClientSession) -> None:
    """Raise :class:`TransactionsNotSupported` unless the deployment can run transactions."""
    client = session.client
    if client.topology_description.topology_type not in _SUPPORTED:
        # Discover the topology (one round trip); no write is made.
        client.admin.command("ping")
    topology_type = client.topology_description.topology_type
    if topology_type not in _SUPPORTED:
        raise TransactionsNotSupported(
            "MongoDB transactions need a replica set or a sharded cluster (mongos); the "
            f"configured deployment is {_NAMES.get(topology_type, topology_type)} "
            "(a standalone server). No write was made. Run a replica set (a single-node one "
            "is enough: mongod --replSet rs0, then rs.initiate()), or do without the transaction."
        )


def run_in_transaction(
    session: ClientSession,
    callback: Callable[[ClientSession], T],
    *,
    timeout: float | None = None,
    **transaction_options: Any,
) -> T:
    """Run ``callback(session)`` in a transaction, retrying transient errors.

    Retries (pymongo's ``with_transaction``) stop after ``timeout`` seconds
    (``MONGOPOOL_TRANSACTION_TIMEOUT``, default 10) instead of pymongo's 120,
    so a worker is never held for minutes.
    """
    ensure_transactions_supported(session)
    limit = conf.transaction_timeout if timeout is None else timeout
    with pymongo.timeout(limit):
        return session.with_transaction(callback, **transaction_options)


def mongo_transaction(view: Callable[..., T]) -> Callable[..., T]:
    """Decorate a sync view so its writes on ``request.mongo_session`` commit together.

    The view may run more than once when MongoDB reports a transient error, so it
    must not have side effects outside the database.
    """

    @functools.wraps(view)
    def wrapper(request: Any, *args: Any, **kwargs: Any) -> T:
        return run_in_transaction(request.mongo_session, lambda _s: view(request, *args, **kwargs))

    return wrapper
