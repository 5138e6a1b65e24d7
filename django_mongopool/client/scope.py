"""What a running request has open, in one context variable: its clients and its tracking list.

The middleware sets one :class:`RequestScope` per request (a context variable, so it
follows the request into ``sync_to_async`` threads and into the chunks of a streamed
response). It holds:

- the clients the request uses: the first time the request needs the sync client
  (``request.mongo_session`` is first used, or the view calls ``get_client()``),
  that client is counted as in use (``held``) and *pinned*: for the rest of the
  request ``get_client()`` returns it even if a settings change retires it meanwhile,
  so a request never mixes two clients ("Can only use session with the MongoClient
  that started it"). ``await request.amongo_session()`` pins the loop's async client
  the same way;
- the sessions user code started through the app's clients (leak tracking: :func:`track`,
  :func:`record`; :func:`tracking` opens a scope of its own for a block outside any request),
  checked by :mod:`django_mongopool.guards.leaks` when the scope ends.

Nothing here costs a request that never touches MongoDB more than the object itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any

from django_mongopool.client import sessions
from django_mongopool.guards import forks
from django_mongopool.guards.leaks import Site, Tracked, site


class RequestScope:
    """The clients and tracked sessions of one request, or of one :func:`tracking` block.

    Every field has a class-level default (this class has no ``__init__``), so a scope
    that nothing used costs one object with the fields its request set.
    """

    sync: Any = None  # the sync client this request uses (pinned)
    held: Any = None  # the same client, when this scope counts as one of its requests
    async_client: Any = None
    loop: Any = None
    tracked: list[Tracked] | None = None  # made by the first session recorded
    ended = False
    # True once the scope has something its end must give back, end or check: a pinned
    # client, tracked sessions, an async session, the mongomock tier's session. A request
    # whose scope never set it ends by setting ``ended`` alone.
    needs_end = False
    pins = True  # False for a tracking block outside a request: nothing is pinned


current: ContextVar[RequestScope | None] = ContextVar("mongopool_request_scope", default=None)
_lock = threading.Lock()  # taken when a scope makes its tracking list


@forks.in_child
def forget_after_fork() -> None:
    """In a forked child: the lock may have been held by another thread at fork time."""
    global _lock
    _lock = threading.Lock()


def track(scope: RequestScope, session: Any, where: Site) -> None:
    """Record a session user code started in ``scope``'s request or block: checked at its end."""
    tracked = scope.tracked
    if tracked is None:
        with _lock:  # threads sharing the request's context: one list
            if scope.tracked is None:
                scope.needs_end = True
                scope.tracked = []
            tracked = scope.tracked
    tracked.append(Tracked(session, where))


def record(session: Any, frame: FrameType | None, scope: RequestScope | None = None) -> None:
    """Called for each session a client starts on behalf of user code (the app's clients and
    the mongomock tier's), with ``frame`` the caller's; ``scope`` when the caller has already
    read :data:`current`."""
    if frame is None:
        return
    if scope is None:
        scope = current.get()
    if scope is not None and not scope.ended:
        track(scope, session, site(frame))
    else:
        # No request to check it at its end: a watched session reports itself if it is
        # garbage-collected without having been ended.
        sessions.watch(session, site(frame))


@contextlib.contextmanager
def tracking() -> Iterator[list[Tracked]]:
    """Track the sessions started in the block (inside a request: the request's scope's)."""
    tracked: list[Tracked] = []
    scope = current.get()
    if scope is not None and not scope.ended:
        scope.needs_end = True
        previous, scope.tracked = scope.tracked, tracked
        try:
            yield tracked
        finally:
            # The enclosing request or block still checks them at its end.
            if previous is not None:
                previous.extend(tracked)
                scope.tracked = previous
        return
    scope = RequestScope()
    scope.pins, scope.tracked = False, tracked
    token = current.set(scope)
    try:
        yield tracked
    finally:
        current.reset(token)
