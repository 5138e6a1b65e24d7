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
ALERT_RULES = DIRECTORY / "alerts.yml"
ALERT_RULE_TESTS = DIRECTORY / "alerts_test.yml"
GRAFANA_DASHBOARD = DIRECTORY / "grafana-dashboard.json"
FILES = (ALERT_RULES, ALERT_RULE_TESTS, GRAFANA_DASHBOARD)
