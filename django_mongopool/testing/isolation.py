"""Test runs never touch the configured MongoDB database (the pytest plugin and ``manage.py test``).

What Django's test runner does for ``DATABASES``, done for the app's client: for the whole run,

- ``MONGOPOOL_URI`` points at the **test server**: the one ``MONGOPOOL_TEST_URL`` names (a
  mongod/mongos of yours; name your configured server there to run on it), else a FerretDB
  started for the run the first time a client is built (a run that never reaches MongoDB
  starts nothing), on a loopback port chosen when the run starts;
- the default database (``MONGOPOOL_DATABASE`` and the URI's ``/database``) becomes
  ``test_<name>``; ORM aliases on ``django_mongopool.backends.mongodb`` get ``test_<NAME>``
  (also ``TEST["NAME"]``, so that Django's runner and pytest-django create that very database),
  and ``django_mongopool.mongoengine`` aliases registered without ``db=`` follow;
- the test databases are dropped the first time the run needs the server (a crashed run's
  leftovers) and at its end; a FerretDB started for the run is removed with its data.

Options that say how to reach a server (``replicaSet``, ``tls...``, ``auth...``,
``directConnection``, ``loadBalanced``, ...) are taken from ``MONGOPOOL_TEST_URL``, never from
``MONGOPOOL_CLIENT_OPTIONS``; the pool options there still apply. A test that sets
``MONGOPOOL_URI`` itself (``override_settings``, pytest-django's ``settings``) gets its own URI.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote, unquote

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from django_mongopool.client.options import ClientConfig

__all__ = ["ENGINE", "Isolation", "TEST_PREFIX", "isolated_name", "with_database"]

TEST_PREFIX = "test_"  # Django's TEST_DATABASE_PREFIX
ENGINE = "django_mongopool.backends.mongodb"
MAX_NAME = 63  # MongoDB's limit on a database name (bytes, less one)
# Options that name a server or say how to reach it: MONGOPOOL_TEST_URL gives them for the test server.
_SERVER_OPTIONS = ("replicaset", "directconnection", "loadbalanced", "tls", "ssl", "auth", "srv")
_SERVER_OPTION_NAMES = {"username", "password", "proxyhost", "proxyport", "proxyusername"}
_EXTERNAL_AUTH = {"MONGODB-X509", "MONGODB-AWS", "MONGODB-OIDC", "GSSAPI", "PLAIN"}
# Ports below Linux's (32768+) and macOS's (49152+) ephemeral ranges: no port-0 bind takes them.
_PORT_RANGE = (20000, 32000)


def isolated_name(name: str, suffix: str = "") -> str:
    """``test_<name>`` (``_<suffix>`` for a pytest-xdist worker), within MongoDB's 63 bytes."""
    tail = f"_{suffix}" if suffix else ""
    base = f"{TEST_PREFIX}{name}"
    while len((base + tail).encode()) > MAX_NAME:
        base = base[:-1]
    return base + tail


def with_database(uri: str, database: str) -> str:
    """``uri`` with ``/database`` as its default database.

    With credentials and no ``authSource``, pymongo authenticates against the URI's database
    (else ``admin``): that source is written out, so renaming the database keeps the login.
    """
    scheme, _, rest = uri.partition("://")
    hosts, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    options = [o for o in query.replace(";", "&").split("&") if o]
    lowered = {o.partition("=")[0].lower(): unquote(o.partition("=")[2]) for o in options}
    external = lowered.get("authmechanism", "").upper() in _EXTERNAL_AUTH
    if "@" in hosts and "authsource" not in lowered and not external:
        options.append(f"authSource={quote(unquote(path) or 'admin', safe='')}")
    rebuilt = f"{scheme}://{hosts}/{quote(database, safe='')}"
    return f"{rebuilt}?{'&'.join(options)}" if options else rebuilt


def _pool_options(options: Any) -> dict[str, Any]:
    """MONGOPOOL_CLIENT_OPTIONS without the options that say how to reach a server."""
    kept = {}
    for key, value in dict(options or {}).items():
        lower = str(key).lower()
        if lower.startswith(_SERVER_OPTIONS) or lower in _SERVER_OPTION_NAMES:
            continue
        kept[key] = value
    return kept


def _reserve_port() -> socket.socket:
    """A loopback port outside the ephemeral ranges (no port-0 bind takes it), held bound (so no
    other run reserves it) until FerretDB is about to listen on it."""
    ports = list(range(*_PORT_RANGE))
    random.shuffle(ports)
    for port in ports[:200]:
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            held.bind(("127.0.0.1", port))
        except OSError:
            held.close()
            continue
        return held
    raise RuntimeError(f"No free loopback port in {_PORT_RANGE[0]}..{_PORT_RANGE[1]}.")


class _ScratchClient(MongoClient):  # type: ignore[type-arg]
    """Drops the test databases; the app's own, so stray-client detection lets it pass."""

    mongopool_own_client = True


class TestServer:
    """The server a run's fixture-less tests use: ``MONGOPOOL_TEST_URL``'s, or a FerretDB
    started on first need (:meth:`ensure`) by the process that made this object."""

    __test__ = False  # not a pytest test class

    def __init__(self, url: str | None) -> None:
        self.external = url or None
        self._held = None if self.external else _reserve_port()
        self.port: int | None = self._held.getsockname()[1] if self._held else None
        self.ferretdb: Any = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._failure: str | None = None

    @property
    def url(self) -> str:
        return self.external or f"mongodb://127.0.0.1:{self.port}/"

    @property
    def description(self) -> str:
        if self.external:
            return "the server MONGOPOOL_TEST_URL names"
        return "a FerretDB the plugin starts for the run"

    def ensure(self) -> None:
        """Start FerretDB if it is ours and not running yet (a build failure is kept and re-raised)."""
        if self.external or self.ferretdb is not None or os.getpid() != self._pid:
            return  # a forked worker uses the server its parent started
        from django_mongopool.testing.ferretdb import FerretDB, FerretDBUnavailable

        with self._lock:
            if self.ferretdb is not None:
                return
            if self._failure is not None:
                raise FerretDBUnavailable(self._failure)
            self._release()
            try:
                self.ferretdb = FerretDB(port=self.port or 0).start()
            except FerretDBUnavailable as exc:
                self._failure = (
                    f"The test server for this run (FerretDB on 127.0.0.1:{self.port}) could not "
                    f"be started: {exc}\nSet MONGOPOOL_TEST_URL to a running mongod/mongos to "
                    "use that instead."
                )
                raise FerretDBUnavailable(self._failure) from None

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        self._release()
        if self.ferretdb is not None:
            self.ferretdb.cleanup()
            self.ferretdb = None


class Isolation:
    """The settings of an isolated test run, as a context manager (see the module docstring).

    ``suffix`` tells parallel runs apart (pytest-xdist's worker id).
    """

    def __init__(self, test_url: str | None, *, suffix: str = "") -> None:
        self.server = TestServer(test_url)
        self.suffix = suffix
        self.timeout_ms = 5000
        self.uri: str | None = None  # the isolated MONGOPOOL_URI, once entered
        self.database: str | None = None
        self.databases: set[str] = set()  # every test database to drop
        self._stack = ExitStack()
        self._prepared = False
        self._orm_saved: list[tuple[dict[str, Any], Any, Any]] = []

    def __enter__(self) -> Isolation:
        from django.conf import settings
        from django.test.utils import override_settings

        from django_mongopool.client.process import on_build
        from django_mongopool.conf import conf

        if not conf.uri_is_set:
            return self  # nothing configured, nothing to keep tests away from (check E001)
        if self.server.external:
            _validate_test_url(self.server.external)
        overrides: dict[str, Any] = {
            "MONGOPOOL_CLIENT_OPTIONS": _pool_options(
                getattr(settings, "MONGOPOOL_CLIENT_OPTIONS", None)
            )
        }
        name = conf.database
        if name:
            self.database = isolated_name(name, self.suffix)
            self.databases.add(self.database)
            if getattr(settings, "MONGOPOOL_DATABASE", None):
                # Else the URI's path names it: a test that sets a URI of its own keeps its path.
                overrides["MONGOPOOL_DATABASE"] = self.database
        self.uri = overrides["MONGOPOOL_URI"] = with_database(self.server.url, self.database or "")
        self._stack.enter_context(override_settings(**overrides))
        self._stack.enter_context(on_build(self._on_build))
        self._rename_orm_aliases()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._restore_orm_aliases()
            self._stack.close()  # the settings come back; the app's test clients are closed
            if self._prepared and self.server.external:
                self._drop()
        finally:
            self.server.close()

    def start_now(self) -> None:
        """Start the test server and clear leftovers now (before forking parallel workers)."""
        if self.uri is not None:
            from django_mongopool.conf import conf

            self._on_build(conf.client_config)

    @property
    def used(self) -> bool:
        """True once a client has been built for the test server."""
        return self._prepared

    def _on_build(self, config: ClientConfig) -> None:
        if config.uri != self.uri or self._prepared:
            return  # a test that set MONGOPOOL_URI itself goes where it says
        self.timeout_ms = int(config.option("serverSelectionTimeoutMS") or self.timeout_ms)
        self.server.ensure()
        if self.server.external:
            self._drop()  # what a crashed run left behind
        self._prepared = True

    def _drop(self) -> None:
        assert self.uri is not None
        timeout = self.timeout_ms
        with contextlib.closing(
            _ScratchClient(self.uri, serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout)
        ) as client:
            for name in sorted(self.databases):
                with contextlib.suppress(PyMongoError):
                    client.drop_database(name)

    def _rename_orm_aliases(self) -> None:
        from django.conf import settings
        from django.db import connections

        for alias in connections:
            configured: dict[str, Any] = settings.DATABASES.get(alias, {})
            if configured.get("ENGINE") != ENGINE:
                continue
            settings_dict: dict[str, Any] = connections[alias].settings_dict
            name = settings_dict.get("NAME") or self.database
            if not name:
                continue
            if name != self.database:
                name = isolated_name(name, self.suffix)
            self.databases.add(name)
            for target in {id(d): d for d in (settings_dict, configured)}.values():
                test = target.setdefault("TEST", {})
                self._orm_saved.append((target, target.get("NAME"), test.get("NAME")))
                # Django's runner and pytest-django create this very name (no test_test_...).
                target["NAME"] = test["NAME"] = name

    def _restore_orm_aliases(self) -> None:
        for target, name, test_name in reversed(self._orm_saved):
            target["NAME"] = name
            target["TEST"]["NAME"] = test_name
        self._orm_saved.clear()


def _validate_test_url(url: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from django_mongopool.client.options import build_config

    try:
        build_config(url, {})
    except ImproperlyConfigured as exc:  # its message is redacted and says what is allowed
        raise ImproperlyConfigured(
            str(exc).replace("MONGOPOOL_URI", "MONGOPOOL_TEST_URL (the test server)")
        ) from None


@contextlib.contextmanager
def isolated(test_url: str | None = None, **kwargs: Any) -> Iterator[Isolation]:
    """:class:`Isolation` for ``MONGOPOOL_TEST_URL`` (or ``test_url``)."""
    url = test_url if test_url is not None else os.environ.get("MONGOPOOL_TEST_URL")
    with Isolation(url, **kwargs) as isolation:
        yield isolation
