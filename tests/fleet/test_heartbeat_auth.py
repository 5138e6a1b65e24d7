"""The heartbeat MAC: what it covers, which keys verify it, and what a
reader does with a document whose MAC does not verify. The real-server test with 60 forged
beats and /ready is tests/fleet/test_heartbeat_auth_server.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_mongopool.conf import conf
from django_mongopool.fleet import heartbeat, reading

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _beating(settings):
    settings.MONGOPOOL_HEARTBEAT_SECONDS = 10


def _document() -> dict:
    return heartbeat.build_document("web-1:7:abc", NOW - dt.timedelta(hours=1), 0, NOW, "server")


def _read(docs: list[dict]) -> reading.Reading:
    return reading.read(docs, NOW, secrets=heartbeat.secrets())


def _tampered(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, dt.datetime):
        return value + dt.timedelta(seconds=1)
    if isinstance(value, list):
        return [*value, {}]
    if isinstance(value, dict):
        return {**value, "forged": 1}
    return "forged"  # None


def test_every_field_a_beat_carries_is_read_and_covered_by_its_mac():
    doc = _document()
    assert set(doc) - {reading.MAC_FIELD} <= set(reading.FIELDS)  # a new field must be listed
    assert reading.verify(doc, heartbeat.secrets())
    for name in set(doc) - {reading.MAC_FIELD}:
        changed = {**doc, name: _tampered(doc[name])}
        assert not reading.verify(changed, heartbeat.secrets()), name
        removed = {k: v for k, v in doc.items() if k != name}
        assert not reading.verify(removed, heartbeat.secrets()), name


def test_a_field_added_to_the_list_is_signed_and_verified(monkeypatch):
    monkeypatch.setattr(reading, "FIELDS", (*reading.FIELDS, "role"))
    doc = heartbeat.sign({**_document(), "role": "worker"})
    assert reading.verify(doc, heartbeat.secrets())
    assert not reading.verify({**doc, "role": "web"}, heartbeat.secrets())


def test_a_field_nobody_reads_is_not_signed_and_cannot_change_anything():
    doc = {**_document(), "note": "added by someone else"}
    assert reading.verify(doc, heartbeat.secrets())  # not fetched (projection), not signed
    assert "note" not in reading.PROJECTION


def test_forged_documents_are_counted_and_listed_never_live():
    good = _document()
    other_key = {**good, "_id": "k", "mac": reading.mac({**good, "_id": "k"}, "another-secret")}
    forged = [
        {k: v for k, v in good.items() if k != "mac"} | {"_id": "no-mac"},
        other_key,
        {**good, "_id": "copied"},  # a real beat's MAC under another id
        {**good, "_id": "typed", "mac": 12},
        {**good, "_id": "accented", "mac": "é" * 64},
        {**good, "_id": "x" * 500, "interval": 3600},
    ]
    found = _read([good, *forged])
    assert [p["id"] for p in found.processes] == [good["_id"]]
    assert found.forged == 6 and found.unreadable == 0
    assert found.forged_ids[:5] == ["no-mac", "k", "copied", "typed", "accented"]
    assert found.forged_ids[5] == "x" * 80  # shown ids are cut
    summary = reading.summary(found)
    assert (summary["alive"], summary["forged"]) == (1, 6)
    (note,) = reading.notes(found, "mongopool_heartbeats")
    assert note.startswith("6 forged heartbeat document(s) ignored in mongopool_heartbeats")


def test_at_most_twenty_forged_ids_are_listed():
    good = _document()
    found = _read([{**good, "_id": f"f{n}"} for n in range(100)])
    assert found.forged == 100 and len(found.forged_ids) == reading.MAX_SHOWN_IDS


def test_secret_key_rotation_keeps_verifying_older_beats(settings):
    doc = _document()
    settings.SECRET_KEY = "a-new-secret-key-" + "n" * 40
    assert not reading.verify(doc, heartbeat.secrets())
    settings.SECRET_KEY_FALLBACKS = ["django-mongopool-tests-not-secret"]
    assert reading.verify(doc, heartbeat.secrets())
    assert heartbeat.secrets()[0] == settings.SECRET_KEY  # new beats use the new key


def test_a_heartbeat_key_replaces_secret_key(settings):
    before = _document()
    settings.MONGOPOOL_HEARTBEAT_KEY = "k" * 32
    assert heartbeat.secrets() == ("k" * 32,)
    assert not reading.verify(before, heartbeat.secrets())
    assert reading.verify(_document(), heartbeat.secrets())


@pytest.mark.parametrize("value", ["short", 42, b"k" * 40])
def test_a_heartbeat_key_must_be_a_long_string(settings, value):
    settings.MONGOPOOL_HEARTBEAT_KEY = value
    with pytest.raises(ImproperlyConfigured, match="MONGOPOOL_HEARTBEAT_KEY must be None"):
        conf.heartbeat_key  # noqa: B018
