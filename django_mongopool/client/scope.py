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
- the sessions user code started through the app's clients (leak tracking).

Nothing here costs a request that never touches MongoDB more than the object itself.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any


class RequestScope:
    """The clients and tracked sessions of one request, or of one ``leaks.tracking()`` block.

    Every field has a class-level default (this class has no ``__init__``), so a scope
    that nothing used costs one object with the fields its request set.
    """

    sync: Any = None  # the sync client this request uses (pinned)
    held: Any = None  # the same client, when this scope counts as one of its requests
    async_client: Any = None
    loop: Any = None
    tracked: list[Any] | None = None  # leaks.Tracked, made by the first session recorded
    ended = False
    # True once the scope has something its end must give back, end or check: a pinned
    # client, tracked sessions, an async session, the mongomock tier's session. A request
    # whose scope never set it ends by setting ``ended`` alone.
    needs_end = False
    pins = True  # False for a tracking block outside a request: nothing is pinned


current: ContextVar[RequestScope | None] = ContextVar("mongopool_request_scope", default=None)
