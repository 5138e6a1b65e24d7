"""One pooled MongoDB client per Django process, with request sessions that always end."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymongo.database import Database

    from django_mongopool.client import PooledMongoClient

__version__ = "0.1.0"
__all__ = ["__version__", "get_client", "get_database"]


def get_client() -> PooledMongoClient:
    """The process-wide ``MongoClient`` built from the ``MONGOPOOL_*`` settings."""
    from django_mongopool.client import get_client as _get_client

    return _get_client()


def get_database(name: str | None = None) -> Database:  # type: ignore[type-arg]
    """A database of the process-wide client (``MONGOPOOL_DATABASE`` when ``name`` is None)."""
    from django_mongopool.client import get_database as _get_database

    return _get_database(name)
