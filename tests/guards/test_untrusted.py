"""Numbers from outside (a server's reply, another process's heartbeat) are range-checked where
they are read, by one parser."""

from __future__ import annotations

import math

import pytest
from bson.int64 import Int64

from django_mongopool.guards.untrusted import MAX_COUNT, Unreadable, count


@pytest.mark.parametrize("value", [0, 7, Int64(7), MAX_COUNT])
def test_whole_numbers_in_range_are_read(value):
    read = count(value)
    assert read == value and type(read) is int


@pytest.mark.parametrize(
    "value", [-1, MAX_COUNT + 1, True, False, None, "7", 7.0, 7.5, math.nan, math.inf, [7]]
)
def test_anything_else_is_unreadable(value):
    with pytest.raises(Unreadable):
        count(value)


def test_each_field_keeps_its_own_bound():
    assert count(10**6, 10**6) == 10**6
    with pytest.raises(Unreadable):
        count(10**6 + 1, 10**6)


def test_whole_floats_only_where_a_server_may_send_them():
    assert count(12.0, whole_floats=True) == 12
    for value in (12.5, math.nan, math.inf, float(MAX_COUNT + 1)):
        with pytest.raises(Unreadable):
            count(value, whole_floats=True)
    with pytest.raises(Unreadable):
        count(12.0)  # a heartbeat: this app never writes a float


@pytest.mark.parametrize(
    ("value", "read"),
    [
        (0, 0),
        (2**53 - 1, 2**53 - 1),
        (Int64(5), 5),
        (12.0, 12),
        (1e308, None),
        (2**53, None),
        (Int64(2**63 - 1), None),
        (-1, None),
        (0.5, None),
        (math.inf, None),
        (math.nan, None),
        (True, None),
        ("5", None),
        (None, None),
    ],
)
def test_a_count_is_a_whole_number_within_the_bound(value, read):
    """As a server's reply is read (``whole_floats``): 2**53 - 1 at most, as in JSON."""
    if read is None:
        with pytest.raises(Unreadable):
            count(value, whole_floats=True)
    else:
        got = count(value, whole_floats=True)
        assert got == read and type(got) is int
