"""The pool page's CSS and JavaScript are served under gunicorn, as the docs' recipe says.

gunicorn serves no static files: the example project serves them with WhiteNoise after
``manage.py collectstatic``, the recipe docs/pool-page.md gives. A staff user opens the page; the
stylesheet and the script it links answer 200 with their content, from STATIC_ROOT (the app
finders are off, as in production).
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.parse
import urllib.request

import pytest

from tests.helpers import run_manage
from tests.live import ExampleServer

pytestmark = pytest.mark.server

PAGE = "/admin/django_mongopool/poolhealth/"


def _login(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{base}/admin/login/", timeout=30).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"username": "ops", "password": "ops-password", "csrfmiddlewaretoken": token, "next": PAGE}
    ).encode()
    request = urllib.request.Request(f"{base}/admin/login/", data=form, headers={"Referer": base})
    opener.open(request, timeout=30).read()
    return opener


def test_the_pages_css_and_js_are_served_under_gunicorn(mongo_server, tmp_path):
    static_root = tmp_path / "static"
    web = ExampleServer(
        mongo_server.url,
        tmp_path,
        workers=1,
        threads=4,
        STATIC_ROOT=str(static_root),
        WHITENOISE_USE_FINDERS="false",
        DEBUG="false",
    )
    collected = run_manage("collectstatic", "--noinput", **web.env)
    assert collected.returncode == 0, collected.stderr
    assert (static_root / "django_mongopool" / "pool_health.css").is_file()
    web.start()  # runs migrate first
    user = run_manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User;"
        "User.objects.create_superuser('ops', password='ops-password')",
        **web.env,
    )
    assert user.returncode == 0, user.stderr
    try:
        opener = _login(web.base)
        page = opener.open(web.base + PAGE, timeout=30).read().decode()
        css = re.search(r'<link rel="stylesheet" href="([^"]*pool_health\.css)"', page)
        js = re.search(r'<script src="([^"]*pool_health\.js)"', page)
        assert css and js, page[:2000]
        for url, kind, marker in ((css[1], "text/css", b".mp-"), (js[1], "javascript", b"mp-root")):
            response = urllib.request.urlopen(web.base + url, timeout=30)
            assert response.status == 200
            assert kind in response.headers["Content-Type"]
            assert marker in response.read()
    finally:
        web.stop()
