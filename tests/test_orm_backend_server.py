"""ENGINE "django_mongopool.backends.mongodb": django-mongodb-backend on the app's one client.

The suite's own default database is SQLite, so each case runs tests/orm_project (default
database on this ENGINE) in a subprocess: tests/orm_project/scenarios.py prints its figures as
JSON. ORM operations used, the ones FerretDB answers correctly: ``create`` (insert), ``get`` by
primary key, ``filter`` on equality, ``migrate`` of the app's own model and the test
database's create/destroy. Not used: ``count()``, ``update()``, joins ($lookup),
``atomic()``, ``order_by()`` (FerretDB fails them or, for ``order_by()``, answers wrongly).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests.helpers import MONITORS_PER_SERVER, ROOT, closed_port

pytestmark = pytest.mark.server

THREADS = 16
POOL = 5


def run(code: list[str], url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("MONGOPOOL_", "DJANGO_", "ORM_"))
    }
    environment.update(
        {
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.orm_project.settings",
            "ORM_TEST_URL": url,
            "ORM_TEST_DB": f"orm_{uuid.uuid4().hex[:10]}",
            "ORM_POOL": str(POOL),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, *code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def scenario(name: str, url: str, *args: str, **env: str) -> dict[str, Any]:
    result = run(["-m", "tests.orm_project.scenarios", name, *args], url, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_threads_share_one_client_within_the_pool(mongo_server):
    """16 threads make their first ORM query at once, then mix ORM and raw pymongo work."""
    figures = scenario("threads", mongo_server.url, str(THREADS))
    assert figures["errors"] == []
    assert figures["built"] == ["PooledMongoClient"]  # the first-use race built one client
    assert figures["orm_clients"] == 1 and figures["orm_is_app_client"]
    bound = POOL + MONITORS_PER_SERVER
    assert figures["peak"] <= bound, figures
    assert "django-mongodb-backend" in figures["driver"]  # the ORM named in the handshake
    assert figures["items"] == 20
    # The ORM's traffic is on the pool page: 3 ORM + 2 raw operations per round.
    assert figures["page_checkouts"] >= THREADS * 20 * 5
    assert figures["page_peak_open"] <= POOL


def test_stock_engine_for_comparison(mongo_server):
    """The same work on the stock engine: its own racing clients besides the app's."""
    figures = scenario(
        "threads",
        mongo_server.url,
        str(THREADS),
        ORM_ENGINE="django_mongodb_backend",
        ORM_STRAY="off",
    )
    assert figures["errors"] == []
    assert figures["built"].count("MongoClient") >= 1
    assert "PooledMongoClient" in figures["built"]


def test_forked_child_uses_its_own_client(mongo_server):
    figures = scenario("fork", mongo_server.url)
    assert figures["child_exit"] == 0
    assert figures["parent_same_client"]
    assert figures["parent_after"] == "parent-after"
    assert figures["child_items"] == 1
    assert figures["built"] == ["PooledMongoClient"]  # in the parent


def test_test_database_create_and_destroy_leave_the_client_usable(mongo_server):
    figures = scenario("testdb", mongo_server.url)
    assert figures["test_name"] == f"test_{figures['name']}"
    assert figures["in_test_db"] == 1
    assert "ormapp_item" in figures["collections_during"]
    assert figures["collections_after"] == []
    assert figures["same_client"] and figures["name_restored"]
    assert figures["built"] == ["PooledMongoClient"]


def test_manage_py_migrate_and_test(mongo_server):
    """``migrate`` passes with the app's own model on this engine (no mongodb.E001)."""
    migrate = run(["-m", "django", "migrate", "-v", "1"], mongo_server.url)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    assert "django_mongopool.0001_initial... OK" in migrate.stdout
    test = run(
        ["-m", "django", "test", "tests.orm_project.ormapp", "-p", "orm_*.py", "-v", "1"],
        mongo_server.url,
    )
    assert test.returncode == 0, test.stderr[-3000:]
    assert "Ran 1 test" in test.stderr and "OK" in test.stderr


def test_orm_query_during_an_outage_is_a_503():
    figures = scenario("outage", f"mongodb://127.0.0.1:{closed_port()}/")
    assert figures["status"] == 503 and figures["retry_after"]


def test_outage_after_a_settings_rebuild_is_a_503(mongo_server):
    """Connected ORM, then the client is rebuilt for an unreachable server: the ORM follows
    the rebuild, and the wrapped ``DatabaseError`` still maps to the 503."""
    figures = scenario("outage_after_rebuild", mongo_server.url)
    assert figures["before"] == 200
    assert figures["followed"]
    assert figures["status"] == 503 and figures["retry_after"]


def test_stock_engine_client_is_reported_with_a_hint(mongo_server):
    raised = scenario("stray", mongo_server.url, ORM_ENGINE="django_mongodb_backend")
    assert 'ENGINE "django_mongopool.backends.mongodb"' in raised["raised"]
    warned = scenario(
        "stray", mongo_server.url, ORM_ENGINE="django_mongodb_backend", ORM_STRAY="warn"
    )
    assert len(warned["warned"]) == 1 and "django_mongodb_backend" in warned["warned"][0]
    ours = scenario("stray", mongo_server.url)
    assert ours == {"raised": None, "warned": []}


CHECK = "import django; django.setup(); from django.db import connection; print(connection.settings_dict['NAME'])"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HOST", "mongodb://h/"),
        ("PORT", "27017"),
        ("USER", "u"),
        ("PASSWORD", "p"),
        ("OPTIONS", "x"),
    ],
)
def test_connection_settings_are_refused(key, value):
    code = (
        "import django; from django.conf import settings; import tests.orm_project.settings as s;"
        f"s.DATABASES['default'][{key!r}] = {{'tls': True}} if {key!r} == 'OPTIONS' else {value!r};"
        "django.setup(); from django.db import connection; connection.ensure_connection()"
    )
    result = run(["-c", code], "mongodb://127.0.0.1:9/")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and key in result.stderr
    assert "MONGOPOOL_URI" in result.stderr and "MONGOPOOL_CLIENT_OPTIONS" in result.stderr


def test_name_defaults_to_the_app_database():
    result = run(["-c", CHECK], "mongodb://127.0.0.1:9/", ORM_TEST_DB="from_mongopool")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from_mongopool"


def test_without_the_extra_the_error_names_it():
    code = (
        "import sys; sys.modules['django_mongodb_backend'] = None;"
        "import tests.orm_project.settings as s; s.INSTALLED_APPS.remove('tests.orm_project.ormapp');"
        "s.DEFAULT_AUTO_FIELD = 'django.db.models.AutoField';"
        "import django; django.setup(); from django.db import connection; connection.cursor()"
    )
    result = run(["-c", code], "mongodb://127.0.0.1:9/")
    assert result.returncode != 0
    assert 'pip install "django-mongopool[orm]"' in result.stderr
