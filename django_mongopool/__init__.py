"""One pooled MongoDB client per Django process, with request sessions that always end."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase
    from pymongo.database import Database

    from django_mongopool.async_client import PooledAsyncMongoClient
    from django_mongopool.client import PooledMongoClient

__version__ = "0.1.0"
__all__ = ["__version__", "get_async_client", "get_async_database", "get_client", "get_database"]


def get_client() -> PooledMongoClient:
    """The process-wide ``MongoClient`` built from the ``MONGOPOOL_*`` settings."""
    from django_mongopool.client import get_client as _get_client

    return _get_client()


def get_database(name: str | None = None) -> Database:  # type: ignore[type-arg]
    """A database of the process-wide client (``MONGOPOOL_DATABASE`` when ``name`` is None)."""
    from django_mongopool.client import get_database as _get_database

    return _get_database(name)


def get_async_client() -> PooledAsyncMongoClient:
    """The ``AsyncMongoClient`` of the running event loop (one per loop, built on first use)."""
    from django_mongopool.async_client import get_async_client as _get_async_client

    return _get_async_client()


def get_async_database(name: str | None = None) -> AsyncDatabase:  # type: ignore[type-arg]
    """A database of the running loop's async client."""
    from django_mongopool.async_client import get_async_database as _get_async_database

    return _get_async_database(name)
