"""A newcomer's first hour, as a test: ``newcomer_project/`` from the wheel.

The wheel is built as docs/install.md says (``python -m build``), installed into a fresh venv made
with ``MONGOPOOL_NEWCOMER_PYTHON`` (default: this interpreter) together with pytest,
pytest-django, pytest-asyncio and mongomock; versions come from this environment, except those
a constraints file in ``MONGOPOOL_NEWCOMER_CONSTRAINTS`` pins (``.ci/oldest-constraints.txt``:
the oldest Django and pymongo). Then, in a copy of ``newcomer_project/`` whose configured
server is this session's FerretDB (with a document of the developer's own): ``migrate``,
``check``, the pool page as a superuser, ``mongo_connections --format json``, and the
project's own pytest run (mock and real tier, a fixture-less test, a 503). pip's cache is used;
nothing is compiled ahead.

Select it with ``-m newcomer``; e.g. the oldest supported versions:
``MONGOPOOL_NEWCOMER_CONSTRAINTS=.ci/oldest-constraints.txt pytest -m newcomer``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from django_mongopool import get_client
from tests.helpers import ROOT

pytestmark = [pytest.mark.server, pytest.mark.newcomer]

PROJECT = ROOT / "newcomer_project"
# What the newcomer installs besides the wheel (docs/testing.md's "pip install pytest pytest-django
# mongomock pytest-asyncio").
TEST_TOOLS = ["pytest", "pytest-django", "pytest-asyncio", "mongomock"]
DEVELOPERS = {"user": None, "item": "developer's"}


def _name(requirement: str) -> str:
    return re.split(r"[\s=<>!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _constraints(tmp_path: Path) -> Path:
    """This environment's versions of every installed distribution, except those the given
    constraints file pins (so the fresh venv resolves from pip's cache)."""
    given_path = os.environ.get("MONGOPOOL_NEWCOMER_CONSTRAINTS")
    given = Path(given_path).read_text().splitlines() if given_path else []
    pinned = {_name(line) for line in given if line.strip() and not line.startswith("#")}
    mine = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name not in pinned and name != "django-mongopool":
            mine[name] = f"{name}=={dist.version}"
    path = tmp_path / "constraints.txt"
    path.write_text("\n".join([*sorted(mine.values()), *given]) + "\n")
    return path


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300):
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture
def fresh_venv(tmp_path_factory) -> Path:
    """The wheel, built as docs/install.md says, in a fresh venv with the test tools."""
    base = tmp_path_factory.mktemp("newcomer")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
    dist = base / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], ROOT, clean)
    (wheel,) = dist.glob("django_mongopool-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # a stale build/ of the clone shipped nothing
        modules = {n for n in archive.namelist() if n.endswith(".py")}
    assert modules and {n for n in modules if not (ROOT / n).is_file()} == set()
    python = os.environ.get("MONGOPOOL_NEWCOMER_PYTHON") or sys.executable
    venv = base / "venv"
    _run([python, "-m", "venv", "--without-pip", str(venv)], base, clean)
    target = venv / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(target),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "-c",
            str(_constraints(base)),
            str(wheel),
            *TEST_TOOLS,
        ],
        base,
        clean,
    )
    return target


PAGE_REQUEST = """
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()  # lets the test client's host in
client = Client()
client.force_login(User.objects.create_superuser("newcomer", password="newcomer-password"))
page = client.get("/admin/django_mongopool/poolhealth/")
assert page.status_code == 200, page.status_code
assert b"MongoDB pool health" in page.content
print(client.get("/admin/django_mongopool/poolhealth/?format=json").json()["config"]["database"])
"""


def test_a_newcomers_project_from_the_wheel(
    fresh_venv, developers_database, mongo_server, tmp_path
):
    configured = developers_database("orders", DEVELOPERS)
    url = mongo_server.url.rstrip("/") + f"/{configured.name}"
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
    env.pop("MONGOPOOL_TEST_URL", None)  # the plugin starts its own FerretDB, as for a newcomer
    env.update({"MONGODB_URL": url, "SQLITE_PATH": str(tmp_path / "db.sqlite3")})
    python = str(fresh_venv)

    versions = _run(
        [
            python,
            "-c",
            "import django, pymongo, sys; print(django.__version__, pymongo.__version__, sys.version)",
        ],
        project,
        env,
    ).stdout
    print("newcomer venv:", versions)
    _run([python, "manage.py", "migrate", "--noinput"], project, env)
    check = _run([python, "manage.py", "check"], project, env)
    assert "no issues" in check.stdout
    page = _run([python, "manage.py", "shell", "-c", PAGE_REQUEST], project, env)
    assert page.stdout.strip().endswith(configured.name)
    audit = _run([python, "manage.py", "mongo_connections", "--format", "json"], project, env)
    report = json.loads(audit.stdout)
    assert report["config"]["database"] == configured.name
    assert report["server"]["reachable"] is True and report["process"]["role"] == "command"

    run = _run([python, "-m", "pytest", "-p", "no:cacheprovider", "-q"], project, env)
    assert re.search(r"^6 passed in ", run.stdout, re.MULTILINE), run.stdout  # no "N warnings"
    assert "Warning" not in run.stderr, run.stderr  # pytest-asyncio's, at configuration
    # The fixture-less test wrote into test_<name> of the plugin's server: here, nothing changed.
    assert [{k: v for k, v in d.items() if k != "_id"} for d in configured["orders"].find()] == [
        DEVELOPERS
    ]
    assert f"test_{configured.name}" not in get_client().list_database_names()
