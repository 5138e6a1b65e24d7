"""What the package declares, what the support table of docs/install.md (and the README's line)
says, and what the test command runs (.ci/matrix.toml) are the same."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import matrix  # noqa: E402  (scripts/matrix.py: the test command's driver)

INSTALL = (ROOT / "docs" / "install.md").read_text()
README = (ROOT / "README.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
TIER_WORDS = {"full": "the whole suite", "core": "fast tier + core server tests"}


def _table_rows() -> list[list[str]]:
    table = INSTALL.split("| Leg | Python | Django |", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines()[2:]]
    return [[cell.strip() for cell in row] for row in rows]


def _pins(leg: matrix.Leg) -> dict[str, str]:
    if not leg.constraints:
        return {}
    lines = (ROOT / leg.constraints).read_text().splitlines()
    pairs = [line.split("#")[0].strip().split("==") for line in lines if line.split("#")[0].strip()]
    return {name.lower(): version for name, version in pairs}


def _expected_cell(leg: matrix.Leg, package: str) -> str:
    pinned = _pins(leg).get(package.lower())
    if pinned:
        return pinned
    for spec in leg.requirements:
        req = Requirement(spec)
        if req.name.lower() == package.lower():
            lower = [s.version for s in req.specifier if s.operator == ">="]
            return f"newest {lower[0]}"
    return "newest"


def test_the_support_table_is_the_test_matrix():
    legs, _tiers = matrix.load_matrix()
    expected = [
        [
            f"`{leg.name}`",
            leg.python,
            _expected_cell(leg, "Django"),
            _expected_cell(leg, "pymongo"),
            _expected_cell(leg, "django-mongodb-backend"),
            TIER_WORDS[leg.tier] + "".join(f" + the `{marker}` tests" for marker in leg.also),
        ]
        for leg in legs
    ]
    assert _table_rows() == expected


def test_declared_versions_cover_every_leg_and_nothing_untested():
    legs, _tiers = matrix.load_matrix()
    django = next(Requirement(r) for r in PYPROJECT["dependencies"] if r.startswith("Django"))
    tested_django = set()
    for leg in legs:
        for spec in leg.requirements:
            req = Requirement(spec)
            if req.name == "Django":
                lower = next(s.version for s in req.specifier if s.operator == ">=")
                assert lower in django.specifier, (leg.name, django)
                tested_django.add(".".join(lower.split(".")[:2]))
    declared = {
        c.rsplit(" ", 1)[1]
        for c in PYPROJECT["classifiers"]
        if c.startswith("Framework :: Django ::")
    }
    assert declared == tested_django
    # Each Django minor the dependency admits is tested: the upper bound stops at the newest leg's.
    newest = max(tested_django, key=lambda v: tuple(map(int, v.split("."))))
    major, minor = map(int, newest.split("."))
    assert f"{major}.{minor + 1}" not in django.specifier
    assert f"{major}.{minor}.99" in django.specifier
    pythons = {
        c.rsplit(" ", 1)[1]
        for c in PYPROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    tested_pythons = {leg.python for leg in legs}
    assert tested_pythons == pythons  # every Python declared is tested, and only those
    assert SpecifierSet(PYPROJECT["requires-python"]).contains(min(tested_pythons))


@pytest.mark.parametrize("extra", ["orm"])
def test_the_orm_extra_admits_each_tested_django(extra):
    legs, _tiers = matrix.load_matrix()
    (spec,) = PYPROJECT["optional-dependencies"][extra]
    backend = Requirement(spec)
    for leg in legs:
        for r in leg.requirements:
            req = Requirement(r)
            if req.name == "django-mongodb-backend":
                lower = next(s.version for s in req.specifier if s.operator == ">=")
                assert lower in backend.specifier, (leg.name, backend)


def test_the_core_tier_is_chosen_by_markers_not_by_file_names():
    legs, tiers = matrix.load_matrix()
    core = next(leg for leg in legs if leg.tier == "core" and not leg.also)
    args = matrix.pytest_args(core, tiers)
    assert args == ["tests", "-m", "(core or not server) and not reliability and not project"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    files = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    assert "tests/request/test_middleware_server.py" in files  # a core server test
    assert "tests/client/test_process.py" in files  # a unit test
    assert "tests/fleet/test_heartbeat_server.py" not in files  # a server test outside the core
    assert not any(f.startswith("tests/project/") for f in files)
    oldest = next(leg for leg in legs if leg.also == ["newcomer"])
    marked = matrix.pytest_args(oldest, tiers)[2]
    assert marked == "((core or not server) and not reliability and not project) or newcomer"


def test_core_marks_only_server_tests():
    """`core` picks server tests for every leg; on a test that is not `server` it would mean
    nothing (the unit tests run there anyway)."""
    wrong = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        source = path.read_text()
        if "mark.core" not in source:
            continue
        found = re.search(r"^pytestmark = (.*)$", source, re.MULTILINE)
        module_marks = found.group(1) if found else ""
        if "mark.core" in module_marks and "mark.server" not in module_marks:
            wrong.append(str(path))
        for marks in re.findall(r"((?:@pytest\.mark\.\w+\n)+)def ", source):
            if "mark.core" in marks and "mark.server" not in marks:
                wrong.append(str(path))
    assert wrong == []


@pytest.mark.parametrize("text", [INSTALL, README], ids=["docs/install.md", "README.md"])
def test_the_supported_line_is_what_is_declared(text):
    line = " ".join(text.split("Supported: ", 1)[1].split(".\n\n", 1)[0].split())
    djangos = re.match(r"Django ([\d.]+) LTS, ([\d.]+) and ([\d.]+)", line)
    assert djangos, line
    declared = sorted(
        c.rsplit(" ", 1)[1]
        for c in PYPROJECT["classifiers"]
        if c.startswith("Framework :: Django ::")
    )
    assert sorted(djangos.groups()) == declared
    pythons = re.search(r"Python (3\.\d+) to (3\.\d+)", line)
    assert pythons, line
    minors = sorted(
        int(c.rsplit(".", 1)[1])
        for c in PYPROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert pythons.groups() == (f"3.{minors[0]}", f"3.{minors[-1]}")
    assert minors == list(range(minors[0], minors[-1] + 1))
    pymongo = next(Requirement(r) for r in PYPROJECT["dependencies"] if r.startswith("pymongo"))
    lower = next(s.version for s in pymongo.specifier if s.operator == ">=")
    assert f"pymongo {lower}" in line or f"pymongo `>={lower},<" in line, line
