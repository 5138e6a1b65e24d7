"""The pool page the admin mounts: its links, where its old address leads, who may see it, and
its fleet section."""

from __future__ import annotations

import pytest
from django.test import Client

from django_mongopool.urls import served_url

PAGE = "/admin/django_mongopool/poolhealth/"


def test_the_page_links_prometheus_only_where_a_request_reaches_it(settings):
    assert served_url("mongopool:metrics") == "/mongopool/metrics"
    settings.ROOT_URLCONF = "tests.urls_probe_behind_admin"
    assert served_url("mongopool:metrics") is None  # so the page shows no dead link


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
