"""``request.mongo_session``: built when first used, never half-built."""

from __future__ import annotations

import pytest


def test_probing_request_mongo_session_does_not_build_it(offline):
    from django.test import RequestFactory

    from django_mongopool.request.middleware import RequestSessions

    request = RequestFactory().get("/")
    scope = RequestSessions.open(request)
    session = request.mongo_session
    assert not hasattr(session, "no_such_attribute")
    assert getattr(session, "anything", None) is None
    assert not session.built and scope.held is None  # no client held for a probe
    assert session.client is not None and session.built and scope.held is session.client
    scope.end()
    assert scope.held is None and session.has_ended


def test_a_failed_build_leaves_the_session_unbuilt(offline, monkeypatch):
    from django.test import RequestFactory
    from pymongo.client_session import ClientSession

    from django_mongopool.request.middleware import RequestSessions

    request = RequestFactory().get("/")
    scope = RequestSessions.open(request)

    def broken(self, *args, **kwargs):
        self._client = "half"
        raise AttributeError("_server_session")

    monkeypatch.setattr(ClientSession, "__init__", broken)
    with pytest.raises(RuntimeError, match="could not be built"):
        request.mongo_session.client  # noqa: B018
    assert not request.mongo_session.built  # not half-built
    monkeypatch.undo()
    scope.end()
