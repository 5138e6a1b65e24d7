"""A real browser (Debian's headless Chromium driven by Playwright) on the example project.

The example project runs under waitress in its own process against the real
server, with load from this process, and every response carries
``Content-Security-Policy: script-src 'self'; style-src 'self'`` (tests/browser_settings.py).
A staff user logs in and opens the admin-mounted pool page: it must draw its chart,
refresh itself, show the numbers of the JSON form, and cause no console error and no CSP
violation. The screenshots go to test-artifacts/ (docs/pool_health.png, the picture of docs/pool-page.md, is a
committed copy), so a test run never changes the tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, sync_playwright

from tests.csp import CONTENT_SECURITY_POLICY
from tests.helpers import MANAGE, ROOT, closed_port, run_manage, wait_until_answering

pytestmark = pytest.mark.server

CHROMIUM = os.environ.get("MONGOPOOL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "pool_health.png"  # docs/pool_health.png is a committed copy
PAGE = "/admin/django_mongopool/poolhealth/"
READY = "/mongopool/ready"
# Reports what the page's policy blocks; init scripts run outside the page's CSP.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) =>
  window.mpViolation(`${e.effectiveDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`));
"""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def example_server(mongo_server, tmp_path):
    """The example project under waitress (8 threads) on a free port, with a staff user."""
    port = closed_port()
    env = {
        "MONGODB_URL": mongo_server.url,
        "MONGODB_DATABASE": f"browser_{uuid.uuid4().hex[:8]}",
        "MONGODB_HEARTBEAT_SECONDS": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'example.sqlite3'}",
        "DEBUG": "false",
    }
    for args in (
        ("migrate", "--noinput"),
        (
            "shell",
            "-c",
            "from django.contrib.auth.models import Permission, User;"
            "u = User.objects.create_user('ops', password='ops-password', is_staff=True);"
            "u.user_permissions.add(Permission.objects.get(codename='view_pool_health'))",
        ),
    ):
        result = run_manage(*args, **env)
        assert result.returncode == 0, result.stderr
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MONGODB_")}
    full_env.update(env)
    full_env["DJANGO_SETTINGS_MODULE"] = "tests.browser_settings"
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    log = tmp_path / "waitress.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitress",
                f"--listen=127.0.0.1:{port}",
                "--threads=8",
                "example_project.wsgi:application",
            ],
            cwd=MANAGE.parent,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # Ready (200): a server that never is fails here, with its log, instead of the test
        # going on against it.
        wait_until_answering(base + READY, process, log, answer_timeout=2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _load(base: str, stop: threading.Event, counts: list[int]) -> None:
    while not stop.is_set() and counts[0] < 3000:
        for path in ("/", "/api/entries/", "/export.csv"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                response.read()
            counts[0] += 1


def _record_error(message: ConsoleMessage, errors: list[str]) -> None:
    url = message.location.get("url", "")
    if message.type == "error" and not url.endswith("/favicon.ico"):  # the example has none
        errors.append(f"{message.text} ({url})")


def _wait_for_refresh(page, after: str | None) -> str:
    page.wait_for_function(
        "prev => { const g = document.getElementById('mp-root').dataset.generatedAt;"
        " return g && g !== prev; }",
        arg=after,
        timeout=30_000,
    )
    return page.eval_on_selector("#mp-root", "el => el.dataset.generatedAt")


def test_staff_sees_live_numbers_under_a_strict_csp(example_server):
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: scripts/setup installs Debian's chromium"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    stop, counts = threading.Event(), [0]
    loaders = [
        threading.Thread(target=_load, args=(example_server, stop, counts)) for _ in range(6)
    ]
    errors: list[str] = []
    violations: list[str] = []
    json_fetches: list[int] = []
    for loader in loaders:
        loader.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.expose_function("mpViolation", lambda text: violations.append(text))
            page.add_init_script(REPORT_VIOLATIONS)
            page.on("console", lambda message: _record_error(message, errors))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on(
                "response",
                lambda r: "format=json" in r.url and r.status == 200 and json_fetches.append(1),
            )
            page.goto(example_server + PAGE)
            assert "/admin/login/" in page.url
            page.fill("#id_username", "ops")
            page.fill("#id_password", "ops-password")
            page.click("input[type=submit]")
            page.wait_for_url(f"**{PAGE}")
            response = page.goto(example_server + PAGE)
            assert response is not None and response.status == 200
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert page.title().startswith("MongoDB pool health")
            assert page.is_visible("#mp-chart")  # the script ran and showed the chart
            embedded = page.eval_on_selector("#mp-root", "el => el.dataset.generatedAt")
            assert embedded  # drawn from the report embedded with json_script

            first = _wait_for_refresh(page, embedded)  # the page refreshed itself under load
            page.wait_for_function(
                "() => document.querySelector('#mp-chart polyline.mp-in-use')"
                ".getAttribute('points').includes(',')",
                timeout=30_000,
            )
            page.screenshot(path=str(ARTIFACTS / "pool_health_under_load.png"), full_page=True)
            stop.set()
            for loader in loaders:
                loader.join()
            _wait_for_refresh(page, first)
            latest = _wait_for_refresh(
                page, page.eval_on_selector("#mp-root", "el => el.dataset.generatedAt")
            )
            report = page.evaluate(
                "url => fetch(url, {headers: {Accept: 'application/json'}}).then(r => r.json())",
                PAGE,
            )
            shown = {
                field: page.inner_text(f'[data-field="{field}"]')
                for field in (
                    "process.pid",
                    "process.open",
                    "process.in_use",
                    "process.waiting",
                    "process.sessions_started",
                    "process.sessions_ended",
                    "budget.max_pool_size",
                    "fleet.alive",
                )
            }
            chart = {
                series: page.get_attribute(f"#mp-chart polyline.mp-{series}", "points") or ""
                for series in ("open", "in-use", "waiting")
            }
            limit_y = float(page.get_attribute("#mp-chart line.mp-limit", "y1") or "nan")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            quiet = (list(errors), list(violations))
            # The policy is really enforced: an inline script is refused and reported.
            ran = page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.mpInline = true'; document.body.append(s);"
                " return new Promise(r => setTimeout(() => r(window.mpInline === true), 200)); }"
            )
            browser.close()
    finally:
        stop.set()
        for loader in loaders:
            loader.join()

    assert quiet == ([], []), quiet
    assert ran is False and any("script-src" in v for v in violations), violations
    assert counts[0] > 0 and latest and len(json_fetches) >= 3
    assert shown["process.pid"] == str(report["process"]["pid"])
    assert shown["budget.max_pool_size"] == str(report["budget"]["max_pool_size"])
    for field in ("open", "in_use", "waiting", "sessions_started", "sessions_ended"):
        assert shown[f"process.{field}"] == str(report["process"][field]), field
    assert report["process"]["sessions_started"] == report["process"]["sessions_ended"] > 0
    assert shown["fleet.alive"] == str(report["fleet"]["alive"]) == "1"
    for series, points in chart.items():  # one x,y pair per history sample
        assert len(points.split()) >= 2, series
    assert 0 <= limit_y <= 140  # the maxPoolSize line is on the chart
    assert SCREENSHOT.stat().st_size > 10_000
