"""The one source of every ``MONGOPOOL_*`` setting: its default, its validation, its type.

Values are read from ``django.conf.settings`` on first use, validated, cached,
and dropped from the cache on Django's ``setting_changed`` signal (so
``override_settings`` works and nothing is read at import time). The settings
that shape the ``MongoClient`` (:data:`CLIENT_SETTINGS`) are validated together
by :func:`django_mongopool.client.options.build_config`; changing any other setting
never rebuilds the client.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_mongopool.client.options import ClientConfig, build_config
from django_mongopool.guards import forks

Mode = Literal["off", "warn", "raise"]
MODES: tuple[Mode, ...] = ("off", "warn", "raise")

_DB_NAME = re.compile(r'^[^/\\. "$*<>:|?\x00]{1,63}$')
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,119}$")


def _number(name: str, low: float, high: float, *, integer: bool) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
            what = "an integer" if integer else "a number"
            raise ImproperlyConfigured(
                f"{name} must be {what} from {low:g} to {high:g}, got {value!r}."
            )
        return value

    return validate


def _optional(validate: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else validate(value)


def _heartbeat_seconds(value: Any) -> float:
    if value == 0 and not isinstance(value, bool):
        return 0
    return cast(float, _number("MONGOPOOL_HEARTBEAT_SECONDS", 1, 3600, integer=False)(value))


def _collection_name(value: Any) -> str:
    if not isinstance(value, str) or not _COLLECTION_NAME.match(value):
        raise ImproperlyConfigured(
            "MONGOPOOL_HEARTBEAT_COLLECTION must be a collection name: letters, digits, _ . -, "
            f"starting with a letter or _ (got {value!r})."
        )
    return value


def _database(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not _DB_NAME.match(value)):
        raise ImproperlyConfigured(
            "MONGOPOOL_DATABASE must be a MongoDB database name: 1 to 63 characters, none of "
            f'/\\. "$*<>:|? (got {value!r}).'
        )
    return value


def _boolean(name: str) -> Callable[[Any], bool]:
    def validate(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ImproperlyConfigured(f"{name} must be True or False, not {value!r}.")
        return value

    return validate


def _mode(name: str) -> Callable[[Any], Mode]:
    def validate(value: Any) -> Mode:
        if value not in MODES:
            raise ImproperlyConfigured(f"{name} must be 'off', 'warn' or 'raise', not {value!r}.")
        return cast(Mode, value)

    return validate


def _module_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value or ()):
        raise ImproperlyConfigured(
            "MONGOPOOL_ALLOWED_CLIENT_MODULES must be a list of module names "
            f"(e.g. ['myproject.migrations']), not {value!r}."
        )
    return tuple(value or ())


def _metrics_token(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) < 16):
        raise ImproperlyConfigured(
            "MONGOPOOL_METRICS_TOKEN must be None or a string of at least 16 characters "
            "(a random secret sent as 'Authorization: Bearer <token>')."
        )
    return value


def _heartbeat_key(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) < 32):
        raise ImproperlyConfigured(
            "MONGOPOOL_HEARTBEAT_KEY must be None (heartbeats signed with a key derived from "
            "SECRET_KEY) or a random secret string of at least 32 characters."
        )
    return value


def _as_is(value: Any) -> Any:
    return value  # validated together with the other client settings by options.build_config


@dataclass(frozen=True)
class Setting:
    """One ``MONGOPOOL_*`` setting. ``doc`` and ``default_doc`` are what the documentation's
    settings page shows (docs/_ext/mongopool_settings.py renders this registry; Markdown)."""

    name: str
    default: Any
    validate: Callable[[Any], Any]
    client: bool = False  # True: part of the MongoClient's configuration
    doc: str = ""  # what it does and the values allowed
    default_doc: str = ""  # the default in words, where its repr says too little


SETTINGS: Mapping[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "MONGOPOOL_URI",
            None,
            _as_is,
            client=True,
            default_doc="none (check E001)",
            doc="`mongodb://[user:password@]host[:port][,host...][/database][?options]` or "
            "`mongodb+srv://...`",
        ),
        Setting(
            "MONGOPOOL_CLIENT_OPTIONS",
            {},
            _as_is,
            client=True,
            doc="a dict of pymongo `MongoClient` options; overrides the URI's options "
            "(see [client option defaults](#client-option-defaults))",
        ),
        Setting(
            "MONGOPOOL_COMMAND_METRICS",
            False,
            _boolean("MONGOPOOL_COMMAND_METRICS"),
            client=True,
            doc="`True` adds a command listener counting succeeded/failed commands; off by "
            "default because pymongo then builds two event objects per command, which cost "
            "throughput",
        ),
        Setting(
            "MONGOPOOL_FLEET_BUDGET",
            None,
            _optional(_number("MONGOPOOL_FLEET_BUDGET", 1, 10_000_000, integer=True)),
            client=True,  # with a budget the client starts at the minimum share
            default_doc="`None` (no budget)",
            doc="an integer from 1 to 10000000: connections per server that all live processes "
            "of the deployment may hold together, monitors included; see "
            "[Fleet budget](fleet-budget.md)",
        ),
        Setting(
            "MONGOPOOL_FLEET_MIN_SHARE",
            1,
            _number("MONGOPOOL_FLEET_MIN_SHARE", 1, 10_000, integer=True),
            client=True,
            doc="an integer from 1 to 10000: pooled connections per server a process uses "
            "before it has seen the fleet (and while the heartbeats cannot be read and no share "
            "is known)",
        ),
        Setting(
            "MONGOPOOL_DATABASE",
            None,
            _database,
            default_doc="the URI's `/database`",
            doc='a MongoDB database name (1 to 63 characters, none of `/\\. "$*<>:|?`); '
            "used by `get_database()` and for the heartbeats. With neither (a URI without "
            "`/database`, as `ferretdb serve --url-file` writes), check W020 (E020 with "
            "heartbeats on) says so and `get_database()` without a name raises "
            "`ImproperlyConfigured` naming both settings; the page, its JSON, `/metrics` and "
            "`mongo_connections` still work",
        ),
        Setting(
            "MONGOPOOL_RETRY_AFTER",
            5,
            _number("MONGOPOOL_RETRY_AFTER", 1, 3600, integer=True),
            doc="an integer from 1 to 3600: seconds sent in the 503's `Retry-After` (and the "
            "first backoff of a Celery task's retry)",
        ),
        Setting(
            "MONGOPOOL_TRANSACTION_TIMEOUT",
            10,
            _number("MONGOPOOL_TRANSACTION_TIMEOUT", 0.1, 600, integer=False),
            doc="a number from 0.1 to 600: seconds a transaction with its retries may take",
        ),
        Setting(
            "MONGOPOOL_PROCESSES",
            1,
            _number("MONGOPOOL_PROCESSES", 1, 100_000, integer=True),
            doc="an integer from 1 to 100000: processes the deployment runs in all, for the "
            "connection budget (the audit's default `--processes`, checks E005 and E006)",
        ),
        Setting(
            "MONGOPOOL_SERVER_MAX_CONNECTIONS",
            None,
            _optional(_number("MONGOPOOL_SERVER_MAX_CONNECTIONS", 1, 10_000_000, integer=True)),
            doc="an integer from 1 to 10000000: what the server accepts (mongod's "
            "`net.maxIncomingConnections`), when serverStatus cannot tell",
        ),
        Setting(
            "MONGOPOOL_HEARTBEAT_SECONDS",
            0,
            _heartbeat_seconds,
            default_doc="`0` (off)",
            doc="a number from 1 to 3600, or 0 for off: how often each process of the fleet "
            "(web processes, task workers, commands in `join_fleet()`) publishes its pool state",
        ),
        Setting(
            "MONGOPOOL_HEARTBEAT_COLLECTION",
            "mongopool_heartbeats",
            _collection_name,
            doc="collection (in the default database) for the heartbeats: letters, digits, "
            "`_ . -`, starting with a letter or `_`",
        ),
        Setting(
            "MONGOPOOL_HEARTBEAT_KEY",
            None,
            _heartbeat_key,
            default_doc="`None` (derived from `SECRET_KEY`)",
            doc="a random secret of 32+ characters that signs the heartbeats instead of "
            "`SECRET_KEY` (the same in every process of the fleet); see "
            "[Security](security.md#heartbeats-cannot-be-forged)",
        ),
        Setting(
            "MONGOPOOL_HEARTBEAT_MAX_SECONDS",
            300,
            _number("MONGOPOOL_HEARTBEAT_MAX_SECONDS", 1, 3600, integer=False),
            doc="a number from 1 to 3600: the longest heartbeat interval a process believes of "
            "another process's beat (never less than its own `MONGOPOOL_HEARTBEAT_SECONDS`); "
            "set it to at least the longest interval in the fleet",
        ),
        Setting(
            "MONGOPOOL_METRICS_TOKEN",
            None,
            _metrics_token,
            doc="a secret of 16+ characters that lets a scraper read `metrics` with "
            "`Authorization: Bearer`",
        ),
        Setting(
            "MONGOPOOL_READINESS_TIMEOUT",
            1.0,
            _number("MONGOPOOL_READINESS_TIMEOUT", 0.05, 30, integer=False),
            doc="a number from 0.05 to 30: seconds the readiness probe waits for a ping",
        ),
        Setting(
            "MONGOPOOL_STRAY_CLIENTS",
            "warn",
            _mode("MONGOPOOL_STRAY_CLIENTS"),
            doc='`"off"`, `"warn"`, `"raise"`: report pymongo clients built outside the app '
            "(see [Stray clients](guards.md#stray-clients))",
        ),
        Setting(
            "MONGOPOOL_ALLOWED_CLIENT_MODULES",
            (),
            _module_list,
            doc="a list of module names allowed to build their own client (a name also "
            "covers its submodules)",
        ),
        Setting(
            "MONGOPOOL_LEAKED_SESSIONS",
            "warn",
            _mode("MONGOPOOL_LEAKED_SESSIONS"),
            doc='`"off"`, `"warn"`, `"raise"`: report sessions left open at the end of a '
            "request (see [Leaked sessions](guards.md#leaked-sessions))",
        ),
        Setting(
            "MONGOPOOL_TASK_INTEGRATION",
            True,
            _boolean("MONGOPOOL_TASK_INTEGRATION"),
            doc="`False` connects nothing to Celery or Django's tasks framework (no task scope, "
            "no retries on outages, workers join the fleet only through `join_fleet()`); see "
            "[Workers and commands](workers.md)",
        ),
        Setting(
            "MONGOPOOL_SERVER_STATUS_CACHE_SECONDS",
            5,
            _number("MONGOPOOL_SERVER_STATUS_CACHE_SECONDS", 0, 3600, integer=False),
            doc="a number from 0 to 3600: how long the page, its JSON and `/metrics` reuse the "
            "server section (topology and each member's `serverStatus`), shared by every "
            "request of the process; `0` measures on every request",
        ),
        Setting(
            "MONGOPOOL_AUDIT_DEADLINE",
            5,
            _number("MONGOPOOL_AUDIT_DEADLINE", 0.5, 300, integer=False),
            doc="a number from 0.5 to 300: seconds the page, its JSON and `/metrics` wait for "
            "the server's figures in all, however many members there are and however they "
            "answer; what has not answered by then is shown as such (see "
            "[The pool-health page](pool-page.md#the-audits-deadline))",
        ),
    )
}
CLIENT_SETTINGS = frozenset(name for name, s in SETTINGS.items() if s.client)
_CLIENT_CONFIG = "client_config"


class Conf:
    """Typed, validated, cached access to the settings (``conf.retry_after`` and so on)."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            pass
        setting = SETTINGS[name]
        value = setting.validate(getattr(settings, name, setting.default))
        self._cache[name] = value
        return value

    def raw(self, name: str) -> Any:
        """The setting as the user wrote it (not validated, not cached)."""
        return getattr(settings, name, SETTINGS[name].default)

    def clear(self, name: str | None = None) -> None:
        """Forget cached values: one setting (and the client config if it shapes it), or all."""
        with self._lock:
            if name is None:
                self._cache.clear()
                return
            self._cache.pop(name, None)
            if name in CLIENT_SETTINGS:
                self._cache.pop(_CLIENT_CONFIG, None)

    def validate_all(self) -> None:
        """Validate every setting now (``AppConfig.ready()`` and check E004)."""
        for name in SETTINGS:
            if name not in CLIENT_SETTINGS:
                self._get(name)
        if self.uri_is_set:
            _ = self.client_config

    @property
    def uri_is_set(self) -> bool:
        return bool(self.raw("MONGOPOOL_URI"))

    @property
    def client_config(self) -> ClientConfig:
        """The validated client configuration (URI, options, listeners). Raises ImproperlyConfigured."""
        try:
            return cast(ClientConfig, self._cache[_CLIENT_CONFIG])
        except KeyError:
            pass
        config = build_config(
            self.raw("MONGOPOOL_URI"),
            self.raw("MONGOPOOL_CLIENT_OPTIONS"),
            command_metrics=self._get("MONGOPOOL_COMMAND_METRICS"),
            starting_pool_size=(
                self._get("MONGOPOOL_FLEET_MIN_SHARE")
                if self._get("MONGOPOOL_FLEET_BUDGET") is not None
                else None
            ),
        )
        self._cache[_CLIENT_CONFIG] = config
        return config

    @property
    def database(self) -> str | None:
        """``MONGOPOOL_DATABASE``, else the URI's ``/database``."""
        explicit = cast("str | None", self._get("MONGOPOOL_DATABASE"))
        return explicit or self.client_config.uri_database

    @property
    def retry_after(self) -> int:
        return cast(int, self._get("MONGOPOOL_RETRY_AFTER"))

    @property
    def transaction_timeout(self) -> float:
        return float(self._get("MONGOPOOL_TRANSACTION_TIMEOUT"))

    @property
    def processes(self) -> int:
        return cast(int, self._get("MONGOPOOL_PROCESSES"))

    @property
    def server_max_connections(self) -> int | None:
        return cast("int | None", self._get("MONGOPOOL_SERVER_MAX_CONNECTIONS"))

    @property
    def heartbeat_seconds(self) -> float:
        return float(self._get("MONGOPOOL_HEARTBEAT_SECONDS"))

    @property
    def heartbeat_collection(self) -> str:
        return cast(str, self._get("MONGOPOOL_HEARTBEAT_COLLECTION"))

    @property
    def heartbeat_key(self) -> str | None:
        """The secret heartbeats are signed with (None: one derived from ``SECRET_KEY``)."""
        return cast("str | None", self._get("MONGOPOOL_HEARTBEAT_KEY"))

    @property
    def heartbeat_max_seconds(self) -> float:
        """The longest interval this process believes of another's heartbeat (never below its own)."""
        return max(float(self._get("MONGOPOOL_HEARTBEAT_MAX_SECONDS")), self.heartbeat_seconds)

    @property
    def metrics_token(self) -> str | None:
        return cast("str | None", self._get("MONGOPOOL_METRICS_TOKEN"))

    @property
    def fleet_budget(self) -> int | None:
        """Connections per server all live processes may hold together (None: no budget)."""
        return cast("int | None", self._get("MONGOPOOL_FLEET_BUDGET"))

    @property
    def fleet_min_share(self) -> int:
        """Pooled connections per server a process uses before it has seen the fleet."""
        return cast(int, self._get("MONGOPOOL_FLEET_MIN_SHARE"))

    @property
    def readiness_timeout(self) -> float:
        return float(self._get("MONGOPOOL_READINESS_TIMEOUT"))

    @property
    def stray_clients(self) -> Mode:
        return cast(Mode, self._get("MONGOPOOL_STRAY_CLIENTS"))

    @property
    def allowed_client_modules(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", self._get("MONGOPOOL_ALLOWED_CLIENT_MODULES"))

    @property
    def leaked_sessions(self) -> Mode:
        return cast(Mode, self._get("MONGOPOOL_LEAKED_SESSIONS"))

    @property
    def task_integration(self) -> bool:
        """False: Celery and Django's tasks framework run without the app's task scope."""
        return cast(bool, self._get("MONGOPOOL_TASK_INTEGRATION"))

    @property
    def audit_deadline(self) -> float:
        """Seconds the pool page, its JSON and /metrics wait for the server's figures in all."""
        return float(self._get("MONGOPOOL_AUDIT_DEADLINE"))

    @property
    def server_status_cache_seconds(self) -> float:
        """How long the page and /metrics reuse the server section of the report (0: never)."""
        return float(self._get("MONGOPOOL_SERVER_STATUS_CACHE_SECONDS"))

    def forget_after_fork(self) -> None:
        """In a forked child: the lock may have been held by another thread at fork time."""
        self._lock = threading.Lock()


conf = Conf()
forks.in_child(conf.forget_after_fork)
