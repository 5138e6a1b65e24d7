"""Sessions of the app's clients that count themselves: started when they first run a command.

pymongo creates a ``ClientSession`` without any I/O and gives it a server session
only when it first runs a command (``_materialize``); these subclasses count a
session as started at that moment and as ended when it ends, so a
``request.mongo_session`` that a view never used counts nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.client_session import ClientSession
from pymongo.client_session_shared import SessionOptions, _EmptyServerSession

from django_mongopool import leaks
from django_mongopool.metrics import ProcessCounters


def _ran_a_command(session: Any) -> bool:
    server_session = session._server_session
    return server_session is not None and not isinstance(server_session, _EmptyServerSession)


class _Counting:
    _mongopool_counters: ProcessCounters
    # Set by leaks.record() for a session started outside any request (file, line, module):
    # reported if the session is garbage-collected without having been ended.
    _mongopool_site: tuple[str, int, str] | None = None

    def __del__(self) -> None:
        site = self._mongopool_site
        if site is None or self.has_ended:  # type: ignore[attr-defined]
            return
        try:
            self._mongopool_counters.count("leaked_sessions")
            leaks.collected_unended(site)
        except Exception:  # never raise from a finalizer (e.g. warnings turned into errors)
            logging.getLogger("django_mongopool").warning(
                "A MongoDB session started outside any request was not ended.", exc_info=True
            )

    def _materialize(self, *args: Any, **kwargs: Any) -> None:
        was_empty = not _ran_a_command(self)
        super()._materialize(*args, **kwargs)  # type: ignore[misc]
        if was_empty:
            next(self._mongopool_counters.sessions_started)


class CountedClientSession(_Counting, ClientSession):
    def _end_session(self, lock: bool) -> None:
        ran = _ran_a_command(self)
        super()._end_session(lock)
        if ran:
            next(self._mongopool_counters.sessions_ended)


class CountedAsyncClientSession(_Counting, AsyncClientSession):
    async def _end_session(self, lock: bool) -> None:
        ran = _ran_a_command(self)
        await super()._end_session(lock)
        if ran:
            next(self._mongopool_counters.sessions_ended)


# pymongo only reads a session's options: the default ones can be shared (the request path).
_DEFAULT_OPTIONS = SessionOptions()


def start(is_async: bool, client: Any, counters: ProcessCounters, **options: Any) -> Any:
    """A new explicit session of the app's ``client`` that counts itself (no I/O)."""
    cls = CountedAsyncClientSession if is_async else CountedClientSession
    opts = SessionOptions(**options) if options else _DEFAULT_OPTIONS
    session = cls(client, _EmptyServerSession(), opts, False)
    session._mongopool_counters = counters
    return session
