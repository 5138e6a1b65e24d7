"""A real browser (Debian's headless Chromium driven by Playwright) on the example project.

The example project runs under waitress in its own process against the real
server, with load from this process; a staff user logs in, opens the pool page,
and the numbers it shows must match the JSON endpoint. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.helpers import MANAGE, ROOT, closed_port, run_manage

pytestmark = pytest.mark.server

CHROMIUM = os.environ.get("MONGOPOOL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
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
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    full_env.update(env)
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
    for _ in range(400):
        try:
            urllib.request.urlopen(base + "/admin/mongopool/ready", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.05)
    yield base
    process.terminate()
    process.wait(timeout=30)


def _load(base: str, stop: threading.Event, counts: list[int]) -> None:
    while not stop.is_set() and counts[0] < 3000:
        for path in ("/", "/api/entries/", "/export.csv"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                response.read()
            counts[0] += 1


def _wait_for_refresh(page, after: str | None) -> str:
    page.wait_for_function(
        "prev => { const g = document.getElementById('mp-root').dataset.generatedAt;"
        " return g && g !== prev; }",
        arg=after,
        timeout=30_000,
    )
    return page.eval_on_selector("#mp-root", "el => el.dataset.generatedAt")


def test_staff_sees_live_numbers_matching_the_json(example_server):
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: scripts/setup installs Debian's chromium"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    stop, counts = threading.Event(), [0]
    loaders = [
        threading.Thread(target=_load, args=(example_server, stop, counts)) for _ in range(6)
    ]
    for loader in loaders:
        loader.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(example_server + "/admin/mongopool/")
            assert "/admin/login/" in page.url
            page.fill("#id_username", "ops")
            page.fill("#id_password", "ops-password")
            page.click("input[type=submit]")
            page.wait_for_url("**/admin/mongopool/")
            assert page.title().startswith("MongoDB pool health")

            first = _wait_for_refresh(page, None)  # the page refreshed itself under load
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
                "/admin/mongopool/?format=json",
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
            page.screenshot(path=str(ARTIFACTS / "pool_health.png"), full_page=True)
            chart_points = page.get_attribute("#mp-chart polyline.mp-in-use", "points")
            browser.close()
    finally:
        stop.set()
        for loader in loaders:
            loader.join()

    assert counts[0] > 0 and latest
    assert shown["process.pid"] == str(report["process"]["pid"])
    assert shown["budget.max_pool_size"] == str(report["budget"]["max_pool_size"])
    for field in ("open", "in_use", "waiting", "sessions_started", "sessions_ended"):
        assert shown[f"process.{field}"] == str(report["process"][field]), field
    assert report["process"]["sessions_started"] == report["process"]["sessions_ended"] > 0
    assert shown["fleet.alive"] == str(report["fleet"]["alive"]) == "1"
    assert chart_points  # the history chart was drawn
    assert (ARTIFACTS / "pool_health.png").stat().st_size > 10_000
