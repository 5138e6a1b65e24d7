"""The operations kit shipped in the package: alert rules checked and unit-tested by promtool,
every rule covered by a test case, a well-formed Grafana dashboard. (That every query names a
series /metrics exports is checked against a real scrape in tests/audit/test_prometheus_server.py.)

promtool is built once into the cache by ``scripts/test``
(:mod:`django_mongopool.testing.promtool`); without it these tests fail, they never skip.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from django_mongopool.ops import ALERT_RULE_TESTS, ALERT_RULES, DIRECTORY, FILES
from django_mongopool.testing import promtool
from tests import ops_kit


@pytest.fixture(scope="module")
def binary():
    path = promtool.binary_path()
    assert path.exists(), (
        f"promtool is not built ({path}): run scripts/test, or "
        "python -m django_mongopool.testing.promtool build"
    )
    return path


def _promtool(binary, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        cwd=DIRECTORY,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_promtool_checks_the_rules(binary):
    result = _promtool(binary, "check", "rules", ALERT_RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ops_kit.rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(binary):
    result = _promtool(binary, "test", "rules", ALERT_RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_fail_when_a_rule_changes(binary, tmp_path):
    """The unit tests pin each rule's behaviour: a threshold moved makes them fail."""
    changed = ALERT_RULES.read_text().replace(
        "utilisation_ratio) > 0.8", "utilisation_ratio) > 0.95"
    )
    assert changed != ALERT_RULES.read_text()
    (tmp_path / ALERT_RULES.name).write_text(changed)
    (tmp_path / ALERT_RULE_TESTS.name).write_text(ALERT_RULE_TESTS.read_text())
    result = subprocess.run(
        [str(binary), "test", "rules", ALERT_RULE_TESTS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "alertname: MongoDBNearConnectionCapacity" in result.stdout + result.stderr


def test_every_alert_fires_and_stays_silent_in_a_test_case():
    cases = yaml.safe_load(ALERT_RULE_TESTS.read_text())
    assert cases["rule_files"] == [ALERT_RULES.name]
    firing, silent = set(), set()
    for test in cases["tests"]:
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in ops_kit.rules()}
    assert firing == silent == alerts
    assert {"MongoPoolSaturated", "MongoPoolCheckoutTimeouts", "MongoPoolLeakedSessions"} <= alerts
    assert {"MongoPoolFleetOverBudget", "MongoDBNearConnectionCapacity"} <= alerts
    assert "MongoPoolHeartbeatsMissing" in alerts


def test_every_rule_has_a_severity_and_says_what_to_do():
    for rule in ops_kit.rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_dashboard_is_well_formed():
    board = ops_kit.dashboard()
    assert board["uid"] == "django-mongopool" and board["title"] == "django-mongopool"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    graphs = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert len(graphs) >= 15
    for panel in graphs:
        assert panel["targets"] and panel["description"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job="$job"' in target["expr"], (panel["title"], target["expr"])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{job="$job", x=~"y(z)"}[$__rate_interval]))', {"a_bucket"}),
        ("time() - max by (job) (b_seconds) > 3 * on (job) group_left () c", {"b_seconds", "c"}),
        ("d > 0.8 unless on (job, instance) e or f == 1e3", {"d", "e", "f"}),
        ('label_values(g_info{job="$job"}, instance)', {"g_info"}),
        ("histogram_quantile(0.99, sum by (le) (h_bucket))", {"h_bucket"}),
    ],
)
def test_metric_names_are_read_from_promql(expr, names):
    assert ops_kit.metric_names(expr) == names


def test_the_kit_ships_in_the_package_and_says_where():
    assert all(path.is_file() for path in FILES)
    result = subprocess.run(
        [sys.executable, "-m", "django_mongopool.ops"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.split() == [str(path) for path in FILES]


def test_the_documented_alerts_are_the_rules():
    documented = ops_kit.documented_alerts()
    rules = {rule["alert"]: rule for rule in ops_kit.rules()}
    assert set(documented) == set(rules)
    for name, (for_, severity) in documented.items():
        assert for_ == rules[name].get("for", "-"), name
        assert severity == rules[name]["labels"]["severity"], name


def test_the_documented_histogram_buckets_are_the_real_ones():
    from django_mongopool.client.figures import WAIT_BUCKETS

    bounds = ", ".join(f"{bound:g}" for bound in WAIT_BUCKETS)
    assert f"in seconds: {bounds}, +Inf." in " ".join(ops_kit.DOC.read_text().split())
