"""Small smoke runs of the benchmark harnesses, so they cannot rot (the numbers are not checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.server


def _bench(script: str, out: Path, *args: str, **env: str) -> None:
    environment = {**os.environ, **env}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--smoke", "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_harness_smoke_run(tmp_path, mongo_server):
    _bench("run.py", tmp_path, MONGOPOOL_TEST_URL=mongo_server.url)
    results = json.loads((tmp_path / "results.json").read_text())
    (run,) = results["runs"]
    assert run["variant"] == "mongopool" and run["errors"] == 0 and run["requests"] == 40
    assert run["peak_connections_os"] <= 10 + 2
    assert results["time_to_503"]["statuses"] == [503] * 5
    assert set(results["middleware_overhead"]) == {"no_mongodb", "with_mongodb"}
    assert "| mongopool | 4 |" in (tmp_path / "results.md").read_text()
    assert run["web_cpu_ms_per_request"] > 0  # CPU per request of the web process
    assert (tmp_path / "connections_throughput.png").stat().st_size > 10_000


def test_orm_variants_smoke_run(tmp_path, mongo_server):
    _bench(
        "run.py",
        tmp_path,
        "--variants",
        "orm_stock,orm_pooled",
        MONGOPOOL_TEST_URL=mongo_server.url,
    )
    runs = {
        run["variant"]: run for run in json.loads((tmp_path / "results.json").read_text())["runs"]
    }
    assert set(runs) == {"orm_stock", "orm_pooled"}
    assert all(run["errors"] == 0 and run["requests"] == 40 for run in runs.values())
    assert runs["orm_pooled"]["peak_connections_os"] <= 10 + 2
    text = (tmp_path / "results.md").read_text()
    assert "| orm_stock | 4 |" in text and "| orm_pooled | 4 |" in text


def test_tls_scram_mode_smoke_run(tmp_path, mongopool_secure_server):
    secure_url = mongopool_secure_server.url
    _bench("run.py", tmp_path, "--server-mode", "tls_scram", MONGOPOOL_TEST_SECURE_URL=secure_url)
    results = json.loads((tmp_path / "tls_scram.json").read_text())
    assert results["server_mode"] == "tls_scram" and "TLS + SCRAM" in results["server"]
    runs = {run["variant"]: run for run in results["runs"]}
    assert set(runs) == {"client_per_request", "mongopool"}
    assert all(run["errors"] == 0 and run["requests"] == 40 for run in runs.values())
    assert runs["mongopool"]["peak_connections_os"] <= 10 + 2
    assert set(results["ratios_at_64"]["throughput_median"]) == {
        "client_per_request",
        "module_level",
        "mongopool",
    }
    assert "middleware_overhead" not in results  # plain mode only
    text = (tmp_path / "tls_scram.md").read_text()
    assert "| client_per_request | 4 |" in text and "target: at least 10x" in text
    assert mongopool_secure_server.password not in text + json.dumps(results)
    assert (tmp_path / "tls_scram.png").stat().st_size > 10_000
    assert not (tmp_path / "results.json").exists()  # the plain results stay untouched


def test_cpu_harness_smoke_run(tmp_path, mongo_server):
    _bench("cpu.py", tmp_path, MONGOPOOL_TEST_URL=mongo_server.url)
    results = json.loads((tmp_path / "cpu.json").read_text())
    assert {"cpu", "cores", "memory_gb", "python", "pymongo", "django"} <= set(results["machine"])
    mongodb, view = results["mongodb"], results["view"]
    assert set(mongodb["arms"]) == {"plain", "listener", "app"}
    assert set(view["arms"]) == {"without", "noop", "with"}
    for summary in (mongodb, view):
        assert (summary["processes"], summary["rounds"]) == (2, 2)
        assert all(arm["process_us"] > 0 for arm in summary["arms"].values())
        assert (
            len(
                summary["arms"]["noop" if summary is view else "app"][
                    "process_vs_" + summary["baseline"] + "_per_process"
                ]
            )
            == 2
        )
    assert "process_vs_plain_percent" in mongodb["arms"]["app"]
    assert "process_vs_without_percent" in view["arms"]["with"]
    assert (mongodb["target_percent"], view["target_percent"]) == (3.0, 2.0)
    assert mongodb["option_differences"] == []
    text = (tmp_path / "cpu.md").read_text()
    assert "within 3%" in text and "within 2%" in text and "pymongo" in text


def test_instruction_harness_child_serves_the_view():
    """The part that runs under valgrind works without it (valgrind may not be installed)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "instructions.py"), "--child", "mongopool", "5"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_harness_smoke_run(tmp_path, mongo_server):
    _bench("instructions.py", tmp_path, MONGOPOOL_TEST_URL=mongo_server.url)
    results = json.loads((tmp_path / "instructions.json").read_text())
    assert set(results["instructions_per_request"]) == {"none", "noop", "mongopool"}
    assert all(n > 0 for n in results["instructions_per_request"].values())
    assert set(results["mongodb"]["instructions_per_unit"]) == {"plain", "app"}
    text = (tmp_path / "instructions.md").read_text()
    assert "within 2% of no middleware" in text and "within 3% of a plain MongoClient" in text


def test_checkout_wait_smoke_run(mongo_server):
    """bench/checkout_wait.py: both paths answer 503; the read fails two check-outs and counts
    one check-out timeout, the write one of each (counts, not timings)."""
    environment = {**os.environ, "MONGOPOOL_TEST_URL": mongo_server.url}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "checkout_wait.py"),
            "--wait-ms",
            "50",
            "--rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["w002_worst_wait_ms"] == {"read": 100.0, "write": 50.0}
    for path, failed in (("read", 2), ("write", 1)):
        entry = report[path]
        assert entry["statuses"] == [503]
        assert (entry["failed_checkouts"], entry["checkout_timeouts"]) == (failed, 1)
        assert entry["responses_503"] == 1
