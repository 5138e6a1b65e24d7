"""The readiness probe on the real server: each pool (the sync client's, each loop's) is judged
by itself."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.test import Client

pytestmark = [pytest.mark.server]


# --- figures per pool: the sync pool and a loop's pool are never added up ---


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
            f
            for f in text_string_to_metric_families(text)
            if f.name == "mongopool_pool_in_use_connections"
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
