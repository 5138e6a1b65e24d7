"""The operations kit: Prometheus alert rules, their unit tests, and a Grafana dashboard.

Every query of the kit names a series that ``/metrics`` exports (the project's tests check it
against a real scrape), and every alert rule has ``promtool test rules`` cases. The files:

- ``alerts.yml``: alert rules; list the file under ``rule_files`` in prometheus.yml;
- ``alerts_test.yml``: their unit tests (``promtool test rules alerts_test.yml``, beside
  ``alerts.yml``), to run again after editing a rule;
- ``grafana-dashboard.json``: Grafana's Dashboards > New > Import, with a Prometheus data
  source that scrapes ``/metrics``.

``python -m django_mongopool.ops`` prints where they are.
"""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
#: The path of ``alerts.yml``, the Prometheus alert rules.
ALERT_RULES = DIRECTORY / "alerts.yml"
#: The path of ``alerts_test.yml``, the rules' ``promtool test rules`` cases.
ALERT_RULE_TESTS = DIRECTORY / "alerts_test.yml"
#: The path of ``grafana-dashboard.json``, the Grafana dashboard.
GRAFANA_DASHBOARD = DIRECTORY / "grafana-dashboard.json"
FILES = (ALERT_RULES, ALERT_RULE_TESTS, GRAFANA_DASHBOARD)
