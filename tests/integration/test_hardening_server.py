"""Regression tests for issue 12 (hardening) against the real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections import Counter

import pytest
from django.test import Client
from django.test.utils import override_settings

pytestmark = [pytest.mark.server]


# --- 10: a client setting changed while requests run never gives a 500 ---


def test_changing_client_options_under_load_never_gives_500(mongo, settings):
    base = {"serverSelectionTimeoutMS": 3000, "waitQueueTimeoutMS": 3000}
    settings.MONGOPOOL_CLIENT_OPTIONS = {**base, "maxPoolSize": 4}
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def requests() -> None:
        client = Client(raise_request_exception=False)
        while not stop.is_set():
            response = client.get("/t/insert/")
            statuses[response.status_code] += 1
            if response.status_code == 500:
                errors.append(response.content.decode(errors="replace")[:300])

    workers = [threading.Thread(target=requests) for _ in range(4)]
    for worker in workers:
        worker.start()
    flips = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            flips += 1
            with override_settings(MONGOPOOL_CLIENT_OPTIONS={**base, "maxPoolSize": 3 + flips % 2}):
                time.sleep(0.02)
            time.sleep(0.02)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    assert flips > 20
    assert statuses[200] > 20, statuses
    assert set(statuses) <= {200, 503}, (statuses, errors[:3])


def test_a_stream_keeps_its_client_across_a_settings_change(mongo, settings):
    from django_mongopool.client.process import get_client

    response = Client().get("/t/stream/")  # the view returned; its chunks are not made yet
    before = get_client()
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 3}  # retires the client
    assert get_client() is not before
    chunks = b"".join(response.streaming_content)  # each chunk queries with mongo_session
    assert chunks.count(b"chunk") == 5  # exhausted: the stream ended the request's session
    deadline = time.monotonic() + 5
    while not before._closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert before._closed  # closed once the stream (its request) was finished


# --- 5: a heartbeat dated in the future is not live, and the publisher prunes it ---


def test_a_beat_dated_an_hour_ahead_is_not_live_and_is_pruned(mongo, settings):
    from django_mongopool.fleet import heartbeat, reading

    settings.MONGOPOOL_HEARTBEAT_SECONDS = 5
    heartbeat.collection().drop()
    publisher = heartbeat.Publisher()
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    # Signed with the app's key: a verified beat, dated an hour ahead of the server.
    future = heartbeat.build_document("elsewhere:4242:0", publisher.started_at, 0, ahead)
    heartbeat.collection().insert_one(future)

    assert heartbeat.read_fleet().processes == []  # not even fetched: outside the live window
    every = reading.read(
        heartbeat.collection().find({}), dt.datetime.now(dt.UTC), secrets=heartbeat.secrets()
    )
    assert (every.processes, every.future, every.forged) == ([], [future["_id"]], 0)
    assert reading.summary(every)["future_dated"] == 1

    publisher.beat()
    assert heartbeat.collection().find_one({"_id": future["_id"]}) is None
    live = [p["id"] for p in heartbeat.read_fleet().processes]
    assert live == [publisher.beat_id]


# --- 8: figures per pool: the sync pool and a loop's pool are never added up ---


def _pool(client, address):
    return client._topology._servers[address].pool


async def test_probe_judges_each_pool_by_itself(mongo, settings):
    from django_mongopool import get_async_client, get_client

    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 2, "serverSelectionTimeoutMS": 3000}
    settings.MONGOPOOL_READINESS_TIMEOUT = 2.0
    sync_client, async_client = get_client(), get_async_client()
    await asyncio.to_thread(sync_client.admin.command, "ping")
    await async_client.admin.command("ping")
    (address,) = sync_client.nodes
    sync_pool, loop_pool = _pool(sync_client, address), _pool(async_client, address)

    def probe() -> tuple[int, dict]:
        response = Client().get("/mongopool/ready")
        return response.status_code, json.loads(response.content)

    # Real check-outs: half of the sync pool, half of the loop's pool (two pools, none full).
    sync_hold = sync_pool.checkout()
    await asyncio.to_thread(sync_hold.__enter__)
    loop_holds = [loop_pool.checkout()]
    await loop_holds[0].__aenter__()
    try:
        assert await asyncio.to_thread(probe) == (200, {"status": "ok"})
        # Prometheus: one series per pool, never two samples with the same labels.
        from prometheus_client.parser import text_string_to_metric_families

        from django_mongopool.audit import prometheus, report

        text = prometheus.render(await asyncio.to_thread(report.build_report))
        (family,) = [
            f for f in text_string_to_metric_families(text) if f.name == "mongopool_pool_in_use"
        ]
        labels = [tuple(sorted(sample.labels.items())) for sample in family.samples]
        assert len(labels) == len(set(labels)) == 2
        pools = {dict(label)["pool"] for label in labels}
        assert "sync" in pools and len(pools) == 2  # the sync pool and the loop's pool
        loop_holds.append(loop_pool.checkout())  # now the loop's pool is full
        await loop_holds[1].__aenter__()
        status, body = await asyncio.to_thread(probe)
        assert (status, body["reason"]) == (503, "pool saturated")
    finally:
        await asyncio.to_thread(sync_hold.__exit__, None, None, None)
        for hold in loop_holds:
            await hold.__aexit__(None, None, None)
