"""MongoEngine on the app's process client: ``django_mongopool.mongoengine.connect()``.

MongoEngine builds a ``MongoClient`` per connection alias unless ``register_connection(...,
mongo_client_class=...)`` supplies one. :func:`connect` registers :class:`SharedClient`, a
stand-in that MongoEngine "constructs" and that forwards every use to
:func:`django_mongopool.client.process.get_client`; it never builds or closes a client.

MongoEngine's codec options (``uuidRepresentation``, pythonLegacy unless given; ``tz_aware``
...) and read preference go on MongoEngine's database objects, not on the shared client, so
existing MongoEngine data decodes as before and the raw code keeps its own options.
MongoEngine caches databases and ``Document._collection`` per process: a forked child drops
them (fork hook) and so does a change to a client setting, so both use the current client.
"""

from __future__ import annotations

import threading
from typing import Any

from bson.codec_options import CodecOptions
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from pymongo import common
from pymongo.database import Database
from pymongo.driver_info import DriverInfo
from pymongo.read_preferences import ReadPreference

from django_mongopool.client.process import PooledMongoClient, get_client
from django_mongopool.conf import CLIENT_SETTINGS, conf
from django_mongopool.guards import forks

try:
    import mongoengine
    from mongoengine import connection as me_connection
except ModuleNotFoundError as exc:  # pragma: no cover - mongoengine is optional
    raise ImportError(
        'django_mongopool.mongoengine needs MongoEngine: pip install "mongoengine>=0.27"'
    ) from exc

__all__ = ["SharedClient", "connect", "disconnect", "forget_cached_databases"]

# MongoEngine's own default; passing it also avoids MongoEngine's "No uuidRepresentation"
# DeprecationWarning.
DEFAULT_UUID_REPRESENTATION = "pythonLegacy"
# connect() keyword -> CodecOptions keyword (pymongo's option names, case-insensitive).
CODEC_OPTIONS = {
    "uuidrepresentation": "uuid_representation",
    "tz_aware": "tz_aware",
    "tzinfo": "tzinfo",
    "document_class": "document_class",
    "unicode_decode_error_handler": "unicode_decode_error_handler",
    "type_registry": "type_registry",
    "datetime_conversion": "datetime_conversion",
}
# What MongoEngine itself passes to its client class besides the options above.
_IGNORED = {"host", "port", "read_preference", "driver"}

_lock = threading.Lock()
_aliases: set[str] = set()
# Aliases registered without db=: they follow MONGOPOOL_DATABASE (a test run's test_<name>).
_default_db_aliases: set[str] = set()
_hooks_installed = False


@forks.in_child
def _fresh_lock_in_child() -> None:
    """In a forked child: the lock may have been held by another thread at fork time."""
    global _lock
    _lock = threading.Lock()


def _codec_options(options: dict[str, Any]) -> CodecOptions[Any]:
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        name = CODEC_OPTIONS[key.lower()]
        if name == "uuid_representation":
            value = common.validate_uuid_representation(key, value)
        kwargs[name] = value
    return CodecOptions(**kwargs)


class SharedClient:
    """What MongoEngine gets for a ``connect()`` alias: the process client, seen through
    MongoEngine's codec options and read preference.

    MongoEngine calls it like a client class (``mongo_client_class(**settings)``); the
    settings only carry the options above. ``db[name]`` and ``get_database(name)`` give a
    pymongo ``Database`` of the current process client; anything else is the client's own
    attribute, except ``close()``, which does nothing (the client belongs to the app).
    """

    def __init__(self, **settings: Any) -> None:
        self._codec_options = _codec_options(
            {k: v for k, v in settings.items() if k.lower() in CODEC_OPTIONS}
        )
        self._read_preference = settings.get("read_preference", ReadPreference.PRIMARY)
        self._driver: DriverInfo | None = settings.get("driver")

    @property
    def client(self) -> PooledMongoClient:
        """The process client (a forked child's own, the rebuilt one after a settings change)."""
        client = get_client()
        if self._driver is not None and not getattr(client, "_mongopool_mongoengine", False):
            client.append_metadata(self._driver)  # MongoEngine named in the handshake
            client._mongopool_mongoengine = True  # type: ignore[attr-defined]
        return client

    def get_database(self, name: str, **kwargs: Any) -> Database[Any]:
        kwargs.setdefault("codec_options", self._codec_options)
        kwargs.setdefault("read_preference", self._read_preference)
        return self.client.get_database(name, **kwargs)

    def __getitem__(self, name: str) -> Database[Any]:
        return self.get_database(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.client, name)

    def close(self) -> None:
        """MongoEngine's ``disconnect()`` closes its client: the shared one stays open."""

    def __repr__(self) -> str:
        return f"SharedClient({self.client!r}, {self._codec_options.uuid_representation=})"


def forget_cached_databases() -> None:
    """Drop MongoEngine's cached databases and ``Document._collection`` for our aliases.

    The next use goes through :class:`SharedClient` to the current process client: a forked
    child's own, or the one rebuilt after a client-settings change.
    """
    from mongoengine.base.common import _get_documents_by_db

    for alias in list(_aliases):
        me_connection._dbs.pop(alias, None)
        for document in _get_documents_by_db(alias, me_connection.DEFAULT_CONNECTION_NAME):
            if issubclass(document, mongoengine.Document):
                document._disconnect()


def _follow_default_database() -> None:
    """Point the aliases registered without ``db=`` at the current default database."""
    try:
        name = conf.database
    except ImproperlyConfigured:
        return  # check E004 says why; the client cannot be built either
    for alias in list(_default_db_aliases):
        registered = me_connection._connection_settings.get(alias)
        if name and registered is not None:
            registered["name"] = name


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in CLIENT_SETTINGS or setting == "MONGOPOOL_DATABASE":
        conf.clear(setting)  # this receiver may run before the app's own
        _follow_default_database()
        forget_cached_databases()


def _install_hooks() -> None:
    global _hooks_installed
    with _lock:
        if _hooks_installed:
            return
        forks.in_child(forget_cached_databases)  # run by the app's fork hook
        setting_changed.connect(_settings_changed, dispatch_uid="django_mongopool.mongoengine")
        _hooks_installed = True


def connect(alias: str = "default", db: str | None = None, **options: Any) -> SharedClient:
    """Register MongoEngine's ``alias`` on the app's process client and return its client.

    ``db``: the database (default ``MONGOPOOL_DATABASE`` or the URI's, followed when it changes:
    a test run's ``test_<name>``). ``options``: codec
    options (``uuidRepresentation``, default ``"pythonLegacy"`` as MongoEngine's own; ``tz_aware``,
    ``tzinfo``, ``document_class``, ...) and ``read_preference``, applied to MongoEngine's
    database objects only. Server address, credentials and pool options are refused: they
    belong in ``MONGOPOOL_URI`` / ``MONGOPOOL_CLIENT_OPTIONS``.
    """
    refused = sorted(
        k for k in options if k.lower() not in CODEC_OPTIONS and k != "read_preference"
    )
    if refused:
        raise ImproperlyConfigured(
            f"django_mongopool.mongoengine.connect() got {', '.join(refused)}: MongoEngine shares "
            "django-mongopool's client, so the server address, credentials and client options "
            "go in MONGOPOOL_URI / MONGOPOOL_CLIENT_OPTIONS; connect() takes only codec options "
            "and read_preference."
        )
    name = db or conf.database
    if not name:
        raise ImproperlyConfigured(
            "django_mongopool.mongoengine.connect() needs db=..., MONGOPOOL_DATABASE or a "
            "database in the MONGOPOOL_URI path."
        )
    if not any(k.lower() == "uuidrepresentation" for k in options):
        options["uuidRepresentation"] = DEFAULT_UUID_REPRESENTATION
    _install_hooks()
    with _lock:
        _aliases.add(alias)
        if db:
            _default_db_aliases.discard(alias)
        else:
            _default_db_aliases.add(alias)
    mongoengine.connect(db=name, alias=alias, mongo_client_class=SharedClient, **options)
    return me_connection.get_connection(alias)  # type: ignore[no-any-return]


def disconnect(alias: str = "default") -> None:
    """MongoEngine's ``disconnect(alias)``: forget the alias (the shared client stays open)."""
    me_connection.disconnect(alias)
    with _lock:
        _aliases.discard(alias)
        _default_db_aliases.discard(alias)
