"""``django_mongopool.testing``: a request made by RequestFactory gets its sessions from
``mongo_request()``, and one without says so."""

from __future__ import annotations

import pytest


def test_request_factory_without_the_middleware_names_mongo_request():
    from django.test import RequestFactory

    from tests import views

    request = RequestFactory().get("/t/insert/")
    with pytest.raises(AttributeError) as caught:
        views.insert_and_read(request)
    message = str(caught.value)
    assert message.startswith("'WSGIRequest' object has no attribute 'mongo_session'")
    assert "mongo_request(RequestFactory().get('/'))" in message
    assert not hasattr(request, "amongo_session")


def test_the_hint_is_for_tests_only():
    from django.http import HttpRequest

    from django_mongopool.testing import explain_missing_sessions

    assert "mongo_session" in HttpRequest.__dict__  # the plugin's session installed it
    with explain_missing_sessions():  # nested: leaves the outer one in place
        pass
    assert "mongo_session" in HttpRequest.__dict__


def test_mongo_request_gives_an_anonymous_user_by_default(mongopool_mock):
    import asyncio

    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from django_mongopool.testing import mongo_request

    request = mongo_request(RequestFactory().get("/"))
    assert isinstance(request.user, AnonymousUser)
    assert isinstance(asyncio.run(request.auser()), AnonymousUser)
    assert request.mongo_session.client is mongopool_mock.client

    given = object()
    assert mongo_request(RequestFactory().get("/"), user=given).user is given
    kept = RequestFactory().get("/")
    kept.user = given
    assert mongo_request(kept).user is given


@pytest.mark.server
def test_count_sessions_counts_what_the_block_started_and_ended(mongopool_db):
    from django_mongopool import get_client
    from django_mongopool.testing import count_sessions

    with get_client().start_session() as before:
        mongopool_db["c"].find_one({}, session=before)
    with count_sessions() as sessions:
        ended = get_client().start_session()
        mongopool_db["c"].insert_one({"_id": 1}, session=ended)
        ended.end_session()
        left_open = get_client().start_session()
        mongopool_db["c"].find_one({}, session=left_open)
        unused = get_client().start_session()  # never ran a command: never started
        unused.end_session()
    try:
        assert (sessions.started, sessions.ended) == (2, 1)  # the earlier session is not counted
        assert repr(sessions) == "SessionCount(started=2, ended=1)"
    finally:
        left_open.end_session()


def test_count_sessions_refuses_the_mock_tier(mongopool_mock):
    from django_mongopool.testing import count_sessions

    with pytest.raises(RuntimeError, match="mongomock tier"), count_sessions():
        pass  # pragma: no cover - refused on entry


@pytest.mark.server
def test_count_sessions_refuses_a_client_rebuilt_in_the_block(mongopool_db, settings):
    from django_mongopool.testing import count_sessions

    with pytest.raises(RuntimeError, match="rebuilt in the block"), count_sessions():
        settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 5}  # retires the client
