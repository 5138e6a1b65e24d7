"""The code stays lint-clean and formatted (ruff, configured in pyproject.toml)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_ruff_check():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_the_package():
    """``py.typed`` is a promise: the package type-checks under ``mypy --strict`` (django-stubs)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'example_project'}"},
        timeout=480,  # a cold cache checks the package and django-stubs from scratch
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_says_what_it_is_for():
    missing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "django_mongopool").rglob("*.py"))
        if "migrations" not in path.parts
        and path.stat().st_size
        and ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert missing == []
