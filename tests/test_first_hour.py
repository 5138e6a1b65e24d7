"""What cost a new user their first hour (issue 24): checks, redirects, errors that say what to do.

No server: the probe and the page's routing are about the URLconf, the mock errors about code
that never reaches MongoDB.
"""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import Client

from django_mongopool.views import served_url

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
