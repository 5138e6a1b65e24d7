"""What cost a new user their first hour (issue 24): checks, redirects, errors that say what to do.

No server: the probe and the page's routing are about the URLconf, the mock errors about code
that never reaches MongoDB.
"""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import Client

from django_mongopool.audit.views import served_url

PAGE = "/admin/django_mongopool/poolhealth/"


def _messages(msg_id: str) -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(tags=["django_mongopool"]) if m.id == msg_id]


# Item 3: the probe include placed where a request never reaches it.


def test_w030_probe_include_behind_the_admins_catch_all(settings):
    assert _messages("django_mongopool.W030") == []  # tests.urls mounts it at mongopool/
    settings.ROOT_URLCONF = "tests.urls_probe_behind_admin"
    # What a load balancer gets: the admin's answer, a redirect to its login page.
    response = Client().get("/admin/mongopool/ready")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    ready, metrics = _messages("django_mongopool.W030")
    assert "/admin/mongopool/ready" in ready.msg and "readiness probe" in ready.msg
    assert "catch_all_view" in ready.msg  # names the view that answers instead
    assert "/admin/mongopool/metrics" in metrics.msg
    assert "before admin.site.urls and outside admin/" in ready.hint


def test_w030_quiet_when_the_include_comes_first(settings):
    settings.ROOT_URLCONF = "tests.urls_old_page_address"
    assert _messages("django_mongopool.W030") == []
    assert Client().get("/admin/mongopool/ready").status_code in (200, 503)


def test_w030_quiet_without_the_include(settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    assert _messages("django_mongopool.W030") == []


def test_the_page_links_prometheus_only_where_a_request_reaches_it(settings):
    assert served_url("mongopool:metrics") == "/mongopool/metrics"
    settings.ROOT_URLCONF = "tests.urls_probe_behind_admin"
    assert served_url("mongopool:metrics") is None  # so the page shows no dead link


# Item 8: the page's old address.


@pytest.mark.parametrize(
    ("urlconf", "old"),
    [("tests.urls_old_page_address", "/admin/mongopool/"), ("tests.urls", "/mongopool/")],
)
def test_the_includes_root_redirects_to_the_page(settings, admin_client, urlconf, old):
    settings.ROOT_URLCONF = urlconf
    response = admin_client.get(old)
    assert response.status_code == 302 and response["Location"] == PAGE
    assert admin_client.get(f"{old}?format=json")["Location"] == f"{PAGE}?format=json"
    assert admin_client.get(response["Location"]).status_code == 200


def test_anonymous_users_end_at_the_admin_login(settings):
    settings.ROOT_URLCONF = "tests.urls_old_page_address"
    response = Client().get("/admin/mongopool/", follow=True)
    assert response.redirect_chain[0] == (PAGE, 302)
    assert response.redirect_chain[-1][0].startswith("/admin/login/")


# Item 4: the mock attempts a user makes first fail with what to use instead.


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


# Item 7: the ORM engine on the app's pool defaults.


@pytest.fixture
def orm_alias(monkeypatch):
    from django.conf import settings as django_settings

    databases = {
        **django_settings.DATABASES,
        "mongo": {"ENGINE": "django_mongopool.backends.mongodb"},
    }
    # Set without override_settings: Django warns about overriding DATABASES in a test.
    monkeypatch.setattr(django_settings, "DATABASES", databases)


def test_w031_orm_engine_on_the_default_pool(orm_alias, settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {"waitQueueTimeoutMS": 2000}
    (message,) = _messages("django_mongopool.W031")
    assert "DATABASES['mongo']" in message.msg
    assert "maxPoolSize 10 and waitQueueTimeoutMS 2000" in message.msg
    assert "pymongo's 100" in message.msg and "DatabaseError" in message.msg
    assert "MONGOPOOL_CLIENT_OPTIONS['maxPoolSize']" in message.hint
    assert "gunicorn --threads" in message.hint


@pytest.mark.parametrize(
    "sized",
    [
        {"MONGOPOOL_CLIENT_OPTIONS": {"maxPoolSize": 10}},
        {"MONGOPOOL_CLIENT_OPTIONS": {"MAXPOOLSIZE": 32}},
        {
            "MONGOPOOL_URI": "mongodb://127.0.0.1:9/shop?maxPoolSize=40",
            "MONGOPOOL_CLIENT_OPTIONS": {},
        },
        {"MONGOPOOL_FLEET_BUDGET": 24, "MONGOPOOL_HEARTBEAT_SECONDS": 5},
    ],
    ids=["options", "options-any-case", "uri", "fleet-budget"],
)
def test_w031_quiet_once_the_pool_is_sized(orm_alias, settings, sized):
    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    for name, value in sized.items():
        setattr(settings, name, value)
    assert _messages("django_mongopool.W031") == []


def test_w031_quiet_without_the_orm_engine(settings):
    settings.MONGOPOOL_CLIENT_OPTIONS = {}
    assert _messages("django_mongopool.W031") == []


# Item 8: the page with heartbeats off says so, without an empty fleet table.


def test_page_with_heartbeats_off_has_no_empty_fleet(admin_client, settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 0
    settings.MONGOPOOL_PROCESSES = 1
    page = admin_client.get(PAGE).content.decode()
    assert "Heartbeats are off (MONGOPOOL_HEARTBEAT_SECONDS = 0)" in page
    assert "live processes" not in page and "Fleet (1 processes)" not in page
    assert "Fleet of 1 process (MONGOPOOL_PROCESSES)" in page
    assert '<table class="mp-table" id="mp-fleet" hidden>' in page  # no "Total 0 0 0" row shown


def test_page_with_heartbeats_on_lists_the_fleet(admin_client, settings):
    from django_mongopool.fleet import heartbeat

    settings.MONGOPOOL_HEARTBEAT_SECONDS = 1
    settings.MONGOPOOL_PROCESSES = 3
    try:
        publisher = heartbeat.ensure_started()
        assert publisher is not None and heartbeat.wait_for_beats(publisher.beats + 1)
        page = admin_client.get(PAGE).content.decode()
    finally:
        heartbeat.stop()
    assert 'Fleet: <span data-field="fleet.alive">1</span> live processes' in page
    assert '<table class="mp-table" id="mp-fleet">' in page
    assert 'id="mp-fleet-none" hidden' in page
    assert "Fleet of 3 processes (MONGOPOOL_PROCESSES)" in page
