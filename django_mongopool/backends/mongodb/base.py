"""django-mongodb-backend's ``DatabaseWrapper`` whose connection is the app's process client.

The stock engine builds one ``MongoClient`` per alias from HOST/OPTIONS/USER/PASSWORD. This
one never builds a client: every use looks up :func:`django_mongopool.client.process.get_client`, so
the ORM shares the raw code's pool and monitors, a forked worker uses its own client and a
rebuild after a client-settings change is followed. ``close()`` and ``close_pool()`` never
close the shared client (the test runner calls ``close_pool()`` around the test database).
"""

from __future__ import annotations

from typing import Any

from bson.codec_options import DEFAULT_CODEC_OPTIONS
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.asyncio import async_unsafe
from pymongo.database import Database

try:
    from django_mongodb_backend.base import DatabaseWrapper as MongoDatabaseWrapper
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    if not (exc.name or "").startswith("django_mongodb_backend"):
        raise
    raise ImproperlyConfigured(
        'ENGINE "django_mongopool.backends.mongodb" needs django-mongodb-backend: '
        'pip install "django-mongopool[orm]"'
    ) from exc

from django_mongopool.client.process import PooledMongoClient, get_client
from django_mongopool.conf import conf

ENGINE = "django_mongopool.backends.mongodb"
# Connection settings live in MONGOPOOL_URI / MONGOPOOL_CLIENT_OPTIONS, once for the process.
REFUSED = ("HOST", "PORT", "USER", "PASSWORD", "OPTIONS")
_DRIVER_MARK = "_mongopool_orm_driver"


def _refuse_connection_settings(alias: str, settings_dict: dict[str, Any]) -> None:
    given = [key for key in REFUSED if settings_dict.get(key)]
    if given:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}] uses ENGINE {ENGINE!r}, which shares django-mongopool's "
            f"client: remove {', '.join(given)} and put the server address and credentials in "
            "MONGOPOOL_URI, client options in MONGOPOOL_CLIENT_OPTIONS (one place for every "
            "connection setting of the process)."
        )


def _missing_name(alias: str) -> str:
    raise ImproperlyConfigured(
        f"DATABASES[{alias!r}] needs a NAME: set it, or set MONGOPOOL_DATABASE or put the "
        "database in the MONGOPOOL_URI path (mongodb://host/dbname)."
    )


class DatabaseWrapper(MongoDatabaseWrapper):  # type: ignore[misc]
    """The ORM engine on the app's process client (one pool per process for ORM and raw code)."""

    _mongopool_connected = False
    _mongopool_database: Database[Any] | None = None

    def __init__(self, settings_dict: dict[str, Any], alias: str = DEFAULT_DB_ALIAS) -> None:
        _refuse_connection_settings(alias, settings_dict)
        if settings_dict.get("NAME") == "":  # None is Django's "no database" (_nodb_cursor)
            settings_dict["NAME"] = conf.database or _missing_name(alias)
        super().__init__(settings_dict, alias=alias)

    # The connection is the process client, looked up on every use; Django only
    # learns whether this wrapper counts as connected.
    @property
    def connection(self) -> PooledMongoClient | None:
        if not self._mongopool_connected:
            return None
        client = get_client()
        if not getattr(client, _DRIVER_MARK, False):
            self._identify(client)
        return client

    @connection.setter
    def connection(self, value: Any) -> None:
        self._mongopool_connected = value is not None
        if value is None:
            self._mongopool_database = None

    def _identify(self, client: PooledMongoClient) -> None:
        """Name the ORM in the handshake of the connections the client opens from now on."""
        driver = self._driver_info()
        if driver is not None:
            client.append_metadata(driver)
        setattr(client, _DRIVER_MARK, True)

    @property
    def database(self) -> Database[Any]:
        """The ORM's database on the current process client (settings' NAME, which the test
        runner changes). pymongo's default codec options, as the stock engine has them, whatever
        MONGOPOOL_CLIENT_OPTIONS sets for raw use (the ORM converts datetimes itself)."""
        if not self._mongopool_connected:
            self.connect()
        client = self.connection
        name = self.settings_dict["NAME"]
        database = self._mongopool_database
        if database is None or database.client is not client or database.name != name:
            database = client.get_database(name, codec_options=DEFAULT_CODEC_OPTIONS)  # type: ignore[union-attr]
            self._mongopool_database = database
        return database

    def get_connection_params(self) -> dict[str, Any]:
        return {}

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> PooledMongoClient:
        client = get_client()
        self._identify(client)
        return client

    def init_connection_state(self) -> None:
        # The stock method caches ``self.database``; here it is looked up on each use.
        BaseDatabaseWrapper.init_connection_state(self)

    def close_pool(self) -> None:
        """End this wrapper's transaction session and forget the client; never close it."""
        self.run_on_commit: list[Any] = []
        if self.session:
            self._end_session()
        self.connection = None
