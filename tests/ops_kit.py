"""The operations kit's queries: every PromQL expression of its alert rules and its dashboard,
and the metric names each one reads."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from django_mongopool.ops import ALERT_RULES, GRAFANA_DASHBOARD

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I)
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS |= {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or Grafana's ``label_values(selector, label)``)
    reads: what is left once strings, label matchers, ranges, grouping clauses, numbers,
    keywords and function names are taken out."""
    found = _LABEL_VALUES.match(expr)
    text = found.group(1) if found else expr
    for pattern in (_STRING, _MATCHERS, _RANGE, _GROUPING, _NUMBER):
        text = pattern.sub(" ", text)
    names = set()
    for word in _WORD.finditer(text):
        if text[word.end() :].lstrip().startswith("("):
            continue  # a function: sum, rate, histogram_quantile, time...
        if word.group().lower() not in _KEYWORDS:
            names.add(word.group())
    return names


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(GRAFANA_DASHBOARD.read_text())


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of the dashboard."""
    board = dashboard()
    for panel in board["panels"]:
        for target in panel.get("targets", ()):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                query["query"] if isinstance(query, dict) else query,
            )


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every expression of the kit: alert rules, then the dashboard."""
    for rule in rules():
        yield f"alert {rule['alert']}", rule["expr"]
    yield from dashboard_queries()


DOC = Path(__file__).resolve().parents[1] / "docs" / "prometheus.md"
_FAMILY_ROW = re.compile(
    r"^\| `(mongopool_[a-z_]+)(?:, _sum, _count)?` \| (\w+) \| ([^|]*) \|(.*)$"
)
_ALERT_ROW = re.compile(r"^\| `(Mongo\w+)` \| [^|]+ \| ([^|]+) \| (\w+) \|$")


def documented_families() -> dict[str, tuple[str, set[str], bool]]:
    """docs/prometheus.md's families: parsed name -> (type, labels, mongo_connections only)."""
    families = {}
    for line in DOC.read_text().splitlines():
        row = _FAMILY_ROW.match(line)
        if row:
            series, type_, labels, rest = row.groups()
            name = {"counter": series.removesuffix("_total")}.get(type_, series)
            name = name.removesuffix("_bucket") if type_ == "histogram" else name
            families[name] = (type_, set(re.findall(r"`(\w+)`", labels)), "only)" in rest)
    return families


def documented_alerts() -> dict[str, tuple[str, str]]:
    """docs/prometheus.md's alerts: name -> (for, severity)."""
    return {
        row.group(1): (row.group(2).strip(), row.group(3))
        for row in map(_ALERT_ROW.match, DOC.read_text().splitlines())
        if row
    }
