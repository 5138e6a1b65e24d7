"""The mongomock tier: an in-memory client that view code written for the app runs on unchanged.

mongomock refuses every ``session=`` argument (``NotImplementedError``). :class:`MockClient`
wraps one ``mongomock.MongoClient``: its databases and collections take ``session=`` and
ignore it, so ``get_database()["x"].insert_one(doc, session=request.mongo_session)`` works.
:class:`AsyncMockClient` offers the same data through pymongo's async API (``await
coll.insert_one(...)``, ``async for doc in coll.find(...)``) for ``get_async_client()``.

Limits, on purpose: sessions are :class:`MockSession` objects that hold nothing (no
causal consistency, no transactions: ``start_transaction()`` and ``mongo_transaction`` raise
:class:`~django_mongopool.exceptions.MockTransactionsNotSupported`); there is no pool, so
pool figures stay at zero; commands mongomock lacks (``serverStatus``, ``$currentOp``) fail
as a server without them would, with ``OperationFailure``. Anything else mongomock does not
implement raises its own ``NotImplementedError``.

Use it through the pytest plugin (fixture ``mongopool_mock`` or ``mongopool_mode = mock``), or
directly: ``with mock_clients() as client: ...``.
"""

from __future__ import annotations

import functools
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from pymongo.errors import OperationFailure

from django_mongopool.client import scope
from django_mongopool.client.process import use_test_client
from django_mongopool.exceptions import MockTransactionsNotSupported

__all__ = [
    "AsyncMockClient",
    "AsyncMockSession",
    "MockClient",
    "MockSession",
    "mock_clients",
]

COMMAND_NOT_FOUND = 59  # the code a server gives for a command it does not have

TRANSACTIONS_MESSAGE = (
    "Transactions are not available in mock mode (mongomock has none). Run this test on a "
    "real server instead: request the mongopool_db fixture, with MONGOPOOL_TEST_URL naming "
    "a replica set or a sharded cluster (a standalone server, FerretDB included, has none either)."
)


def _mongomock() -> Any:
    try:
        import mongomock
    except ImportError:  # pragma: no cover - the test extra installs it
        raise ImportError(
            "The mock tier needs mongomock: pip install mongomock (or django-mongopool[test])."
        ) from None
    return mongomock


def _drop_session(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``session=`` is accepted and ignored; so are codec options (mongomock refuses most of
    them, and its documents never need the app's defensive decoding)."""
    kwargs.pop("session", None)
    kwargs.pop("codec_options", None)
    return kwargs


class _MockTopologyDescription:
    """What the app reads from ``client.topology_description`` (the audit, transactions)."""

    topology_type_name = "Mock (mongomock)"

    @property
    def topology_type(self) -> Any:
        # mongo_transaction checks the deployment type first: say why there is none here.
        raise MockTransactionsNotSupported(TRANSACTIONS_MESSAGE)

    def server_descriptions(self) -> dict[tuple[str, int], Any]:
        return {}


class MockSession:
    """``request.mongo_session`` in mock mode: accepted and ignored by :class:`MockClient`."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ended = False
        self.session_id = {"id": uuid.uuid4()}

    @property
    def client(self) -> Any:
        return self._client

    @property
    def has_ended(self) -> bool:
        return self._ended

    @property
    def in_transaction(self) -> bool:
        return False

    @property
    def cluster_time(self) -> None:
        return None

    @property
    def operation_time(self) -> None:
        return None

    def end_session(self) -> None:
        self._ended = True

    def start_transaction(self, *args: Any, **kwargs: Any) -> Any:
        raise MockTransactionsNotSupported(TRANSACTIONS_MESSAGE)

    def with_transaction(self, *args: Any, **kwargs: Any) -> Any:
        raise MockTransactionsNotSupported(TRANSACTIONS_MESSAGE)

    def __enter__(self) -> MockSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end_session()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} ended={self._ended}>"


class AsyncMockSession(MockSession):
    """``await request.amongo_session()`` in mock mode (``end_session`` is a coroutine)."""

    async def end_session(self) -> None:  # type: ignore[override]
        self._ended = True

    async def __aenter__(self) -> AsyncMockSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._ended = True


class _Proxy:
    """Forwards to a mongomock object; drops ``session=``; wraps databases and collections."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def _wrap(self, value: Any) -> Any:
        mongomock = _mongomock()
        if isinstance(value, mongomock.Collection):
            return MockCollection(value)
        if isinstance(value, mongomock.Database):
            return MockDatabase(value)
        return value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, _mongomock().Collection) or not callable(value):
            return self._wrap(value)

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(value(*args, **_drop_session(kwargs)))

        return call

    def __getitem__(self, name: str) -> Any:
        return self._wrap(self._target[name])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Proxy):
            return bool(self._target == other._target)
        return bool(self._target == other)

    def __hash__(self) -> int:
        return hash(self._target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._target!r})"


class MockCollection(_Proxy):
    """A mongomock ``Collection`` whose methods accept and ignore ``session=``."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target(*args, **kwargs)  # mongomock's "no such method" TypeError

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("'Collection' object is not iterable")


class MockDatabase(_Proxy):
    """A mongomock ``Database``; commands mongomock lacks fail as ``OperationFailure``."""

    __slots__ = ()

    @property
    def client(self) -> Any:
        return _CLIENTS_BY_STORE.get(id(self._target._client), self._target._client)

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        name = command if isinstance(command, str) else next(iter(command), "")
        try:
            return self._target.command(command, *args, **_drop_session(kwargs))
        except NotImplementedError as exc:
            raise OperationFailure(
                f"mongomock does not implement the {name!r} command ({exc})",
                code=COMMAND_NOT_FOUND,
            ) from None

    def aggregate(self, pipeline: Any, *args: Any, **kwargs: Any) -> Any:
        raise OperationFailure(
            "mongomock has no database-level aggregate (e.g. $currentOp)", code=COMMAND_NOT_FOUND
        )


# The MockClient that wraps each mongomock client, so ``db.client`` is the wrapper too.
_CLIENTS_BY_STORE: dict[int, MockClient] = {}


class MockClient(_Proxy):
    """One in-memory mongomock client, shaped like the app's client for ``get_client()``."""

    __slots__ = ()
    mongopool_own_client = True  # the app's stand-in, never a stray client

    def __init__(self, target: Any = None) -> None:
        super().__init__(_mongomock().MongoClient() if target is None else target)
        _CLIENTS_BY_STORE[id(self._target)] = self

    @property
    def topology_description(self) -> _MockTopologyDescription:
        return _MockTopologyDescription()

    def start_session(self, *args: Any, **kwargs: Any) -> MockSession:
        session = MockSession(self)
        scope.record(session, sys._getframe(1))
        return session

    def start_request_session(self) -> MockSession:
        """The session behind ``request.mongo_session`` in mock mode."""
        return MockSession(self)

    def close(self) -> None:
        _CLIENTS_BY_STORE.pop(id(self._target), None)
        self._target.close()


# The async API: which methods of pymongo's async classes are not coroutines.
_SYNC_METHODS = {
    "collection": {"find", "find_raw_batches", "with_options", "get_collection"},
    "database": {"get_collection", "with_options"},
    "client": {"get_database", "get_default_database", "with_options"},
}


class AsyncMockCursor:
    """``AsyncCursor``-shaped: chain ``sort``/``limit``/...; ``async for`` or ``to_list()``."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cursor, name)
        if not callable(value):
            return value

        def chain(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **_drop_session(kwargs))
            return self if result is self._cursor else result

        return chain

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._cursor)
        except StopIteration:
            raise StopAsyncIteration from None

    async def next(self) -> Any:
        return await self.__anext__()

    async def to_list(self, length: int | None = None) -> list[Any]:
        if length is None:
            return list(self._cursor)
        found = []
        for document in self._cursor:
            found.append(document)
            if len(found) >= length:
                break
        return found

    async def close(self) -> None:
        self._cursor.close()

    async def __aenter__(self) -> AsyncMockCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()


def _is_cursor(value: Any) -> bool:
    return hasattr(value, "__next__") and hasattr(value, "close")


class _AsyncProxy:
    """Forwards to a sync mock object; its methods become coroutines as in pymongo's async API."""

    _kind = "collection"

    def __init__(self, target: Any) -> None:
        self._target = target

    def _wrap(self, value: Any) -> Any:
        if isinstance(value, MockCollection):
            return AsyncMockCollection(value)
        if isinstance(value, MockDatabase):
            return AsyncMockDatabase(value)
        if _is_cursor(value):
            return AsyncMockCursor(value)
        return value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if isinstance(value, MockCollection) or not callable(value):
            return self._wrap(value)
        if name in _SYNC_METHODS[self._kind]:

            def call(*args: Any, **kwargs: Any) -> Any:
                return self._wrap(value(*args, **kwargs))

            return call

        async def acall(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(value(*args, **kwargs))

        return acall

    def __getitem__(self, name: str) -> Any:
        return self._wrap(self._target[name])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._target!r})"


class AsyncMockCollection(_AsyncProxy):
    _kind = "collection"


class AsyncMockDatabase(_AsyncProxy):
    _kind = "database"

    @property
    def client(self) -> Any:
        return AsyncMockClient(self._target.client)


class AsyncMockClient(_AsyncProxy):
    """The async face of a :class:`MockClient`: same data, pymongo's async method shapes."""

    _kind = "client"
    mongopool_own_client = True

    def __init__(self, target: MockClient) -> None:
        super().__init__(target)

    @property
    def topology_description(self) -> _MockTopologyDescription:
        return _MockTopologyDescription()

    def start_session(self, *args: Any, **kwargs: Any) -> AsyncMockSession:
        session = AsyncMockSession(self)
        scope.record(session, sys._getframe(1))
        return session

    def start_request_session(self) -> AsyncMockSession:
        """The session behind ``await request.amongo_session()`` in mock mode."""
        return AsyncMockSession(self)

    async def close(self) -> None:
        """Closing the async face leaves the shared in-memory data alone."""


@contextmanager
def mock_clients() -> Iterator[MockClient]:
    """A fresh in-memory client that ``get_client()``, ``get_database()``, the middleware and
    ``get_async_client()`` use until the block ends (then its data is gone)."""
    from django_mongopool.audit import report

    client = MockClient()
    report.clear_cache()  # the page's server section measured on the other client
    try:
        with use_test_client(client, AsyncMockClient(client)):
            yield client
    finally:
        client.close()
        report.clear_cache()


def is_active() -> bool:
    """True while a :class:`MockClient` replaces the app's client."""
    from django_mongopool.client.process import active_test_clients

    clients = active_test_clients()
    return clients is not None and isinstance(clients[0], MockClient)
