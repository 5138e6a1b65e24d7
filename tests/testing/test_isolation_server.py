"""Tests never touch the configured database, in fresh processes.

The "developer's server" is this session's FerretDB, with data of the developer's own in the
configured database. A project whose ``MONGOPOOL_URI`` points there runs its tests without any of
the plugin's fixtures (pytester), and under ``manage.py test``: posting to a view, ``get_client()``,
``get_database()``, the ORM engine and the MongoEngine helper all land on a test database, and
after the run the developer's database holds exactly what it held before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from django_mongopool import get_client

pytestmark = pytest.mark.server

DEVELOPERS = {"name": "developer's own", "secret": "not for tests"}

SETTINGS = """
SECRET_KEY = "x"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_mongopool", "proj"]
MIDDLEWARE = ["django_mongopool.middleware.MongoSessionMiddleware"]
ROOT_URLCONF = "proj.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "mongo": {"ENGINE": "django_mongopool.backends.mongodb", "NAME": "DEVDB"},
}
MONGOPOOL_URI = "CONFIGURED"
USE_TZ = True
"""

URLS = """
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django_mongopool import get_database


@csrf_exempt
def add(request):
    things = get_database()["things"]
    things.insert_one({"name": request.POST["name"]}, session=request.mongo_session)
    names = [d["name"] for d in things.find({}, session=request.mongo_session)]
    return JsonResponse({"names": names, "database": things.database.name})


urlpatterns = [path("add/", add)]
"""

# Shared by the pytest run and the manage.py test run (unittest style works for both).
CHECKS = """
import multiprocessing
import os
from unittest import TestCase

import mongoengine
from django.db import connections
from django.test import Client

from django_mongopool import get_client, get_database

DEVELOPERS = "developer's own"
OPT_IN = bool(os.environ.get("MONGOPOOL_TEST_URL"))


class Thing(mongoengine.Document):
    name = mongoengine.StringField()
    meta = {"collection": "things"}


class Recorded(TestCase):
    def setUp(self):  # which process ran the test (manage.py test --parallel: a forked worker)
        with open("processes.txt", "a") as out:
            out.write(multiprocessing.current_process().name + "\\n")


class ForgotTheFixture(Recorded):
    def test_a_post_to_a_view_lands_in_the_test_database(self):
        response = Client().post("/add/", {"name": "from a test"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["database"], "test_DEVDB")
        self.assertNotIn(DEVELOPERS, response.json()["names"])

    def test_get_database_and_get_client_see_no_developer_data(self):
        self.assertEqual(get_database().name, "test_DEVDB")
        self.assertEqual(get_client().get_default_database().name, "test_DEVDB")
        self.assertIsNone(get_database()["things"].find_one({"name": DEVELOPERS}))
        self.assertNotIn("leftover", [d["name"] for d in get_database()["things"].find()])
        configured = get_client()["DEVDB"]["things"].find_one({"name": DEVELOPERS})
        # A database the code names itself keeps its name: on the plugin's own test server it
        # does not exist; on the server you opted into, it is yours.
        self.assertEqual(configured is not None, OPT_IN)
        get_database()["things"].insert_one({"name": "written by get_database"})



class ForgotTheFixtureToo(Recorded):  # a second class: manage.py test --parallel splits by class
    def test_the_orm_engine_uses_the_test_database(self):
        database = connections["mongo"].database
        self.assertEqual(database.name, "test_DEVDB")
        database["things"].insert_one({"name": "written by the ORM engine"})
        self.assertIsNone(database["things"].find_one({"name": DEVELOPERS}))

    def test_the_mongoengine_helper_uses_the_test_database(self):
        # connect() ran in AppConfig.ready(), before the run was isolated: its alias follows.
        Thing(name="written by MongoEngine").save()
        self.assertEqual(Thing._get_db().name, "test_DEVDB")
        self.assertEqual(Thing.objects(name=DEVELOPERS).count(), 0)
"""

APPS = """
from django.apps import AppConfig


class ProjConfig(AppConfig):
    name = "proj"

    def ready(self):
        from django_mongopool.mongoengine import connect

        connect()  # as docs/orm.md shows: alias "default", database MONGOPOOL_DATABASE
"""


@pytest.fixture
def developer(developers_database) -> str:
    """The name of the developer's configured database, with a crashed run's test database."""
    return developers_database("things", DEVELOPERS, leftover={"name": "leftover"}).name


def _project(path, url: str, database: str) -> None:
    project = path / "proj"
    project.mkdir()
    (project / "__init__.py").write_text("")
    (project / "urls.py").write_text(URLS)
    (project / "apps.py").write_text(APPS)
    (project / "tests.py").write_text(CHECKS.replace("DEVDB", database))
    configured = url.rstrip("/") + f"/{database}"
    (path / "proj_settings.py").write_text(
        SETTINGS.replace("CONFIGURED", configured).replace("DEVDB", database)
    )


def _names(collection) -> list[str]:
    return [d["name"] for d in collection.find()]


def _only_the_developers_data_left(database: str, opted_in: bool) -> None:
    client = get_client()
    assert [
        {k: v for k, v in d.items() if k != "_id"} for d in client[database]["things"].find()
    ] == [DEVELOPERS]
    if opted_in:  # the run's test database on the developer's server: cleared, then dropped
        assert f"test_{database}" not in client.list_database_names()
    else:  # the run never reached the developer's server: the leftover is untouched
        assert _names(client[f"test_{database}"]["things"]) == ["leftover"]


@pytest.mark.parametrize("opt_in", [False, True], ids=["plugin-server", "MONGOPOOL_TEST_URL"])
def test_a_fixture_less_pytest_run_never_touches_the_configured_database(
    pytester, monkeypatch, mongo_server, developer, opt_in
):
    _project(pytester.path, mongo_server.url, developer)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    if opt_in:
        monkeypatch.setenv("MONGOPOOL_TEST_URL", mongo_server.url)
    else:
        monkeypatch.delenv("MONGOPOOL_TEST_URL", raising=False)
    result = pytester.runpytest_subprocess(
        "--ds=proj_settings", "-p", "no:cacheprovider", "-q", "proj/tests.py", timeout=300
    )
    result.assert_outcomes(passed=4)
    _only_the_developers_data_left(developer, opt_in)


@pytest.mark.parametrize(
    ("opt_in", "parallel"),
    [(False, "2"), (True, "1")],
    ids=["ferretdb-parallel-forked", "MONGOPOOL_TEST_URL"],
)
def test_manage_py_test_never_touches_the_configured_database(
    tmp_path, mongo_server, developer, opt_in, parallel
):
    _project(tmp_path, mongo_server.url, developer)
    (tmp_path / "manage.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            from django.core.management import execute_from_command_line
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj_settings")
            execute_from_command_line(sys.argv)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.pop("MONGOPOOL_TEST_URL", None)
    if opt_in:
        env["MONGOPOOL_TEST_URL"] = mongo_server.url
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "test",
            "proj",
            "--noinput",
            "-v",
            "2",
            "--parallel",
            parallel,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Ran 4 tests" in result.stderr
    processes = set((tmp_path / "processes.txt").read_text().split())
    if parallel == "1":
        assert processes == {"MainProcess"}
    else:  # workers forked after the parent started the test server
        assert processes and all(name.startswith("ForkPoolWorker") for name in processes)
    _only_the_developers_data_left(developer, opt_in)
