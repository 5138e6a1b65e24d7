"""Smoke run of the benchmark's ORM variants (numbers not checked, only that they run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


def test_orm_variants_smoke_run(tmp_path, mongo_server):
    environment = {**os.environ, "MONGOPOOL_TEST_URL": mongo_server.url}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--smoke",
            "--variants",
            "orm_stock,orm_pooled",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {
        run["variant"]: run for run in json.loads((tmp_path / "results.json").read_text())["runs"]
    }
    assert set(runs) == {"orm_stock", "orm_pooled"}
    assert all(run["errors"] == 0 and run["requests"] == 40 for run in runs.values())
    assert runs["orm_pooled"]["peak_connections_os"] <= 10 + 2
    text = (tmp_path / "results.md").read_text()
    assert "| orm_stock | 4 |" in text and "| orm_pooled | 4 |" in text
