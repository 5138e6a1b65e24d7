"""Every use of pymongo's non-public API, in this one module, and the start-up check of it.

Some promises of this package are kept through pymongo internals: the pool figures
(a pool factory passed as ``_pool_class``, hooks on ``Pool._get_conn``, ``Pool.connect``,
the pool's ``size_cond`` and its ``_CmapTelemetry``), the session counts
(``ClientSession._materialize`` / ``_end_session``, ``_EmptyServerSession``,
``MongoClient._start_session``), the fleet budget (each pool's ``max_pool_size``,
``size_cond``, ``lock`` and idle ``conns``, reached through ``client._topology._servers``),
URI parsing without DNS (``_validate_uri``), the member connections' auth source
(``pool_options._credentials``), the fork check (``MongoClient._opened``) and counting a
retried read's check-out timeout once (``_ClientConnectionRetryable``). No other module of
the package names a pymongo internal (``tests/client/test_pymongo_internals.py`` scans for it), and every
import here is guarded: a pymongo that moved one still imports this package.

:func:`verify` (called from ``AppConfig.ready()``; its result is cached) checks each name,
signature, slot and attribute against what the package was written for, on throw-away
objects and with no network I/O, and turns on only the hooks whose check passed. For each
:class:`Feature` that failed, system check E010 / W010..W015 names what moved, and a fallback
that needs no internal runs instead (see :data:`FALLBACKS`).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
from collections.abc import Callable, Sized
from dataclasses import dataclass
from time import monotonic
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.client_session import ClientSession, SessionOptions  # type: ignore[attr-defined]
from pymongo.errors import WaitQueueTimeoutError
from pymongo.uri_parser import parse_uri as public_parse_uri

from django_mongopool.guards import forks


def _find(module: str, name: str) -> Any:
    """``module.name``, or None when this pymongo does not have it (whatever the import raises)."""
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:
        return None


# The internals, looked up once. Tests replace one by None (or by something else) to play a
# pymongo release that moved it, then call verify(refresh=True).
CmapTelemetry: Any = _find("pymongo._telemetry", "_CmapTelemetry")
SyncPool: Any = _find("pymongo.synchronous.pool", "Pool")
AsyncPool: Any = _find("pymongo.asynchronous.pool", "Pool")
SyncConnection: Any = _find("pymongo.synchronous.pool", "Connection")
AsyncConnection: Any = _find("pymongo.asynchronous.pool", "AsyncConnection")
PoolOptions: Any = _find("pymongo.pool_options", "PoolOptions")
SyncServer: Any = _find("pymongo.synchronous.server", "Server")
AsyncServer: Any = _find("pymongo.asynchronous.server", "Server")
EmptyServerSession: Any = _find("pymongo.client_session_shared", "_EmptyServerSession")
validate_uri_internal: Any = _find("pymongo.uri_parser_shared", "_validate_uri")
SyncRetryable: Any = _find("pymongo.synchronous.mongo_client", "_ClientConnectionRetryable")
AsyncRetryable: Any = _find("pymongo.asynchronous.mongo_client", "_ClientConnectionRetryable")
POOL_CLASS_OPTION = "_pool_class"  # MongoClient's keyword for a pool factory


# What each feature keeps, what runs when its internals are not as expected, and its check id.
PROMISES = {
    "pool_hooks": "pool figures counted inside pymongo's pools (no event objects)",
    "sessions": "sessions started/ended counted when they first run a command; "
    "sessions started outside a request reported when collected unended",
    "fleet_budget": "the fleet budget resizing pymongo's pools",
    "uri": "URIs parsed by pymongo's own parser without any DNS lookup",
    "auth_source": "member connections of the audit authenticating where the app's client does",
    "fork": "check W004 (a client connected before fork)",
    "retries": "a read that pymongo retries after a check-out timeout counted as one timeout",
}
FALLBACKS = {
    "pool_hooks": "the pool figures come from pymongo's public connection-pool events (a "
    "ConnectionPoolListener on each client): pymongo then builds and dispatches an event "
    "object for every check-out and check-in, so every operation costs more; 'waiting' also "
    "counts check-outs queued behind maxConnecting",
    "sessions": "request.mongo_session is built with the public MongoClient.start_session() and "
    "still ends with its request; sessions started/ended are not counted (the figures stay 0, "
    "JSON 'sessions_counted': false) and sessions started outside a request are not "
    "leak-tracked",
    "fleet_budget": "the fleet budget is refused: it never resizes a pool, so every pool stays "
    "at MONGOPOOL_FLEET_MIN_SHARE (pymongo's own maxPoolSize); the page and JSON show it "
    "inactive",
    "uri": "URIs are parsed with the public pymongo.uri_parser.parse_uri, which resolves a "
    "mongodb+srv:// URI in DNS when the settings are validated",
    "auth_source": "member connections use the URI's authSource, else its database",
    "fork": "a client counts as connected once it knows a server (MongoClient.nodes)",
    "retries": "each check-out timeout counts as an operation that timed out: a read that "
    "pymongo retries counts two",
}
CHECK_IDS = {
    "pool_hooks": "django_mongopool.W010",
    "sessions": "django_mongopool.W011",
    "uri": "django_mongopool.W012",
    "auth_source": "django_mongopool.W013",
    "fork": "django_mongopool.W014",
    "retries": "django_mongopool.W015",
    "fleet_budget": "django_mongopool.E010",  # only when MONGOPOOL_FLEET_BUDGET is set
}


@dataclass(frozen=True)
class Problem:
    """One internal that is not what the package was written for."""

    name: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.name}: expected {self.expected}, found {self.found}"


@dataclass(frozen=True)
class Feature:
    key: str
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def promise(self) -> str:
        return PROMISES[self.key]

    @property
    def fallback(self) -> str:
        return FALLBACKS[self.key]

    def summary(self) -> str:
        return "; ".join(str(problem) for problem in self.problems)


@dataclass(frozen=True)
class Status:
    """The result of :func:`verify`: one :class:`Feature` per key of :data:`PROMISES`."""

    pymongo_version: str
    features: tuple[Feature, ...]

    def feature(self, key: str) -> Feature:
        for feature in self.features:
            if feature.key == key:
                return feature
        raise KeyError(key)

    def ok(self, key: str) -> bool:
        return self.feature(key).ok

    @property
    def failed(self) -> tuple[Feature, ...]:
        return tuple(feature for feature in self.features if not feature.ok)


# The checks: each appends Problems to a list.
Problems = list[Problem]


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (missing)"
    return type(value).__name__ if not isinstance(value, type) else f"class {value.__name__}"


def _parameters(func: Any) -> tuple[str, ...] | None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    prefix: dict[Any, str] = {
        inspect.Parameter.VAR_POSITIONAL: "*",
        inspect.Parameter.VAR_KEYWORD: "**",
    }
    return tuple(prefix.get(p.kind, "") + p.name for p in signature.parameters.values())


def _signature(problems: Problems, name: str, owner: Any, attribute: str, *params: str) -> None:
    """``owner.attribute`` is a function whose parameters are exactly ``params``."""
    expected = f"a function ({', '.join(params)})"
    func = getattr(owner, attribute, None) if owner is not None else None
    if not callable(func):
        problems.append(Problem(name, expected, _shown(func)))
        return
    found = _parameters(func)
    if found != params:
        shown = "no readable signature" if found is None else f"({', '.join(found)})"
        problems.append(Problem(name, expected, shown))


def _coroutine(problems: Problems, name: str, owner: Any, attribute: str, wanted: bool) -> None:
    func = getattr(owner, attribute, None)
    if func is not None and inspect.iscoroutinefunction(func) != wanted:
        kind = "a coroutine function" if wanted else "a plain function"
        problems.append(Problem(name, kind, "the other kind"))


def _attribute(problems: Problems, name: str, obj: Any, attribute: str, kind: Any) -> Any:
    """``obj.attribute`` exists and is a ``kind``; returns it (None when it is not)."""
    value = getattr(obj, attribute, None)
    if not isinstance(value, kind):
        wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        problems.append(Problem(name, f"an attribute holding a {wanted}", _shown(value)))
        return None
    return value


def _slots(cls: Any) -> set[str]:
    found: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        slots = klass.__dict__.get("__slots__", ())
        found.update((slots,) if isinstance(slots, str) else slots)
    return found


class _Probe:
    """Throw-away objects to look at (never connected, no I/O), made once per verify()."""

    def __init__(self) -> None:
        self.marker = _probe_pool_factory
        self.errors: dict[str, str] = {}
        options: dict[str, Any] = {"connect": False, POOL_CLASS_OPTION: self.marker}
        uri = "mongodb://probe:probe@127.0.0.1:27017/probe_db?appname=probe"
        self.client = self._make("MongoClient", _ProbeClient, uri, **options)
        self.async_client = self._make("AsyncMongoClient", _ProbeAsyncClient, uri, **options)
        self.pools = {
            False: self._make("sync Pool", _probe_pool, SyncPool),
            True: self._make("async Pool", _probe_pool, AsyncPool),
        }

    def _make(self, what: str, make: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return make(*args, **kwargs)
        except Exception as exc:
            self.errors[what] = f"{type(exc).__name__}: {exc}"
            return None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        pool = self.pools[False]
        if pool is not None and callable(getattr(pool, "close", None)):
            pool.close()


def _probe_pool(cls: Any) -> Any:
    return cls(("127.0.0.1", 27017), PoolOptions(), False, None)


class _ProbeClient(MongoClient):  # type: ignore[type-arg]
    mongopool_own_client = True  # not a stray client


class _ProbeAsyncClient(AsyncMongoClient):  # type: ignore[type-arg]
    mongopool_own_client = True


def _probe_pool_factory(*args: Any, **kwargs: Any) -> Any:  # never called: nothing connects
    raise AssertionError("the verify() probe client never makes a pool")


def _check_pool_hooks(probe: _Probe) -> Problems:
    problems: Problems = []
    telemetry = "pymongo._telemetry._CmapTelemetry"
    if not isinstance(CmapTelemetry, type):
        problems.append(Problem(telemetry, "a class", _shown(CmapTelemetry)))
    else:
        slots = CmapTelemetry.__dict__.get("__slots__")
        if not isinstance(slots, tuple) or not all(isinstance(s, str) for s in slots):
            problems.append(Problem(f"{telemetry}.__slots__", "a tuple of names", _shown(slots)))
        for method, params in (
            ("connection_created", ("self", "conn_id")),
            ("connection_closed", ("self", "conn_id", "reason")),
            ("checkout_failed", ("self", "reason", "error", "start")),
            ("pool_cleared", ("self", "service_id", "interrupt_connections")),
        ):
            _signature(problems, f"{telemetry}.{method}", CmapTelemetry, method, *params)
    for is_async, cls in ((False, SyncPool), (True, AsyncPool)):
        where = f"pymongo.{'asynchronous' if is_async else 'synchronous'}.pool.Pool"
        if not isinstance(cls, type):
            problems.append(Problem(where, "a class", _shown(cls)))
            continue
        _signature(
            problems, f"{where}.__init__", cls, "__init__", "self", "address", "options",
            "is_sdam", "client_id",
        )  # fmt: skip
        _signature(
            problems, f"{where}._get_conn", cls, "_get_conn", "self", "checkout_started_time",
            "handler",
        )  # fmt: skip
        _signature(problems, f"{where}.connect", cls, "connect", "self", "handler")
        _coroutine(problems, f"{where}._get_conn", cls, "_get_conn", is_async)
        _coroutine(problems, f"{where}.connect", cls, "connect", is_async)
        pool = probe.pools[is_async]
        if pool is None:
            found = probe.errors.get(f"{'async' if is_async else 'sync'} Pool", "not built")
            problems.append(Problem(f"{where}(address, options, False, None)", "a pool", found))
            continue
        if CmapTelemetry is not None:
            _attribute(problems, f"{where}()._telemetry", pool, "_telemetry", CmapTelemetry)
            if hasattr(getattr(pool, "_telemetry", None), "__dict__"):
                problems.append(
                    Problem(f"{where}()._telemetry", "only slotted attributes", "a __dict__")
                )
        _attribute(problems, f"{where}().active_sockets", pool, "active_sockets", int)
        _attribute(problems, f"{where}().conns", pool, "conns", Sized)
        _attribute(problems, f"{where}().closed", pool, "closed", bool)
        _attribute(problems, f"{where}().address", pool, "address", tuple)
        condition = getattr(pool, "size_cond", None)
        try:
            _counting_condition_class(type(condition), is_async)(pool.lock, None)
        except Exception as exc:
            problems.append(
                Problem(
                    f"{where}().size_cond",
                    "a condition that can be remade on pool.lock",
                    f"{_shown(condition)} ({type(exc).__name__})",
                )
            )
    settings = getattr(getattr(probe.client, "_topology", None), "_settings", None)
    if getattr(settings, "pool_class", None) is not probe.marker:
        found = probe.errors.get("MongoClient", "the option ignored")
        problems.append(Problem(f"MongoClient({POOL_CLASS_OPTION}=...)", "accepted", found))
    settings = getattr(getattr(probe.async_client, "_topology", None), "_settings", None)
    if getattr(settings, "pool_class", None) is not probe.marker:
        found = probe.errors.get("AsyncMongoClient", "the option ignored")
        problems.append(Problem(f"AsyncMongoClient({POOL_CLASS_OPTION}=...)", "accepted", found))
    return problems


def _check_sessions(probe: _Probe) -> Problems:
    problems: Problems = []
    empty = "pymongo.client_session_shared._EmptyServerSession"
    try:
        EmptyServerSession()
    except Exception:
        problems.append(
            Problem(empty, "a class made without arguments", _shown(EmptyServerSession))
        )
    for cls in (ClientSession, AsyncClientSession):
        where = f"{cls.__module__}.{cls.__name__}"
        _signature(
            problems, f"{where}.__init__", cls, "__init__", "self", "client", "server_session",
            "options", "implicit",
        )  # fmt: skip
        _signature(
            problems, f"{where}._materialize", cls, "_materialize", "self",
            "logical_session_timeout_minutes",
        )  # fmt: skip
        _signature(problems, f"{where}._end_session", cls, "_end_session", "self", "lock")
        _coroutine(problems, f"{where}._materialize", cls, "_materialize", False)
        _coroutine(
            problems, f"{where}._end_session", cls, "_end_session", cls is AsyncClientSession
        )
    for client_class in (MongoClient, AsyncMongoClient):
        _signature(
            problems, f"{client_class.__name__}._start_session", client_class, "_start_session",
            "self", "implicit", "**kwargs",
        )  # fmt: skip
    if not problems and probe.client is not None:
        server_session = EmptyServerSession()
        try:
            session = ClientSession(probe.client, server_session, SessionOptions(), False)
        except Exception as exc:
            problems.append(Problem("ClientSession(...)", "a session", type(exc).__name__))
        else:
            if getattr(session, "_server_session", None) is not server_session:
                problems.append(
                    Problem("ClientSession()._server_session", "the server session", "other")
                )
    return problems


def _check_fleet_budget(probe: _Probe) -> Problems:
    problems: Problems = []
    topology = _attribute(problems, "MongoClient()._topology", probe.client, "_topology", object)
    if topology is not None:
        _attribute(problems, "MongoClient()._topology._servers", topology, "_servers", dict)
    for cls, name in ((SyncServer, "synchronous"), (AsyncServer, "asynchronous")):
        where = f"pymongo.{name}.server.Server.pool"
        if not isinstance(cls, type) or not isinstance(
            inspect.getattr_static(cls, "pool", None), property
        ):
            problems.append(Problem(where, "a property", _shown(getattr(cls, "pool", None))))
    for is_async, cls in ((False, SyncConnection), (True, AsyncConnection)):
        where = f"pymongo.{'asynchronous' if is_async else 'synchronous'}.pool"
        _signature(problems, f"{where}.Connection.close_conn", cls, "close_conn", "self", "reason")
        pool = probe.pools[is_async]
        if pool is None:
            problems.append(Problem(f"{where}.Pool()", "a pool", "not built"))
            continue
        size = _attribute(problems, f"{where}.Pool().max_pool_size", pool, "max_pool_size", int)
        if size is not None:
            try:
                pool.max_pool_size = size  # writable
            except Exception as exc:
                problems.append(
                    Problem(f"{where}.Pool().max_pool_size", "writable", type(exc).__name__)
                )
        condition = getattr(pool, "size_cond", None)
        needed = ("notify_all",) if is_async else ("notify_all", "__enter__", "__exit__")
        if not all(hasattr(condition, name) for name in needed):
            problems.append(Problem(f"{where}.Pool().size_cond", "a condition", _shown(condition)))
        _attribute(problems, f"{where}.Pool().active_sockets", pool, "active_sockets", int)
        conns = getattr(pool, "conns", None)
        if not (isinstance(conns, Sized) and callable(getattr(conns, "pop", None))):
            problems.append(Problem(f"{where}.Pool().conns", "a deque", _shown(conns)))
        if not is_async and not hasattr(getattr(pool, "lock", None), "__enter__"):
            problems.append(Problem(f"{where}.Pool().lock", "a lock", _shown(pool.lock)))
    return problems


def _check_uri() -> Problems:
    problems: Problems = []
    name = "pymongo.uri_parser_shared._validate_uri"
    _signature(
        problems, name, sys.modules[__name__], "validate_uri_internal", "uri", "default_port",
        "validate", "warn", "normalize", "srv_max_hosts",
    )  # fmt: skip
    if problems:
        return problems
    try:
        parsed = validate_uri_internal(
            "mongodb://u:p@h1:1,h2/db?appname=a", validate=True, warn=False, normalize=True
        )
    except Exception as exc:
        return [Problem(f"{name}(...)", "a parsed URI", type(exc).__name__)]
    expected = {"nodelist": [("h1", 1), ("h2", 27017)], "username": "u", "password": "p"}
    if not isinstance(parsed, dict) or any(parsed.get(k) != v for k, v in expected.items()):
        problems.append(Problem(f"{name}(...)", "nodelist, username, password, ...", "other keys"))
    elif parsed.get("database") != "db" or not hasattr(parsed.get("options"), "get"):
        problems.append(Problem(f"{name}(...)", "database and options", "other keys"))
    return problems


def _check_auth_source(probe: _Probe) -> Problems:
    options = getattr(getattr(probe.client, "options", None), "pool_options", None)
    credentials = getattr(options, "_credentials", None)
    if (
        getattr(credentials, "source", None) != "probe_db"
        or getattr(credentials, "username", None) != "probe"
    ):
        return [
            Problem(
                "MongoClient().options.pool_options._credentials",
                "credentials with .source and .username",
                _shown(credentials),
            )
        ]
    return []


def _check_fork(probe: _Probe) -> Problems:
    if probe.client is None:
        return [Problem("MongoClient(...)", "a client", probe.errors.get("MongoClient", "none"))]
    if getattr(probe.client, "_opened", None) is not False:
        return [Problem("MongoClient()._opened", "False before the first operation", "other")]
    return []


def _check_retries() -> Problems:
    problems: Problems = []
    for cls, name in ((SyncRetryable, "synchronous"), (AsyncRetryable, "asynchronous")):
        where = f"pymongo.{name}.mongo_client._ClientConnectionRetryable"
        if not isinstance(cls, type):
            problems.append(Problem(where, "a class", _shown(cls)))
            continue
        _signature(problems, f"{where}.run", cls, "run", "self")
        missing = {"_retrying", "_last_error"} - _slots(cls) - set(dir(cls))
        if missing and not _has_instance_dict(cls):
            problems.append(Problem(where, "slots _retrying and _last_error", "no such slots"))
    return problems


def _has_instance_dict(cls: type) -> bool:
    return any("__slots__" not in klass.__dict__ for klass in cls.__mro__[:-1])


# The verified state, and the hooks turned on from it.
_lock = threading.RLock()
_status: Status | None = None
_session_classes: list[tuple[type, bool]] = []  # sessions.py's counted classes
_client_classes: list[tuple[type, bool]] = []  # the app's client classes
_run_codes: frozenset[Any] = frozenset()  # _ClientConnectionRetryable.run's code objects
sessions_hooked = False  # read on the request path


@forks.in_child
def _fresh_lock_in_child() -> None:
    """In a forked child: the lock may have been held by another thread at fork time."""
    global _lock
    _lock = threading.RLock()


def verify(refresh: bool = False) -> Status:
    """Check every internal this package uses (cached); turn on the hooks that passed.

    No network I/O: a client built with ``connect=False`` and pools that never connect are
    looked at, then dropped. ``refresh`` checks again (tests that play a moved internal).
    """
    global _status
    with _lock:
        if _status is not None and not refresh:
            return _status
        probe = _Probe()
        try:
            status = Status(
                pymongo_version=pymongo.version,
                features=(
                    Feature("pool_hooks", tuple(_check_pool_hooks(probe))),
                    Feature("sessions", tuple(_check_sessions(probe))),
                    Feature("fleet_budget", tuple(_check_fleet_budget(probe))),
                    Feature("uri", tuple(_check_uri())),
                    Feature("auth_source", tuple(_check_auth_source(probe))),
                    Feature("fork", tuple(_check_fork(probe))),
                    Feature("retries", tuple(_check_retries())),
                ),
            )
        finally:
            probe.close()
        _status = status
        _apply(status)
        return status


def status() -> Status:
    """The cached result of :func:`verify` (verified now if it has not run yet)."""
    return _status if _status is not None else verify()


def _apply(status: Status) -> None:
    global _run_codes
    for cls, is_async in _session_classes:
        _hook_session_class(cls, is_async, status.ok("sessions"))
    for cls, is_async in _client_classes:
        _hook_client_class(cls, is_async, status.ok("sessions"))
    _set_sessions_hooked(status.ok("sessions"))
    _run_codes = (
        frozenset(cls.run.__code__ for cls in (SyncRetryable, AsyncRetryable))
        if status.ok("retries")
        else frozenset()
    )


def _set_sessions_hooked(value: bool) -> None:
    global sessions_hooked
    sessions_hooked = value


# Sessions: counted by hooks on pymongo's _materialize / _end_session, installed by verify().
def register_session_class(cls: type, is_async: bool) -> None:
    """``cls`` (a ``ClientSession`` subclass with ``_mongopool_counters``) counts its sessions
    once :func:`verify` has passed the sessions' internals."""
    with _lock:
        _session_classes.append((cls, is_async))
        if _status is not None:
            _hook_session_class(cls, is_async, _status.ok("sessions"))


def register_client_class(cls: type, is_async: bool) -> None:
    """``cls`` (the app's client) hands explicit sessions to ``cls._mongopool_explicit_session``
    once :func:`verify` has passed the sessions' internals."""
    with _lock:
        _client_classes.append((cls, is_async))
        if _status is not None:
            _hook_client_class(cls, is_async, _status.ok("sessions"))


def _unhook(cls: type, *names: str) -> None:
    for name in names:
        if name in cls.__dict__:
            delattr(cls, name)


def ran_a_command(session: Any) -> bool:
    """True when ``session`` has a server session (it ran a command) and has not ended."""
    server_session = session._server_session  # None once ended, empty until it ran a command
    return server_session is not None and not isinstance(server_session, EmptyServerSession)


def _hook_session_class(cls: type, is_async: bool, ok: bool) -> None:
    if not ok:
        _unhook(cls, "_materialize", "_end_session")
        return
    base: Any = AsyncClientSession if is_async else ClientSession
    materialize = base._materialize
    empty = EmptyServerSession

    # Runs for every command on the session: one frame, pymongo's own method called directly.
    def _materialize(self: Any, logical_session_timeout_minutes: int | None = None) -> None:
        if isinstance(self._server_session, empty):
            materialize(self, logical_session_timeout_minutes)
            next(self._mongopool_counters.sessions_started)

    end = base._end_session
    if is_async:

        async def _end_session(self: Any, lock: bool) -> None:
            ran = ran_a_command(self)
            await end(self, lock)
            if ran:
                next(self._mongopool_counters.sessions_ended)

    else:

        def _end_session(self: Any, lock: bool) -> None:  # type: ignore[misc]
            ran = ran_a_command(self)
            end(self, lock)
            if ran:
                next(self._mongopool_counters.sessions_ended)

    cls._materialize = _materialize  # type: ignore[attr-defined]
    cls._end_session = _end_session  # type: ignore[attr-defined]


def _hook_client_class(cls: type, is_async: bool, ok: bool) -> None:
    if not ok:
        _unhook(cls, "_start_session")
        return
    start = (AsyncMongoClient if is_async else MongoClient)._start_session

    def _start_session(self: Any, implicit: bool, **kwargs: Any) -> Any:
        if implicit:  # pymongo's own per-operation sessions are not counted
            return start(self, implicit, **kwargs)
        return self._mongopool_explicit_session(kwargs)

    cls._start_session = _start_session  # type: ignore[attr-defined]


_DEFAULT_OPTIONS = SessionOptions()  # pymongo only reads a session's options: shared


def new_session(cls: type, client: Any, options: dict[str, Any]) -> Any:
    """A new explicit session of ``client`` (no I/O): a ``cls`` when the sessions' internals
    passed, else pymongo's own session from the public ``start_session()``."""
    if sessions_hooked:
        opts = SessionOptions(**options) if options else _DEFAULT_OPTIONS
        return cls(client, EmptyServerSession(), opts, False)
    return client.start_session(**options)


def build_session(session: Any, client: Any) -> None:
    """Give ``session`` (a ``ClientSession`` subclass made without ``__init__``) pymongo's state,
    as a session of ``client`` with the default options. Without the sessions' internals, the
    state of a session from the public ``client.start_session()`` is taken over."""
    if sessions_hooked:
        ClientSession.__init__(session, client, EmptyServerSession(), _DEFAULT_OPTIONS, False)
    else:
        vars(session).update(vars(client.start_session()))


def mark_ended(session: Any) -> None:
    """End a just-built ``session`` whose request ended meanwhile (no I/O)."""
    if sessions_hooked:
        session._server_session = None  # pymongo's "ended"; it never ran a command
    else:
        session.end_session()


# Pool figures: pymongo's pool with hooks, passed to the client as its pool factory.
def pool_factory(metrics: Any, is_async: bool) -> Callable[..., Any]:
    """A pool factory for the client's ``_pool_class`` option: counting pools feeding
    ``metrics`` (its ``attach(pool, address)`` gives the pool's counters) for the connections requests
    use, pymongo's own pool for the monitors' connections (``is_sdam``)."""
    base = AsyncPool if is_async else SyncPool
    counting_base = _counting_pool_class(base, is_async)
    counting = type(counting_base.__name__, (counting_base,), {"mongopool_metrics": metrics})

    def make_pool(address: Any, options: Any, is_sdam: bool = False, client_id: Any = None) -> Any:
        return (base if is_sdam else counting)(address, options, is_sdam, client_id)

    return make_pool


def client_options(factory: Callable[..., Any]) -> dict[str, Any]:
    """The keyword that gives a client ``factory`` as its pool factory."""
    return {POOL_CLASS_OPTION: factory}


_classes: dict[Any, type] = {}


def _counting_telemetry_class() -> type:
    key = ("telemetry", CmapTelemetry)
    cls = _classes.get(key)
    if cls is not None:
        return cls

    class CountingTelemetry(CmapTelemetry):  # type: ignore[misc]
        """pymongo's per-pool telemetry, counting the rare events first."""

        __slots__ = ("_mongopool",)

        def connection_created(self, conn_id: int) -> None:
            self._mongopool.owner.connection_created(self._mongopool)
            super().connection_created(conn_id)

        def connection_closed(self, conn_id: int, reason: str) -> None:
            self._mongopool.owner.connection_closed(self._mongopool, reason)
            super().connection_closed(conn_id, reason)

        def checkout_failed(self, reason: str, error: str, start: float) -> None:
            # pymongo passes the message first and the CMAP reason ("timeout", ...) second.
            retry = error == "timeout" and retried_checkout_timeout()
            self._mongopool.owner.checkout_failed(self._mongopool, error, retry)
            super().checkout_failed(reason, error, start)

        def pool_cleared(self, service_id: Any, interrupt_connections: bool) -> None:
            self._mongopool.owner.pool_cleared(self._mongopool)
            super().pool_cleared(service_id, interrupt_connections)

    _classes[key] = CountingTelemetry
    return CountingTelemetry


def _counting_telemetry(original: Any, counters: Any) -> Any:
    cls: Any = _counting_telemetry_class()
    telemetry = cls.__new__(cls)
    for name in CmapTelemetry.__slots__:
        setattr(telemetry, name, getattr(original, name))
    telemetry._mongopool = counters
    return telemetry


def _counting_condition_class(base: type, is_async: bool) -> type:
    """The pool's ``size_cond``, counting the check-outs waiting on it: they wait because the
    pool is full (every connection in use or being opened), which is what "waiting" means."""
    key = ("condition", base, is_async)
    cls = _classes.get(key)
    if cls is not None:
        return cls
    if is_async:

        class CountingAsyncCondition(base):  # type: ignore[misc]
            def __init__(self, lock: Any, counters: Any) -> None:
                super().__init__(lock)
                self._mongopool = counters

            async def wait(self) -> Any:
                counters = self._mongopool
                next(counters.waiting_started)
                try:
                    return await super().wait()
                finally:
                    next(counters.waiting_ended)

        cls = CountingAsyncCondition
    else:

        class CountingCondition(base):  # type: ignore[misc]
            def __init__(self, lock: Any, counters: Any) -> None:
                super().__init__(lock)
                self._mongopool = counters

            def wait(self, timeout: float | None = None) -> Any:
                counters = self._mongopool
                next(counters.waiting_started)
                try:
                    return super().wait(timeout)
                finally:
                    next(counters.waiting_ended)

        cls = CountingCondition
    _classes[key] = cls
    return cls


def _counting_pool_class(base: Any, is_async: bool) -> type:
    """pymongo's ``Pool`` (``base``) counting its check-outs, waits and connections being opened.

    ``_get_conn`` (the step of every check-out that hands out a connection) counts the
    check-out and records its time; ``connect`` (opening a new
    connection, inside a check-out or to keep minPoolSize) counts as "connecting"; the waits on
    ``size_cond`` count as "waiting"; the pool's telemetry counts the rare events. pymongo's own
    methods are called directly, not through super(): they run for every operation.
    """
    key = ("pool", base, is_async)
    cls = _classes.get(key)
    if cls is not None:
        return cls

    def __init__(
        self: Any, address: Any, options: Any, is_sdam: bool = False, client_id: Any = None
    ) -> None:
        base.__init__(self, address, options, is_sdam, client_id)
        counters = self.mongopool_metrics.attach(self, self.address)
        self._telemetry = _counting_telemetry(self._telemetry, counters)
        self.size_cond = _counting_condition_class(type(self.size_cond), is_async)(
            self.lock, counters
        )
        self._mongopool = counters

    if is_async:

        async def _get_conn(self: Any, checkout_started_time: float, handler: Any = None) -> Any:
            conn = await base._get_conn(self, checkout_started_time, handler)
            self._mongopool.checked_out_now(
                monotonic() - checkout_started_time, self.active_sockets
            )
            return conn

        async def _connect(self: Any, handler: Any = None) -> Any:
            counters = self._mongopool
            next(counters.connect_started)
            try:
                return await base.connect(self, handler)
            finally:
                next(counters.connect_ended)

    else:

        def _get_conn(self: Any, checkout_started_time: float, handler: Any = None) -> Any:  # type: ignore[misc]
            conn = base._get_conn(self, checkout_started_time, handler)
            self._mongopool.checked_out_now(
                monotonic() - checkout_started_time, self.active_sockets
            )
            return conn

        def _connect(self: Any, handler: Any = None) -> Any:  # type: ignore[misc]
            counters = self._mongopool
            next(counters.connect_started)
            try:
                return base.connect(self, handler)
            finally:
                next(counters.connect_ended)

    name = "CountingAsyncPool" if is_async else "CountingPool"
    cls = type(name, (base,), {"__init__": __init__, "_get_conn": _get_conn, "connect": _connect})
    _classes[key] = cls
    return cls


def idle_connections(pool: Any) -> tuple[Any, int] | None:
    """(address, idle connections) of a counting pool, or None once it is closed."""
    if pool.closed:
        return None
    return pool.address, len(pool.conns)


def retried_checkout_timeout() -> bool:
    """Called while a check-out is failing for want of a free connection: True when it is
    pymongo retrying an operation whose previous attempt failed the same way (a retryable
    read), so the operation is counted once. Found on the retry loop's own frame; only on this
    rare path."""
    codes = _run_codes
    if not codes:
        return False
    frame = sys._getframe(1)
    for _ in range(64):
        if frame is None:
            return False
        if frame.f_code in codes:
            retryable = frame.f_locals.get("self")
            return bool(getattr(retryable, "_retrying", False)) and isinstance(
                getattr(retryable, "_last_error", None), WaitQueueTimeoutError
            )
        frame = frame.f_back  # type: ignore[assignment]
    return False


# The fleet budget: resizing and trimming pymongo's pools.
def client_pools(client: Any) -> list[Any]:
    """pymongo's pool objects of one client (one per known server); empty before it connects."""
    servers = client._topology._servers
    return [server.pool for server in list(servers.values())]


def set_pool_limit(pool: Any, limit: int, is_sync: bool) -> None:
    """Let ``pool`` hold ``limit`` connections; wake its waiters when that grows (sync pools)."""
    if is_sync:
        with pool.size_cond:
            grew = limit > pool.max_pool_size
            pool.max_pool_size = limit
            if grew:
                pool.size_cond.notify_all()
    else:
        # An asyncio condition cannot be notified from this thread: waiters re-check
        # on the next check-in, or give up after waitQueueTimeoutMS.
        pool.max_pool_size = limit


def trim_idle(pool: Any, reason: str) -> int:
    """Close idle connections of a sync ``pool`` above its limit; return how many."""
    extra = []
    with pool.lock:
        while pool.conns and len(pool.conns) + pool.active_sockets > pool.max_pool_size:
            extra.append(pool.conns.pop())
    for conn in extra:
        conn.close_conn(reason)
    return len(extra)


# URIs, credentials, fork state.
def parse_uri(uri: str) -> dict[str, Any]:
    """``uri`` parsed and validated by pymongo (nodelist, username, password, database,
    options), without a DNS lookup; with the public ``parse_uri`` when that is not possible."""
    if status().ok("uri"):
        return validate_uri_internal(uri, validate=True, warn=False, normalize=True)  # type: ignore[no-any-return]
    return public_parse_uri(uri, validate=True, warn=False, normalize=True)


def as_written(options: Any) -> dict[str, Any]:
    """The options ``split_options`` returned, keyed as the URI spells them (``appName``) when
    pymongo's case-insensitive dictionary still says how (``cased_key``), else lower-cased."""
    cased = getattr(options, "cased_key", None)
    if not callable(cased):
        return dict(options.items())
    return {cased(key): value for key, value in options.items()}


def auth_source(client: Any, parsed_uri: dict[str, Any]) -> str | None:
    """Where the app's ``client`` authenticates (None without credentials)."""
    if status().ok("auth_source"):
        credentials = getattr(client.options.pool_options, "_credentials", None)
        source = getattr(credentials, "source", None)
        return (
            source if isinstance(source, str) and getattr(credentials, "username", None) else None
        )
    if not parsed_uri.get("username"):
        return None
    options = parsed_uri.get("options") or {}
    source = options.get("authsource") or options.get("authSource") or parsed_uri.get("database")
    return source if isinstance(source, str) else None


def client_opened(client: Any) -> bool:
    """True once ``client`` has started connecting (its monitors and sockets exist)."""
    if status().ok("fork"):
        return bool(getattr(client, "_opened", False))
    return bool(client.nodes)
