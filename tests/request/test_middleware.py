"""The request's scope (RequestSessions): a request that never touches MongoDB is ended by one
flag; anything it takes (a pinned client, a session, a tracking block, the async session)
marks it for the slow path, which gives everything back."""

from __future__ import annotations

import pytest
from django.test import Client

# --- a request that never touches MongoDB is ended by one flag; anything it takes sets it ---


def test_an_untouched_request_is_ended_without_the_slow_path(offline):
    request = Client().get("/t/untouched/").wsgi_request
    scope = request.mongo_session._mongopool_scope
    assert scope.ended and not scope.needs_end
    assert (scope.sync, scope.held, scope.session, scope.tracked) == (None, None, None, None)


def _open_scope():
    from django.test import RequestFactory

    from django_mongopool.request.middleware import RequestSessions

    scope = RequestSessions.open(RequestFactory().get("/"))
    assert not scope.needs_end
    return scope


def test_pinning_the_client_marks_the_scope_for_ending(offline):
    from django_mongopool.client import process

    scope = _open_scope()
    held = process.hold_for(scope)
    assert scope.needs_end and held.requests_in_flight() == 1
    scope.end()
    assert scope.held is None and held.requests_in_flight() == 0


def test_a_session_started_in_the_request_marks_the_scope_for_ending(offline, caplog):
    from django_mongopool.client.process import get_client
    from django_mongopool.client.scope import current

    client = get_client()  # outside the scope: starting the session below pins nothing
    scope = _open_scope()
    token = current.set(scope)
    try:
        leaked = client.start_session()
    finally:
        current.reset(token)
    assert scope.held is None and scope.needs_end and scope.tracked
    scope.end()
    assert "1 MongoDB session(s) started during" in caplog.text  # checked at the end
    leaked.end_session()


def test_a_tracking_block_in_the_request_marks_the_scope_for_ending(offline):
    from django_mongopool.client.scope import current, tracking

    scope = _open_scope()
    token = current.set(scope)
    try:
        with tracking():
            pass
    finally:
        current.reset(token)
    assert scope.needs_end
    scope.end()


def test_the_async_session_marks_the_scope_for_ending(offline):
    import asyncio

    scope = _open_scope()

    async def use_and_end():
        session = await scope.aget()
        assert scope.needs_end
        await scope.aend()
        return session

    assert asyncio.run(use_and_end()).has_ended


def test_an_async_session_is_ended_when_its_loop_winds_down_first(offline):
    import asyncio

    from django_mongopool.client import event_loops

    scope = _open_scope()

    async def use_without_ending():
        return await scope.aget()

    session = asyncio.run(use_without_ending())  # like async_to_sync under WSGI
    assert session.has_ended and scope.async_entry is None
    assert scope.async_client.requests_in_flight() == 0  # the hold was given back
    assert len(event_loops._loop_scopes) == 0
    scope.end()


def test_a_session_built_while_its_request_ends_is_built_ended(offline):
    from django_mongopool.client.process import get_client

    scope = _open_scope()
    session = _new_request_session(scope)
    scope.session_client = lambda: (get_client(), False)  # it looked before the end...
    scope.end()  # ...and the request ended while it was being built
    assert session.has_ended and scope.session is None


def _new_request_session(scope):
    from django_mongopool.client.sessions import RequestSession

    session = object.__new__(RequestSession)
    session._mongopool_scope = scope
    return session


def test_the_mock_tiers_session_marks_the_scope_for_ending(mongopool_mock):
    from django.test import RequestFactory

    from django_mongopool.request.middleware import RequestSessions

    request = RequestFactory().get("/")
    scope = RequestSessions.open(request)
    assert scope.needs_end and scope.session is request.mongo_session
    scope.end()
    assert request.mongo_session.has_ended


def test_amongo_session_outside_its_request_is_refused(offline):
    import asyncio

    request = Client().get("/t/untouched/").wsgi_request
    with pytest.raises(RuntimeError, match="outside its request"):
        asyncio.run(request.amongo_session())


def test_a_failed_async_session_start_gives_the_hold_back(offline, monkeypatch):
    import asyncio

    from django_mongopool.client import event_loops

    scope = _open_scope()

    def broken(self):
        raise RuntimeError("no session")

    monkeypatch.setattr(event_loops.PooledAsyncMongoClient, "start_request_session", broken)

    async def use():
        with pytest.raises(RuntimeError, match="no session"):
            await scope.aget()
        return event_loops.get_async_client()

    client = asyncio.run(use())
    assert client.requests_in_flight() == 0 and not scope.needs_end
    scope.end()


# --- a mongomock client of the user's own fails with what to use instead ---


def test_a_mongomock_client_of_your_own_points_to_mongopool_mock(monkeypatch):
    import mongomock

    from tests import views

    own = mongomock.MongoClient()["shop"]
    monkeypatch.setattr(views, "get_database", lambda: own)
    with pytest.raises(NotImplementedError) as caught:
        Client().get("/t/insert/")
    message = str(caught.value)
    assert message.startswith("Mongomock does not handle sessions yet")
    assert "mongopool_mock" in message and "mongo_request(" in message
    assert "mongopool_mode = mock" in message
    assert isinstance(caught.value.__cause__, NotImplementedError)  # mongomock's own, chained


def test_other_not_implemented_errors_are_left_alone():
    from django.test import RequestFactory

    from django_mongopool.request.middleware import MongoSessionMiddleware

    middleware = MongoSessionMiddleware(lambda request: None)
    request = RequestFactory().get("/")
    assert middleware.process_exception(request, NotImplementedError("not yet")) is None
