"""The pool-health page, its JSON and Prometheus forms, and the readiness probe."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.client import get_client
from tests.helpers import HoldConnection, closed_port

pytestmark = [pytest.mark.server, pytest.mark.django_db]

PAGE = "/admin/mongopool/"
METRICS = "/admin/mongopool/metrics"
READY = "/admin/mongopool/ready"
TOKEN = "t0ken-for-prometheus-scrapes"


def _user(name: str, *, staff: bool, perm: bool, superuser: bool = False) -> Client:
    user = User.objects.create_user(name, password="pw", is_staff=staff, is_superuser=superuser)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="view_pool_health"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer() -> Client:
    return _user("viewer", staff=True, perm=True)


def test_anonymous_is_sent_to_the_admin_login(mongo):
    response = Client().get(PAGE)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={PAGE}"


@pytest.mark.parametrize(("staff", "perm"), [(False, False), (False, True), (True, False)])
def test_without_staff_and_permission_is_forbidden(mongo, staff, perm):
    client = _user("someone", staff=staff, perm=perm)
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE + "?format=json").status_code == 403


def test_staff_with_permission_and_superuser_see_the_page(mongo, viewer):
    Client().get("/t/insert/")  # give the pool something to show
    response = viewer.get(PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert "MongoDB pool health" in html and 'class="breadcrumbs"' in html
    assert "<svg" in html and "polyline" in html
    assert "check-out timeouts" in html
    assert "https://" not in html.split("<script>")[-1]  # no external assets in the script
    assert response["Cache-Control"].startswith("max-age=0")
    superuser = _user("root", staff=True, perm=False, superuser=True)
    assert superuser.get(PAGE).status_code == 200


def test_admin_index_links_to_the_page(mongo, viewer):
    index = viewer.get("/admin/").content.decode()
    assert "MongoDB connection pool" in index
    entry = viewer.get("/admin/django_mongopool/poolhealth/")
    assert entry.status_code == 302 and entry["Location"] == PAGE
    # a staff user without the permission does not see the entry
    other = _user("other", staff=True, perm=False)
    assert "MongoDB connection pool" not in other.get("/admin/").content.decode()


def test_json_matches_the_command_schema(mongo, viewer):
    page = viewer.get(PAGE + "?format=json").json()
    negotiated = viewer.get(PAGE, headers={"Accept": "application/json"}).json()
    out = StringIO()
    call_command("mongo_connections", "--format", "json", stdout=out)
    command = json.loads(out.getvalue())
    assert set(page) == set(negotiated) == set(command)
    assert set(page["process"]) == set(command["process"])
    assert page["schema"] == "django-mongopool/audit/1"
    assert isinstance(page["process"]["history"], list)


def test_bad_query_string_and_methods(mongo, viewer):
    assert viewer.get(PAGE + "?format=xml").status_code == 400
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(User.objects.get(username="viewer"))
    assert csrf_client.post(PAGE).status_code in (403, 405)
    assert viewer.post(PAGE).status_code == 405
    assert viewer.post(METRICS).status_code == 405
    assert Client().post(READY).status_code == 405


def test_prometheus_endpoint_for_staff_parses_back(mongo, viewer):
    Client().get("/t/insert/")
    response = viewer.get(METRICS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert families["mongopool_server_up"].samples[0].value == 1
    assert families["mongopool_sessions_started"].samples[0].value >= 1
    assert families["mongopool_pool_open"].samples[0].value >= 1


def test_prometheus_endpoint_with_bearer_token(mongo, settings):
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    assert Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    wrong = Client().get(METRICS, headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert Client().get(METRICS).status_code == 401
    assert _user("plain", staff=False, perm=False).get(METRICS).status_code == 403


def test_token_is_refused_when_none_is_configured(mongo):
    assert Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_readiness_up(mongo):
    response = Client().get(READY)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_down_has_no_secrets_or_hosts(settings):
    port = closed_port()
    settings.MONGOPOOL_URI = f"mongodb://ops:s3cret-pw@127.0.0.1:{port}/x"
    settings.MONGOPOOL_READINESS_TIMEOUT = 0.2
    response = Client().get(READY)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "database unreachable"}
    assert str(port) not in response.content.decode()


def test_page_with_server_down_renders_without_the_password(settings):
    User.objects.create_user("v2", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.login(username="v2", password="pw")
    settings.MONGOPOOL_URI = f"mongodb://ops:s3cret-pw@127.0.0.1:{closed_port()}/x"
    settings.MONGOPOOL_CLIENT_OPTIONS = {"serverSelectionTimeoutMS": 200}
    for url in (PAGE, PAGE + "?format=json", METRICS):
        body = client.get(url).content.decode()
        assert "s3cret-pw" not in body
    assert "could not be reached" in client.get(PAGE).content.decode()


def test_readiness_saturated_pool(mongo, settings):
    hold = HoldConnection()
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 1, "event_listeners": [hold]}
    collection = get_client()[mongo.name]["items"]
    worker = threading.Thread(target=lambda: collection.find_one({}, comment="hold"))
    worker.start()
    try:
        assert hold.holding.wait(30)
        response = Client().get(READY)
    finally:
        hold.release.set()
        worker.join()
    assert response.status_code == 503
    assert response.json()["reason"] == "pool saturated"
    assert Client().get(READY).status_code == 200
