"""Every number of a heartbeat is range-checked where ``fleet/reading.py`` parses it.

A count is an integer from 0 to a sane bound (10**6 for gauges such as ``open`` and pool
sizes, 2**53 - 1 for counters that only grow, the largest integer a float and a JSON
reader hold exactly); anything else (a float, NaN, infinity, a bool,
a negative or huge number, a string) makes the document "odd": counted as unreadable,
never parsed into a figure, so no later arithmetic can overflow.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_mongopool.fleet import heartbeat, reading

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _beat(**fields) -> dict:
    doc = {
        "_id": "web-1:7:0",
        "host": "web-1",
        "pid": 7,
        "interval": 10,
        "updated_at": NOW,
        "max_pool_size": 10,
        "pools": 1,
        "open": 2,
        "in_use": 1,
        "waiting": 0,
        "checkout_timeouts": 0,
        "recent_checkout_timeouts": 0,
        "sessions_started": 3,
        "sessions_ended": 3,
        "servers": [{"pool": "sync", "address": "db:1", "open": 2, "in_use": 1, "waiting": 0}],
        "fleet_budget": {"share": 5},
    }
    doc.update(fields)
    return heartbeat.sign(doc)


def _read(doc: dict) -> reading.Reading:
    return reading.read([doc], NOW, secrets=heartbeat.secrets())


ODD_COUNTS = [1e308, math.nan, math.inf, -1, True, 2.0, "3", None, [1], 10**6 + 1]
GAUGES = ["open", "in_use", "waiting", "max_pool_size", "pools"]
COUNTERS = ["checkout_timeouts", "recent_checkout_timeouts", "sessions_started", "sessions_ended"]


@pytest.mark.parametrize("value", ODD_COUNTS, ids=repr)
@pytest.mark.parametrize("name", GAUGES)
def test_an_odd_gauge_makes_the_beat_odd(name, value):
    found = _read(_beat(**{name: value}))
    assert (found.processes, found.unreadable, found.forged) == ([], 1, 0)


@pytest.mark.parametrize("value", [v for v in ODD_COUNTS if v != 10**6 + 1] + [2**53])
@pytest.mark.parametrize("name", COUNTERS)
def test_an_odd_counter_makes_the_beat_odd(name, value):
    assert _read(_beat(**{name: value})).unreadable == 1


@pytest.mark.parametrize("value", [1e308, math.nan, -1, True, "1", 10**6 + 1])
@pytest.mark.parametrize("where", ["servers", "share"])
def test_odd_numbers_inside_servers_and_the_share(where, value):
    if where == "servers":
        doc = _beat(servers=[{"pool": "sync", "address": "db:1", "open": value}])
    else:
        doc = _beat(fleet_budget={"share": value})
    assert _read(doc).unreadable == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pid", 0),
        ("pid", 2**32),
        ("pid", 7.0),
        ("interval", 0),
        ("interval", 3601),
        ("interval", math.nan),
        ("interval", True),
        ("updated_at", "2026-11-27"),
        ("updated_at", 1e308),
        ("host", ""),
        ("servers", "all"),
    ],
)
def test_other_odd_fields(name, value):
    assert _read(_beat(**{name: value})).unreadable == 1


def test_the_largest_sane_values_are_read_and_summed_exactly():
    big = {name: 10**6 for name in GAUGES} | {name: 2**53 - 1 for name in COUNTERS}
    found = _read(_beat(**big))
    (process,) = found.processes
    assert process["open"] == 10**6 and process["sessions_started"] == 2**53 - 1
    summary = reading.summary(found)
    assert summary["open"] == 10**6 and float(summary["in_use"]) == 1e6


# BSON holds no NUL in keys and only valid UTF-8 (no lone surrogates), as a server sends.
_KEYS = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=8)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
    | st.datetimes(timezones=st.just(dt.UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=10,
)
_DOCS = st.dictionaries(st.sampled_from([*reading.FIELDS, reading.MAC_FIELD]), _VALUES, max_size=12)


@given(doc=_DOCS, signed=st.booleans())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_document_is_live_odd_or_forged_never_an_error(doc, signed):
    if signed:
        heartbeat.sign(doc)
    found = _read(doc)
    assert len(found.processes) + found.unreadable + found.forged + len(found.future) <= 1
    assert found.forged == (0 if signed else 1)
    reading.summary(found)  # sums and the busiest process, whatever was read
