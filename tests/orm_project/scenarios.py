"""ORM scenarios run in a subprocess: ``python -m tests.orm_project.scenarios NAME``.

Each prints one JSON line with its figures; tests/test_orm_backend_server.py asserts on
them. Only ORM operations FerretDB answers correctly are used: insert (``create``), get by
primary key, ``filter`` on equality. Clients are counted by wrapping ``MongoClient.__init__``
before the first one is built; connections at the operating system (tests/helpers.py).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
import warnings
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.orm_project.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from pymongo.uri_parser import parse_uri  # noqa: E402

from django_mongopool.client.process import get_client, get_database  # noqa: E402
from tests.helpers import bound_child, established_to  # noqa: E402
from tests.orm_project.ormapp.models import Item  # noqa: E402

BUILT: list[str] = []
_original_init = MongoClient.__init__


def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # named so stray.py sees a constructor
    BUILT.append(type(self).__name__)
    _original_init(self, *args, **kwargs)


MongoClient.__init__ = __init__  # type: ignore[method-assign]
PORTS = {port for _host, port in parse_uri(os.environ["ORM_TEST_URL"])["nodelist"]}


def orm_client() -> Any:
    connection.ensure_connection()
    return connection.connection


def threads(count: int = 16, rounds: int = 20) -> dict[str, Any]:
    """``count`` threads make their first ORM query together, then mix ORM and raw work."""
    barrier = threading.Barrier(count + 1)
    samples: list[int] = []
    done = threading.Event()
    clients: set[int] = set()
    errors: list[str] = []

    def sample() -> None:
        while not done.is_set():
            samples.append(established_to(PORTS))
            done.wait(0.003)
        samples.append(established_to(PORTS))

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for n in range(rounds):
                key = f"{worker}-{n}-{uuid.uuid4().hex[:6]}"
                item = Item.objects.create(key=key, worker=worker)
                assert Item.objects.get(pk=item.pk).key == key
                assert [i.pk for i in Item.objects.filter(key=key)] == [item.pk]
                raw = get_database(settings.MONGOPOOL_DATABASE)["raw"]
                raw.insert_one({"key": key})
                assert raw.find_one({"key": key})["key"] == key
            clients.add(id(connection.connection))
        except Exception as exc:  # reported, not swallowed
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    sampler = threading.Thread(target=sample)
    workers = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in workers:
        thread.start()
    sampler.start()
    barrier.wait()
    for thread in workers:
        thread.join()
    done.set()
    sampler.join()
    client = get_client()
    driver = client._options.pool_options.metadata["driver"]["name"]
    from django_mongopool.client import pools

    servers = pools.snapshot().servers  # what the pool page shows
    return {
        "page_checkouts": sum(server.checkouts for server in servers),
        "page_peak_open": max((server.peak_open for server in servers), default=0),
        "errors": errors,
        "built": BUILT,
        "orm_clients": len(clients),
        "orm_is_app_client": clients == {id(client)} if not settings.STOCK else False,
        "peak": max(samples),
        "pool": settings.MONGOPOOL_CLIENT_OPTIONS["maxPoolSize"],
        "driver": driver,
        "items": len(list(Item.objects.filter(worker=0))),
    }


def fork() -> dict[str, Any]:
    parent = orm_client()
    Item.objects.create(key="parent")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            bound_child()  # a hung child ends by itself (this process's own run is bounded)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                item = Item.objects.create(key="child")
                code = 2 if Item.objects.get(pk=item.pk).key != "child" else 0
                child = connection.connection
                if child is parent or child is not get_client():
                    code = 3
                if any("fork" in str(w.message) for w in caught):
                    code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    after = Item.objects.create(key="parent-after")
    return {
        "child_exit": os.waitstatus_to_exitcode(status),
        "parent_same_client": orm_client() is parent,
        "parent_after": Item.objects.get(pk=after.pk).key,
        "child_items": len(list(Item.objects.filter(key="child"))),
        "built": BUILT,
    }


def testdb() -> dict[str, Any]:
    """Django's test-database setup and teardown, as ``manage.py test`` runs them."""
    from django.test.utils import setup_databases, teardown_databases

    client = get_client()
    client.admin.command("ping")
    name = settings.DATABASES["default"]["NAME"]
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    test_name = connection.settings_dict["NAME"]
    item = Item.objects.create(key="in-test-db")
    in_test_db = client[test_name]["ormapp_item"].count_documents({"_id": item.pk})
    collections_during = sorted(client[test_name].list_collection_names())
    teardown_databases(old, verbosity=0)
    client.admin.command("ping")
    client[name]["raw"].insert_one({"after": True})
    return {
        "name": name,
        "test_name": test_name,
        "in_test_db": in_test_db,
        "collections_during": collections_during,
        "collections_after": sorted(client[test_name].list_collection_names()),
        "same_client": get_client() is client and orm_client() is client,
        "name_restored": connection.settings_dict["NAME"] == name,
        "built": BUILT,
    }


def outage() -> dict[str, Any]:
    from django.test import Client

    response = Client().get("/lookup/?key=x", HTTP_ACCEPT="application/json")
    return {
        "status": response.status_code,
        "retry_after": response.get("Retry-After"),
        "body": response.content.decode()[:200],
    }


def outage_after_rebuild() -> dict[str, Any]:
    """A connected ORM, then a client-settings change to an unreachable server."""
    from django.test import Client, override_settings

    from tests.helpers import closed_port

    before = Client().get("/lookup/?key=x").status_code
    old = orm_client()
    with override_settings(MONGOPOOL_URI=f"mongodb://127.0.0.1:{closed_port()}/"):
        followed = orm_client() is get_client() and get_client() is not old
        response = Client().get("/lookup/?key=x", HTTP_ACCEPT="application/json")
    return {
        "before": before,
        "followed": followed,
        "status": response.status_code,
        "retry_after": response.get("Retry-After"),
    }


def stray() -> dict[str, Any]:
    from django_mongopool.exceptions import StrayClientError, StrayClientWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Item.objects.create(key="stray")
    except StrayClientError as exc:
        return {"raised": str(exc), "warned": []}
    return {
        "raised": None,
        "warned": [str(w.message) for w in caught if issubclass(w.category, StrayClientWarning)],
    }


if __name__ == "__main__":
    result = globals()[sys.argv[1]](*map(int, sys.argv[2:]))
    print(json.dumps(result))
