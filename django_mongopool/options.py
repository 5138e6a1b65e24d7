"""Validate the ``MONGOPOOL_*`` settings into one immutable :class:`ClientConfig`.

Everything wrong is reported as ``ImproperlyConfigured`` naming the setting and
what is allowed. No message ever contains a password: every text that may echo
user input goes through :func:`django_mongopool.redact.scrub`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from django.core.exceptions import ImproperlyConfigured
from pymongo import common
from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser_shared import _validate_uri

from django_mongopool.conf import DEFAULT_CLIENT_OPTIONS, conf
from django_mongopool.redact import MASK, SECRET_OPTIONS, redact_uri, scrub, uri_secrets

URI_SETTING = "MONGOPOOL_URI"
OPTIONS_SETTING = "MONGOPOOL_CLIENT_OPTIONS"
DATABASE_SETTING = "MONGOPOOL_DATABASE"

MAX_POOL_SIZE_LIMIT = 10_000
MAX_TIMEOUT_MS = 3_600_000  # one hour: anything longer is a hung worker in practice
URI_FORM = "mongodb://[user:password@]host[:port][,host[:port]...][/database][?options] or mongodb+srv://[user:password@]host[/database][?options]"

# Options this app sets itself; a user value would break the guarantees.
RESERVED_OPTIONS = {"connect": "the client is always built with connect=False"}
# Integer options and their (minimum, maximum).
INT_RANGES = {
    "maxpoolsize": (1, MAX_POOL_SIZE_LIMIT),
    "minpoolsize": (0, MAX_POOL_SIZE_LIMIT),
    "maxconnecting": (1, MAX_POOL_SIZE_LIMIT),
}
# Millisecond options that must be a positive, bounded number.
POSITIVE_MS = {
    "waitqueuetimeoutms",
    "connecttimeoutms",
    "serverselectiontimeoutms",
    "maxidletimems",
}
# Millisecond options where None/0 means "no limit" (allowed, checked together below).
OPTIONAL_MS = {"sockettimeoutms", "timeoutms"}

_DB_NAME = re.compile(r'^[^/\\. "$*<>:|?\x00]{1,63}$')


@dataclass(frozen=True)
class ClientConfig:
    """The validated configuration of the process-wide client."""

    uri: str = field(repr=False)
    redacted_uri: str
    hosts: tuple[str, ...]
    is_srv: bool
    database: str | None
    kwargs: Mapping[str, Any] = field(repr=False)
    effective: Mapping[str, Any] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    retry_after: int = 5
    transaction_timeout: float = 10.0
    username: str | None = field(default=None, repr=False)
    processes: int = 1
    server_max_connections: int | None = None
    heartbeat_seconds: float = 0
    heartbeat_collection: str = "mongopool_heartbeats"
    readiness_timeout: float = 1.0
    command_metrics: bool = False

    @property
    def max_pool_size(self) -> int:
        return int(self.option("maxPoolSize"))

    @property
    def appname(self) -> str | None:
        return self.option("appname")

    def option(self, name: str, default: Any = None) -> Any:
        """The effective value of a pymongo option, matched case-insensitively."""
        for key, value in self.effective.items():
            if key.lower() == name.lower():
                return value
        return default

    def display_options(self) -> dict[str, Any]:
        """Effective options with every credential masked, safe to show."""
        return {
            key: MASK if key.lower() in SECRET_OPTIONS else value
            for key, value in sorted(self.effective.items(), key=lambda kv: kv[0].lower())
            if key.lower() != "event_listeners"
        }


def _fail(message: str, secrets: tuple[str, ...]) -> ImproperlyConfigured:
    # Our own wording names settings and options, never a credential; only the parts that echo
    # user input or pymongo's text are scrubbed (scrubbing it all would mangle the setting names
    # whenever a password is a short, common string).
    return ImproperlyConfigured(message)


def _parse_uri(uri: Any, secrets: tuple[str, ...]) -> dict[str, Any]:
    if uri is None or uri == "":
        raise ImproperlyConfigured(
            f"{URI_SETTING} is not set. Set it to a MongoDB connection string: {URI_FORM}."
        )
    if not isinstance(uri, str):
        raise ImproperlyConfigured(
            f"{URI_SETTING} must be a string ({URI_FORM}), not {type(uri).__name__}."
        )
    try:
        return _validate_uri(uri, validate=True, warn=False, normalize=True)
    except (InvalidURI, ConfigurationError, ValueError, TypeError, KeyError) as exc:
        raise _fail(
            f"{URI_SETTING} is not a valid MongoDB connection string: {scrub(str(exc), secrets)}. "
            f"Allowed: {URI_FORM}. Got: {scrub(redact_uri(uri), secrets)}",
            secrets,
        ) from None


def _uri_raw_options(uri: str) -> dict[str, str]:
    _head, _q, query = uri.partition("?")
    return {key: value for key, value in parse_qsl(query, keep_blank_values=True)}


def _user_options(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(
            f"{OPTIONS_SETTING} must be a dict of pymongo client options "
            f"(e.g. {{'maxPoolSize': 20}}), not {type(raw).__name__}."
        )
    for key in raw:
        if not isinstance(key, str):
            raise ImproperlyConfigured(
                f"{OPTIONS_SETTING} keys must be pymongo option names (strings), "
                f"got {type(key).__name__}."
            )
        if key.lower() in RESERVED_OPTIONS:
            raise ImproperlyConfigured(
                f"{OPTIONS_SETTING}[{key!r}] is not allowed: {RESERVED_OPTIONS[key.lower()]}."
            )
        if key.lower() in {"host", "port"}:
            raise ImproperlyConfigured(
                f"{OPTIONS_SETTING}[{key!r}] is not allowed: put hosts and ports in {URI_SETTING}."
            )
    return dict(raw)


def _where(key: str, source: str) -> str:
    return (
        f"{OPTIONS_SETTING}[{key!r}]"
        if source == OPTIONS_SETTING
        else f"{URI_SETTING} option {key}"
    )


def _shown(key: str, value: Any) -> str:
    return MASK if key.lower() in SECRET_OPTIONS else repr(value)


def _validate_one(key: str, value: Any, source: str, secrets: tuple[str, ...]) -> Any:
    lower = key.lower()
    if lower not in common.VALIDATORS:
        raise _fail(
            f"{_where(key, source)}: unknown pymongo option {key!r}. Allowed: the options "
            "MongoClient accepts (see pymongo's MongoClient documentation), e.g. maxPoolSize, "
            "waitQueueTimeoutMS, appname.",
            secrets,
        )
    if isinstance(value, bool) and (lower in INT_RANGES or lower in POSITIVE_MS | OPTIONAL_MS):
        raise _fail(f"{_where(key, source)} must be a number, not a boolean.", secrets)
    try:
        _name, validated = common.validate(key, value)
    except (ConfigurationError, ValueError, TypeError) as exc:
        detail = "invalid value" if lower in SECRET_OPTIONS else scrub(str(exc), secrets)
        shown = scrub(_shown(key, value), secrets)
        raise _fail(f"{_where(key, source)} = {shown} is not allowed: {detail}.", secrets) from None
    return validated


def _check_ranges(validated: dict[str, tuple[str, Any, str]], secrets: tuple[str, ...]) -> None:
    for lower, (low, high) in INT_RANGES.items():
        key, value, source = validated[lower]
        if not isinstance(value, int) or not low <= value <= high:
            hint = " (0 or None would make the pool unbounded)" if lower == "maxpoolsize" else ""
            raise _fail(
                f"{_where(key, source)} = {value!r} is not allowed: use an integer from "
                f"{low} to {high}{hint}.",
                secrets,
            )
    max_pool = validated["maxpoolsize"][1]
    key, min_pool, source = validated["minpoolsize"]
    if min_pool > max_pool:
        raise _fail(
            f"{_where(key, source)} = {min_pool} is larger than maxPoolSize = {max_pool}: "
            "use a value from 0 to maxPoolSize.",
            secrets,
        )
    for lower in POSITIVE_MS:
        key, value, source = validated[lower]
        # pymongo's validators turn milliseconds into seconds.
        if value is None or not 0 < value * 1000 <= MAX_TIMEOUT_MS:
            raise _fail(
                f"{_where(key, source)} is not allowed: use a number of milliseconds from 1 to "
                f"{MAX_TIMEOUT_MS} (None or 0 would let a worker wait forever).",
                secrets,
            )
    bounded = [
        validated[lower][1]
        for lower in OPTIONAL_MS
        if lower in validated
        and validated[lower][1]
        and validated[lower][1] * 1000 <= MAX_TIMEOUT_MS
    ]
    for lower in OPTIONAL_MS:
        if lower in validated:
            key, value, source = validated[lower]
            if value is not None and value * 1000 > MAX_TIMEOUT_MS:
                raise _fail(
                    f"{_where(key, source)} is not allowed: use a number of milliseconds from 1 to "
                    f"{MAX_TIMEOUT_MS}, or 0/None for no limit.",
                    secrets,
                )
    if not bounded:
        raise _fail(
            f"{OPTIONS_SETTING}: socketTimeoutMS and timeoutMS are both unlimited, so a stalled "
            "server would block a worker forever. Set socketTimeoutMS or timeoutMS to a number of "
            f"milliseconds from 1 to {MAX_TIMEOUT_MS}.",
            secrets,
        )


def _database(explicit: Any, from_uri: str | None) -> str | None:
    if explicit is None:
        return from_uri
    if not isinstance(explicit, str) or not _DB_NAME.match(explicit):
        raise ImproperlyConfigured(
            f"{DATABASE_SETTING} must be a MongoDB database name: 1 to 63 characters, none of "
            f'/\\. "$*<>:|? (got {explicit!r}).'
        )
    return explicit


def _number(setting: str, value: Any, low: float, high: float, integer: bool) -> Any:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise ImproperlyConfigured(f"{setting} must be {what} from {low} to {high}, got {value!r}.")
    return value


def _heartbeat_seconds(value: Any) -> float:
    if value == 0 and not isinstance(value, bool):
        return 0
    return _number("MONGOPOOL_HEARTBEAT_SECONDS", value, 1, 3600, False)


def _collection_name(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]{0,119}$", value):
        raise ImproperlyConfigured(
            "MONGOPOOL_HEARTBEAT_COLLECTION must be a collection name: letters, digits, _ . -, "
            f"starting with a letter or _ (got {value!r})."
        )
    return value


def _boolean(setting: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{setting} must be True or False, not {value!r}.")
    return value


def _mode(setting: str, value: Any) -> None:
    if value not in ("off", "warn", "raise"):
        raise ImproperlyConfigured(f"{setting} must be 'off', 'warn' or 'raise', not {value!r}.")


def _module_list(setting: str, value: Any) -> None:
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value or ()):
        raise ImproperlyConfigured(
            f"{setting} must be a list of module names (e.g. ['myproject.migrations']), not {value!r}."
        )


def _metrics_token(value: Any) -> None:
    if value is not None and (not isinstance(value, str) or len(value) < 16):
        raise ImproperlyConfigured(
            "MONGOPOOL_METRICS_TOKEN must be None or a string of at least 16 characters "
            "(a random secret sent as 'Authorization: Bearer <token>')."
        )


def load_config() -> ClientConfig:
    """Read and validate the settings now. Raises ``ImproperlyConfigured``."""
    uri = conf.MONGOPOOL_URI
    user_options = _user_options(conf.MONGOPOOL_CLIENT_OPTIONS)
    secrets = tuple(uri_secrets(uri)) + tuple(
        str(value) for key, value in user_options.items() if key.lower() in SECRET_OPTIONS and value
    )
    parsed = _parse_uri(uri, secrets)
    if parsed.get("password"):
        secrets += (parsed["password"],)

    # defaults < URI options < MONGOPOOL_CLIENT_OPTIONS (pymongo's own precedence for the last two).
    merged: dict[str, tuple[str, Any, str]] = {}
    for key, value in DEFAULT_CLIENT_OPTIONS.items():
        merged[key.lower()] = (key, value, "default")
    uri_options = _uri_raw_options(uri)
    for key, value in uri_options.items():
        merged[key.lower()] = (key, value, URI_SETTING)
    for key, value in user_options.items():
        merged[key.lower()] = (key, value, OPTIONS_SETTING)

    validated = {
        lower: (key, _validate_one(key, value, source, secrets), source)
        for lower, (key, value, source) in merged.items()
    }
    _check_ranges(validated, secrets)

    # Defaults the URI or the setting already gives are left out: keyword arguments would win.
    given = {key.lower() for key in (*uri_options, *user_options)}
    kwargs = {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in given}
    kwargs.update(user_options)

    nodes = parsed["nodelist"]
    is_srv = uri.startswith("mongodb+srv://")
    hosts = tuple(host if is_srv else f"{host}:{port}" for host, port in nodes)
    config = ClientConfig(
        uri=uri,
        username=parsed.get("username")
        or next((v for k, v in user_options.items() if k.lower() == "username"), None),
        redacted_uri=redact_uri(uri),
        hosts=hosts,
        is_srv=is_srv,
        database=_database(conf.MONGOPOOL_DATABASE, parsed.get("database")),
        kwargs=kwargs,
        effective={key: value for key, value, _source in merged.values()},
        secrets=secrets,
        retry_after=_number("MONGOPOOL_RETRY_AFTER", conf.MONGOPOOL_RETRY_AFTER, 1, 3600, True),
        transaction_timeout=_number(
            "MONGOPOOL_TRANSACTION_TIMEOUT", conf.MONGOPOOL_TRANSACTION_TIMEOUT, 0.1, 600, False
        ),
        processes=_number("MONGOPOOL_PROCESSES", conf.MONGOPOOL_PROCESSES, 1, 100_000, True),
        server_max_connections=(
            None
            if conf.MONGOPOOL_SERVER_MAX_CONNECTIONS is None
            else _number(
                "MONGOPOOL_SERVER_MAX_CONNECTIONS",
                conf.MONGOPOOL_SERVER_MAX_CONNECTIONS,
                1,
                10_000_000,
                True,
            )
        ),
        heartbeat_seconds=_heartbeat_seconds(conf.MONGOPOOL_HEARTBEAT_SECONDS),
        heartbeat_collection=_collection_name(conf.MONGOPOOL_HEARTBEAT_COLLECTION),
        command_metrics=_boolean("MONGOPOOL_COMMAND_METRICS", conf.MONGOPOOL_COMMAND_METRICS),
        readiness_timeout=_number(
            "MONGOPOOL_READINESS_TIMEOUT", conf.MONGOPOOL_READINESS_TIMEOUT, 0.05, 30, False
        ),
    )
    _metrics_token(conf.MONGOPOOL_METRICS_TOKEN)
    _mode("MONGOPOOL_STRAY_CLIENTS", conf.MONGOPOOL_STRAY_CLIENTS)
    _mode("MONGOPOOL_LEAKED_SESSIONS", conf.MONGOPOOL_LEAKED_SESSIONS)
    _module_list("MONGOPOOL_ALLOWED_CLIENT_MODULES", conf.MONGOPOOL_ALLOWED_CLIENT_MODULES)
    return config
