"""A small smoke run of the benchmark harness, so it cannot rot (the numbers are not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


def test_harness_smoke_run(tmp_path, mongo_server):
    env = {**os.environ, "MONGOPOOL_TEST_URL": mongo_server.url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    (run,) = results["runs"]
    assert run["variant"] == "mongopool" and run["errors"] == 0 and run["requests"] == 40
    assert run["peak_connections_os"] <= 10 + 2
    assert results["time_to_503"]["statuses"] == [503] * 5
    assert set(results["middleware_overhead"]) == {"no_mongodb", "with_mongodb"}
    assert "| mongopool | 4 |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "connections_throughput.png").stat().st_size > 10_000
