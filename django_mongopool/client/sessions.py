"""Sessions of the app's clients that count themselves: started when they first run a command.

pymongo creates a ``ClientSession`` without any I/O and gives it a server session
only when it first runs a command; the counted classes here count a session as
started at that moment and as ended when it ends, so a ``request.mongo_session``
that a view never used counts nothing. The hooks doing so are pymongo internals,
installed by :func:`django_mongopool.client.pymongo_internals.verify` once it has checked them; on a
pymongo that moved one, sessions work as pymongo's own and are not counted (check W011).

``request.mongo_session`` goes one step further (:class:`RequestSession`): it is a
``ClientSession`` whose pymongo state is built the first time anything reads it, so
a request that never touches MongoDB pays for one unbuilt object and no client work.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.client_session import ClientSession

from django_mongopool.client import pymongo_internals
from django_mongopool.client.figures import ProcessCounters
from django_mongopool.guards import leaks

new_object = object.__new__  # an instance without running __init__


class CountedClientSession(ClientSession):
    """Counts itself in ``_mongopool_counters`` (hooks installed by ``pymongo_internals.verify``)."""

    _mongopool_counters: ProcessCounters


class CountedAsyncClientSession(AsyncClientSession):
    _mongopool_counters: ProcessCounters


pymongo_internals.register_session_class(CountedClientSession, is_async=False)
pymongo_internals.register_session_class(CountedAsyncClientSession, is_async=True)


def _report_if_unended(self: Any) -> None:
    """``__del__`` of a session started outside any request: reported if it is garbage-collected
    without having been ended. Only such sessions have a finalizer (the class is chosen when the
    session is made: swapping it afterwards would slow every attribute read pymongo makes)."""
    if self._mongopool_site is None or self.has_ended:
        return
    try:
        self._mongopool_counters.count("leaked_sessions")
        leaks.collected_unended(self._mongopool_site)
    except Exception:  # never raise from a finalizer (e.g. warnings turned into errors)
        logging.getLogger("django_mongopool").warning(
            "A MongoDB session started outside any request was not ended.", exc_info=True
        )


# One class each, not a mixin: every attribute pymongo reads is looked up along the class's MRO.
class WatchedClientSession(CountedClientSession):
    """A session started outside any request (see :func:`_report_if_unended`)."""

    _mongopool_site: leaks.Site | None = None  # where user code started it
    __del__ = _report_if_unended


class WatchedAsyncClientSession(CountedAsyncClientSession):
    """An async session started outside any request (see :func:`_report_if_unended`)."""

    _mongopool_site: leaks.Site | None = None
    __del__ = _report_if_unended


WATCHED = (WatchedClientSession, WatchedAsyncClientSession)


def watch(session: Any, where: leaks.Site) -> None:
    """Note where user code started ``session`` outside any request: a watched session (made by
    :func:`start` with ``watched``) then reports itself if it is collected without having been
    ended. Any other session is left alone."""
    if isinstance(session, WATCHED):
        session._mongopool_site = where


class RequestSession(CountedClientSession):
    """``request.mongo_session``: pymongo's ``ClientSession``, built when it is first used.

    Until then the object holds only its request's scope. Reading any pymongo attribute
    (which every use of a session does: ``session=...`` in an operation, ``.client``,
    ``.has_ended``, ``start_transaction()``) finds nothing in the instance and lands in
    :meth:`__getattr__`, which runs pymongo's own ``ClientSession.__init__`` on the client
    the request uses (``scope.session_client()``); from then on the object is an ordinary
    ``ClientSession``. First used after its request ended, it is built already ended, so
    pymongo refuses it ("Cannot use ended session").
    """

    # Class-level defaults: reading them never reaches __getattr__, and nothing here touches
    # the instance's __dict__ (which would slow every later attribute read pymongo makes).
    _mongopool_unused = True  # until pymongo's state is built
    _mongopool_scope: Any = None  # set by unbuilt(), which creates it without __init__

    @classmethod
    def unbuilt(cls, scope: Any) -> RequestSession:
        """The ``mongo_session`` of the request ``scope`` (a ``RequestSessions``): nothing of
        pymongo's is built until it is first used."""
        session = new_object(cls)
        session._mongopool_scope = scope
        return session

    @property
    def built(self) -> bool:
        """True once pymongo's state exists (the session was used)."""
        return not self._mongopool_unused

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the instance and its classes lack. pymongo's own state is all
        # in single-underscore attributes; any other name is simply missing (so hasattr() and
        # getattr(..., default) probes never build the session).
        scope = self._mongopool_scope
        if scope is None or not self._mongopool_unused or name[:1] != "_" or name[:2] == "__":
            raise AttributeError(name)
        client, ended = scope.session_client()
        try:
            pymongo_internals.build_session(self, client)
        except BaseException as exc:
            state = vars(self)  # never half-built
            state.clear()
            state["_mongopool_scope"] = scope
            if isinstance(exc, AttributeError):  # would read as "no such attribute"
                raise RuntimeError(f"request.mongo_session could not be built: {exc}") from exc
            raise
        counters = getattr(client, "_mongopool_counters", None)
        self._mongopool_counters = counters if counters is not None else ProcessCounters()
        if ended or not scope.adopt(self):  # ended before, or while it was being built
            pymongo_internals.mark_ended(self)
        self._mongopool_unused = False
        return getattr(self, name)


def start(
    is_async: bool, client: Any, counters: ProcessCounters, watched: bool, **options: Any
) -> Any:
    """A new explicit session of the app's ``client`` that counts itself (no I/O); ``watched``
    for one started outside any request (reported if collected without being ended)."""
    if watched:
        cls: type = WatchedAsyncClientSession if is_async else WatchedClientSession
    else:
        cls = CountedAsyncClientSession if is_async else CountedClientSession
    session = pymongo_internals.new_session(cls, client, options)
    session._mongopool_counters = counters
    return session
