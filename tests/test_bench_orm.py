"""Smoke run of the benchmark's ORM variants (numbers not checked, only that they run)."""

from __future__ import annotations

import json

import pytest

from tests.test_bench import _bench

pytestmark = pytest.mark.server


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
