"""The admin-mounted pool-health page and its JSON form; the readiness probe and Prometheus metrics."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from io import StringIO
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from django_mongopool.audit import prometheus
from django_mongopool.client.process import get_client
from tests.helpers import HoldConnection, closed_port

pytestmark = [pytest.mark.server, pytest.mark.core, pytest.mark.django_db]

PAGE = reverse("admin:django_mongopool_poolhealth_changelist")
METRICS = reverse("mongopool:metrics")
READY = reverse("mongopool:ready")
INSTALL = 'pip install "django-mongopool[prometheus]"'
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


def test_urls():
    assert PAGE == "/admin/django_mongopool/poolhealth/"
    assert (READY, METRICS) == ("/mongopool/ready", "/mongopool/metrics")


def test_anonymous_is_sent_to_the_admin_login(mongo):
    for url in (PAGE, PAGE + "?format=json"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('admin:login')}?next={quote(url, safe='/')}"


def test_non_staff_with_the_permission_is_not_let_in(mongo):
    client = _user("someone", staff=False, perm=True)
    for url in (PAGE, PAGE + "?format=json"):
        response = client.get(url)
        assert response.status_code == 302  # the admin's own rule: to its login page
        assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permission_is_forbidden(mongo):
    client = _user("someone", staff=True, perm=False)
    assert client.get(PAGE).status_code == 403
    assert client.get(PAGE + "?format=json").status_code == 403
    assert client.get(PAGE, headers={"Accept": "application/json"}).status_code == 403


def test_staff_with_permission_and_superuser_see_the_page(mongo, viewer):
    Client().get("/t/insert/")  # give the pool something to show
    response = viewer.get(PAGE)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "MongoDB pool health" in html and 'class="breadcrumbs"' in html
    assert "<svg" in html and "polyline" in html
    assert "check-out timeouts" in html
    assert response["Cache-Control"].startswith("max-age=0")
    assert "Accept" in response["Vary"]
    assert f'href="{METRICS}"' in html  # the include is routed, so the page links to it
    superuser = _user("root", staff=True, perm=False, superuser=True)
    assert superuser.get(PAGE).status_code == 200


def test_page_is_csp_ready_and_embeds_the_report(mongo, viewer):
    Client().get("/t/insert/")
    html = viewer.get(PAGE).content.decode()
    assert "<style" not in html and "style=" not in html
    assert "django_mongopool/pool_health.css" in html
    assert '<script src="' in html and "django_mongopool/pool_health.js" in html
    scripts = html.split("<script")[1:]
    inline = [s for s in scripts if not s.lstrip().startswith("src=")]
    assert inline == [inline[0]] and inline[0].startswith(' id="mp-report" type="application/json"')
    embedded = json.loads(inline[0].split(">", 1)[1].split("</script>")[0])
    assert embedded["schema"] == "django-mongopool/audit/1"
    assert isinstance(embedded["process"]["history"], list)  # drawn by pool_health.js
    assert "javascript" in html.split("<noscript>")[-1].split("</noscript>")[0].lower()


def test_no_metrics_link_without_the_include(mongo, viewer, settings):
    settings.ROOT_URLCONF = "tests.urls_admin_only"
    html = viewer.get(PAGE).content.decode()
    assert "MongoDB pool health" in html and "Prometheus" not in html


def test_admin_index_links_to_the_page(mongo, viewer):
    index = viewer.get(reverse("admin:index")).content.decode()
    assert "MongoDB connection pool" in index and f'href="{PAGE}"' in index
    assert viewer.get(PAGE).status_code == 200
    app = viewer.get(reverse("admin:app_list", args=["django_mongopool"]))
    assert app.status_code == 200 and f'href="{PAGE}"' in app.content.decode()
    # only the page: no add, change, delete or history views for a table that does not exist
    assert viewer.get(PAGE + "add/").status_code == 404
    assert viewer.get(PAGE + "1/change/").status_code == 404
    # a staff user without the permission does not see the entry
    other = _user("other", staff=True, perm=False)
    assert "MongoDB connection pool" not in other.get(reverse("admin:index")).content.decode()


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


def test_json_by_query_string_or_accept_header(mongo, viewer):
    for response in (
        viewer.get(PAGE + "?format=json"),
        viewer.get(PAGE, headers={"Accept": "application/json"}),
        viewer.get(PAGE, headers={"Accept": "application/json, text/plain, */*"}),
    ):
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.json()["schema"] == "django-mongopool/audit/1"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    for response in (
        viewer.get(PAGE, headers={"Accept": browser}),
        viewer.get(PAGE + "?format=html", headers={"Accept": "application/json"}),
    ):
        assert response["Content-Type"].startswith("text/html")


def test_bad_query_string_and_methods(mongo, viewer):
    response = viewer.get(PAGE + "?format=xml")
    assert response.status_code == 400 and b"json" in response.content
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(User.objects.get(username="viewer"))
    assert csrf_client.post(PAGE).status_code in (403, 405)
    assert viewer.post(PAGE).status_code == 405
    assert viewer.post(METRICS).status_code == 405
    assert Client().post(READY).status_code == 405
    assert Client().put(READY).status_code == 405
    assert Client().head(READY).status_code == 200


def test_prometheus_endpoint_for_staff_parses_back(mongo, viewer):
    Client().get("/t/insert/")
    response = viewer.get(METRICS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert families["mongopool_server_up"].samples[0].value == 1
    assert families["mongopool_sessions_started"].samples[0].value >= 1
    assert families["mongopool_pool_open_connections"].samples[0].value >= 1


def test_prometheus_endpoint_with_bearer_token(mongo, settings):
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    assert Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    wrong = Client().get(METRICS, headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert Client().get(METRICS).status_code == 401
    assert _user("plain", staff=False, perm=False).get(METRICS).status_code == 403


@pytest.fixture
def without_prometheus():
    """audit/prometheus.py imported as if prometheus-client were not installed."""
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "prometheus_client"}
    for name in saved:
        del sys.modules[name]
    sys.modules["prometheus_client"] = None
    try:
        importlib.reload(prometheus)
        assert not prometheus.prometheus_available()
        yield
    finally:
        del sys.modules["prometheus_client"]
        sys.modules.update(saved)
        importlib.reload(prometheus)
    assert prometheus.prometheus_available()


def test_metrics_without_the_extra_is_a_501(mongo, viewer, settings, without_prometheus):
    settings.MONGOPOOL_METRICS_TOKEN = TOKEN
    for response in (
        viewer.get(METRICS),
        Client().get(METRICS, headers={"Authorization": f"Bearer {TOKEN}"}),
    ):
        assert response.status_code == 501
        assert response["Content-Type"].startswith("text/plain")
        assert INSTALL in response.content.decode()
    # authentication still comes first
    assert Client().get(METRICS).status_code == 401
    # the page does not need the extra
    assert viewer.get(PAGE).status_code == 200


def test_command_prometheus_without_the_extra(mongo, without_prometheus):
    with pytest.raises(CommandError, match=r"django-mongopool\[prometheus\]") as raised:
        call_command("mongo_connections", "--format", "prometheus", stdout=StringIO())
    assert INSTALL in str(raised.value) and raised.value.returncode == 2
    with pytest.raises(Exception, match="prometheus"):
        prometheus.render({})


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
