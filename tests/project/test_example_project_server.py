"""The example guestbook against the real server, and its start-up with the server down."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import AsyncClient, Client

from django_mongopool.client import pools
from tests.helpers import closed_port, run_manage

pytestmark = pytest.mark.django_db


@pytest.mark.server
def test_sign_list_detail_export(mongo):
    client = Client()
    response = client.post("/", {"name": "Ada", "message": "Hello, pool"})
    assert response.status_code == 302
    detail = client.get(response["Location"])
    assert b"Hello, pool" in detail.content
    listing = client.get("/")
    assert b"Ada" in listing.content and b"1 entry" in listing.content

    export = client.get("/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0] == ["id", "name", "message", "created_at"]
    assert rows[1][1:3] == ["Ada", "Hello, pool"]
    export.close()
    snapshot = pools.snapshot()
    assert snapshot.sessions_started == snapshot.sessions_ended == 4


@pytest.mark.server
def test_invalid_form_and_missing_entry(mongo):
    client = Client()
    assert client.post("/", {"name": "", "message": ""}).status_code == 200
    assert client.get("/entries/not-an-id/").status_code == 404
    assert client.get("/entries/5f0000000000000000000000/").status_code == 404


@pytest.mark.server
async def test_async_api_view(mongo):
    await AsyncClient().post("/", {"name": "Bob", "message": "async"})
    response = await AsyncClient().get("/api/entries/")
    assert response.json()["entries"][0]["name"] == "Bob"


def test_manage_check_and_startup_work_with_the_server_down():
    url = f"mongodb://demo:pw-never-shown@127.0.0.1:{closed_port()}/guestbook"
    check = run_manage("check", MONGODB_URL=url)
    assert check.returncode == 0, check.stderr
    assert "no issues" in check.stdout
    shell = run_manage(
        "shell",
        "-c",
        "from django_mongopool import get_client; c = get_client(); print(repr(c), c._opened)",
        MONGODB_URL=url,
    )
    assert shell.returncode == 0, shell.stderr
    assert "PooledMongoClient('mongodb://demo:***@127.0.0.1" in shell.stdout
    assert "False" in shell.stdout
    assert "pw-never-shown" not in shell.stdout + shell.stderr


def test_missing_url_is_a_clear_error():
    result = run_manage("check")
    assert result.returncode != 0
    assert "MONGODB_URL" in result.stderr


def test_bad_pool_setting_stops_startup_naming_the_setting():
    url = f"mongodb://demo:pw-never-shown@127.0.0.1:{closed_port()}/"
    result = run_manage("check", MONGODB_URL=url, MONGODB_MAX_POOL_SIZE="0")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "maxPoolSize" in result.stderr
    assert "pw-never-shown" not in result.stderr
