"""One pooled MongoDB client per Django process, with request sessions that always end."""

from __future__ import annotations

__version__ = "0.1.0"

# The public API (importing these modules has no side effects: hooks are installed by
# AppConfig.ready()).
from django_mongopool.client.event_loops import get_async_client, get_async_database  # noqa: E402
from django_mongopool.client.process import get_client, get_database  # noqa: E402

__all__ = ["__version__", "get_async_client", "get_async_database", "get_client", "get_database"]
