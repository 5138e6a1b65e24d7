"""The built artifacts: sdist and wheel build, pass ``twine check``, carry every file the app
needs at run time, and a fresh venv with only the wheel (plus django-environ) passes
``manage.py check`` on the example project's settings.

The build runs with the oldest setuptools that ``[build-system]`` allows (pinned in
.ci/oldest-constraints.txt), so that lower bound is tested too. ``python -m build`` builds the
wheel from the sdist, so a file missing from the sdist is missing from the wheel as well. It
builds a copy of the files git would commit (tracked or new, not ignored): setuptools merges a
stale ``*.egg-info/SOURCES.txt`` into the sdist, which would hide a missing package-data entry.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import django
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "django_mongopool"
CONSTRAINTS = ROOT / ".ci" / "oldest-constraints.txt"
CACHE = Path(os.environ.get("MONGOPOOL_CACHE_DIR", ROOT / ".cache"))
VERSIONS_OF_DJANGO_AND_BACKEND = (
    "from importlib.metadata import version; "
    "print(version('Django'), version('django-mongodb-backend'))"
)


def _run(cmd: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[str]:
    """``cmd``'s run, which must succeed; one still running after ``timeout`` seconds fails the
    test (subprocess.TimeoutExpired) instead of hanging the run."""
    result = subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=timeout, **kwargs
    )
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def _source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _shipped_files(sources: list[str]) -> set[str]:
    """Every package file the installed app needs: modules, templates, static files, py.typed,
    the operations kit."""
    found = set()
    for name in sources:
        parts = name.split("/")
        if parts[0] != "django_mongopool":
            continue
        if (
            name.endswith(".py")
            or parts[-1] == "py.typed"
            or {"templates", "static", "ops"} & set(parts)
        ):
            found.add(name)
    return found


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Any]:
    sources = _source_files()
    tree = tmp_path_factory.mktemp("tree")
    for name in sources:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("dist")
    # The isolated build environment's pip honours PIP_CONSTRAINT: the oldest allowed setuptools.
    env = {**os.environ, "PIP_CONSTRAINT": str(CONSTRAINTS), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)], env=env, timeout=480)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "shipped": _shipped_files(sources)}


def test_build_uses_the_oldest_allowed_setuptools(dist):
    (requirement,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"][
        "requires"
    ]
    req = Requirement(requirement)
    (lower,) = [Version(s.version) for s in req.specifier if s.operator == ">="]
    pinned = Version(_pins()["setuptools"])
    # ">=77" allows 77.0.1 as its oldest release (77.0.0 was withdrawn), so compare the major.
    assert req.name == "setuptools" and pinned >= lower and pinned.major == lower.major, (
        f"{CONSTRAINTS.name} pins setuptools=={pinned}; pyproject.toml's build-system says {requirement}"
    )
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        (info,) = [n for n in wheel.namelist() if n.endswith(".dist-info/WHEEL")]
        assert f"Generator: setuptools ({pinned})" in wheel.read(info).decode()


def test_twine_check_passes(dist):
    result = _run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist["sdist"]), str(dist["wheel"])]
    )
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_ships_every_runtime_file(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
    expected = dist["shipped"]
    assert {n for n in expected if "/templates/" in n}, "no templates found in the source tree"
    assert {n for n in expected if "/migrations/" in n}, "no migrations found in the source tree"
    assert "django_mongopool/py.typed" in expected
    assert not expected - names, f"missing from the wheel: {sorted(expected - names)}"
    others = {n.split("/")[0] for n in names} - {"django_mongopool"}
    assert len(others) == 1 and others.pop().endswith(".dist-info"), sorted(names)


def test_sdist_has_the_package_and_its_metadata(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= names
    missing = dist["shipped"] - names
    assert not missing, f"missing from the sdist: {sorted(missing)}"


def test_wheel_registers_the_pytest_plugin(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(wheel.read(entry_points).decode())
    assert dict(parser["pytest11"]) == {"django_mongopool": "django_mongopool.pytest_plugin"}


def _wheel_venv(wheel: Path) -> Path:
    """A venv with only the wheel with its ``orm`` extra, the Django this suite runs on, and
    django-environ, cached by the wheel's contents and the Python and Django versions.

    The key hashes the wheel's RECORD (every file's sha256), so an unchanged tree reuses the
    venv and any change gets a new one, built from scratch.
    """
    with zipfile.ZipFile(wheel) as zf:
        (record,) = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        versions = f"{sys.version_info[:2]} {django.__version__}".encode()
        key = hashlib.sha256(zf.read(record) + versions).hexdigest()[:16]
    venv = CACHE / f"wheel-venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        for old in CACHE.glob("wheel-venv-*"):
            shutil.rmtree(old)
        _run([sys.executable, "-m", "venv", str(venv)])
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/"),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"{wheel}[orm]",
                f"Django=={django.__version__}",
                "django-environ",
            ],
            env=env,
            timeout=480,  # downloads: as long as a build
        )
        (venv / ".installed").write_text(wheel.name + "\n")
    return python


def test_fresh_venv_with_only_the_wheel_passes_manage_py_check(dist, tmp_path):
    python = _wheel_venv(dist["wheel"])
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MONGODB_URL": "mongodb://127.0.0.1:9/guestbook",  # nothing listens: check must not connect
    }
    manage = ROOT / "example_project" / "manage.py"
    where = _run(
        [str(python), "-c", "import django_mongopool; print(django_mongopool.__file__)"],
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(python.parents[1])), where.stdout
    # The package installs beside this Django (no downgrade, no resolver error), and the orm
    # extra brought the django-mongodb-backend of the same feature release.
    versions = _run(
        [str(python), "-c", VERSIONS_OF_DJANGO_AND_BACKEND], env=env, cwd=tmp_path
    ).stdout.split()
    assert versions[0] == django.__version__
    assert versions[1].split(".")[:2] == django.__version__.split(".")[:2], versions
    result = _run([str(python), str(manage), "check"], env=env, cwd=tmp_path)
    assert "System check identified" in result.stdout, result.stdout + result.stderr
