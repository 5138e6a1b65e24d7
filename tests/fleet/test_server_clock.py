"""Where a heartbeat's date comes from: the server's clock (hello's localTime), or the host's
when the server does not say or says something impossible."""

from __future__ import annotations

import datetime as dt

import pytest
from bson.datetime_ms import DatetimeMS
from pymongo.errors import OperationFailure

from django_mongopool.fleet import heartbeat, reading


class FakeDatabase:
    def __init__(self, reply: dict) -> None:
        self.reply = reply

    def command(self, name: str, **kwargs) -> dict:
        assert name == "hello"
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_the_servers_local_time_dates_the_beat():
    server_time = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)  # a host 3 h ahead
    clock = heartbeat.server_clock(FakeDatabase({"localTime": server_time.replace(tzinfo=None)}))
    assert clock.source == "server"
    assert abs((clock.now() - server_time).total_seconds()) < 60


@pytest.mark.parametrize(
    "reply",
    [
        {},
        {"localTime": "now"},
        {"localTime": DatetimeMS(2**62)},  # outside Python's dates
        {"localTime": dt.datetime(1970, 1, 1, tzinfo=dt.UTC)},
        {"localTime": dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC)},
        OperationFailure("no such command: 'hello'", code=59),
    ],
    ids=["missing", "text", "huge", "1970", "9999", "refused"],
)
def test_a_server_without_a_believable_clock_gives_the_hosts(reply):
    clock = heartbeat.server_clock(FakeDatabase(reply))
    assert clock.source == "host"
    assert abs((clock.now() - reading.host_now()).total_seconds()) < 60
    found = reading.Reading(clock=clock.source)
    assert any("does not report its clock" in note for note in reading.notes(found, "beats"))


def test_the_mock_tier_reads_the_fleet_with_the_hosts_clock(mongopool_mock, settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 10
    own = heartbeat.build_document("web-1:7:0", reading.host_now(), 0)
    heartbeat.collection().insert_one(own)
    found = heartbeat.read_fleet()
    assert found.clock == "host"
    assert [p["id"] for p in found.processes] == ["web-1:7:0"]
