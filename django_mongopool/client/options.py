"""pymongo client options: ``MONGOPOOL_URI`` + ``MONGOPOOL_CLIENT_OPTIONS`` into a :class:`ClientConfig`.

URI options are split exactly as pymongo splits them (``&`` or ``;``, repeated keys,
any case) and every value is validated with pymongo's own validators, then held to
this app's caps. Everything wrong is reported as ``ImproperlyConfigured`` naming
the setting and what is allowed; no message ever contains a password.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from pymongo import common
from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import split_options

from django_mongopool.client import pymongo_internals
from django_mongopool.client.figures import address_text
from django_mongopool.guards.redact import (
    MASK,
    SECRET_OPTIONS,
    credential_values,
    redact_uri,
    scrub,
)

URI_SETTING = "MONGOPOOL_URI"
OPTIONS_SETTING = "MONGOPOOL_CLIENT_OPTIONS"

# Production defaults: a bounded pool and bounded waits everywhere, so a saturated pool or
# an unreachable server fails a request instead of hanging a worker (pymongo's spelling).
DEFAULT_CLIENT_OPTIONS: Mapping[str, Any] = {
    "maxPoolSize": 10,
    "minPoolSize": 0,
    "maxIdleTimeMS": 60_000,
    "maxConnecting": 2,
    "waitQueueTimeoutMS": 2_000,
    "connectTimeoutMS": 5_000,
    "socketTimeoutMS": 30_000,
    "serverSelectionTimeoutMS": 5_000,
    "appname": "django-mongopool",
}

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

NUMERIC_OPTIONS = set(INT_RANGES) | POSITIVE_MS | OPTIONAL_MS


@dataclass(frozen=True)
class ClientConfig:
    """The validated configuration of the process-wide client."""

    uri: str = field(repr=False)
    redacted_uri: str
    hosts: tuple[str, ...]
    is_srv: bool
    uri_database: str | None
    kwargs: Mapping[str, Any] = field(repr=False)
    effective: Mapping[str, Any] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    username: str | None = field(default=None, repr=False)
    command_metrics: bool = False
    tls: bool = False

    @property
    def max_pool_size(self) -> int:
        return int(self.option("maxPoolSize"))

    @property
    def appname(self) -> str | None:
        name = self.option("appname")
        return None if name is None else str(name)

    def seconds(self, name: str) -> float:
        """A millisecond option in seconds (``serverSelectionTimeoutMS`` -> 5.0)."""
        return float(self.option(name) or 0) / 1000

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
        return pymongo_internals.parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError, TypeError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"{URI_SETTING} is not a valid MongoDB connection string: {scrub(str(exc), secrets)}. "
            f"Allowed: {URI_FORM}. Got: {scrub(redact_uri(uri), secrets)}"
        ) from None


def _uri_raw_options(uri: str) -> dict[str, Any]:
    """The URI's options as written, split the way pymongo splits them (``&`` or ``;``).

    Only the options part is split here (as pymongo's own URI parser does it), without
    pymongo's checks across options: those ran on the validated parse already, and on raw
    strings they misread ``directConnection=false`` as true.
    """
    _scheme, _, scheme_free = uri.partition("://")
    _hosts_and_db, _, query = scheme_free.partition("?")
    if not query:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a repeated key: the last wins, as in pymongo
        options = split_options(query, validate=False, warn=True, normalize=False)
    return pymongo_internals.as_written(options)


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
        raise ImproperlyConfigured(
            f"{_where(key, source)}: unknown pymongo option {key!r}. Allowed: the options "
            "MongoClient accepts (see pymongo's MongoClient documentation), e.g. maxPoolSize, "
            "waitQueueTimeoutMS, appname."
        )
    if lower in NUMERIC_OPTIONS and isinstance(value, bool):
        raise ImproperlyConfigured(f"{_where(key, source)} must be a number, not a boolean.")
    if lower in NUMERIC_OPTIONS and source == OPTIONS_SETTING and isinstance(value, str):
        raise ImproperlyConfigured(
            f"{_where(key, source)} must be a number, not the string {value!r} "
            "(strings are only for options inside MONGOPOOL_URI)."
        )
    try:
        _name, validated = common.validate(key, value)
    except (ConfigurationError, ValueError, TypeError) as exc:
        detail = "invalid value" if lower in SECRET_OPTIONS else scrub(str(exc), secrets)
        shown = scrub(_shown(key, value), secrets)
        raise ImproperlyConfigured(
            f"{_where(key, source)} = {shown} is not allowed: {detail}."
        ) from None
    return validated


def _check_ranges(validated: dict[str, tuple[str, Any, str]]) -> None:
    for lower, (low, high) in INT_RANGES.items():
        key, value, source = validated[lower]
        if not isinstance(value, int) or not low <= value <= high:
            hint = " (0 or None would make the pool unbounded)" if lower == "maxpoolsize" else ""
            raise ImproperlyConfigured(
                f"{_where(key, source)} = {value!r} is not allowed: use an integer from "
                f"{low} to {high}{hint}."
            )
    max_pool = validated["maxpoolsize"][1]
    key, min_pool, source = validated["minpoolsize"]
    if min_pool > max_pool:
        raise ImproperlyConfigured(
            f"{_where(key, source)} = {min_pool} is larger than maxPoolSize = {max_pool}: "
            "use a value from 0 to maxPoolSize."
        )
    for lower in POSITIVE_MS:
        key, value, source = validated[lower]
        # pymongo's validators turn milliseconds into seconds.
        if value is None or not 1 <= value * 1000 <= MAX_TIMEOUT_MS:
            raise ImproperlyConfigured(
                f"{_where(key, source)} is not allowed: use a number of milliseconds from 1 to "
                f"{MAX_TIMEOUT_MS} (None or 0 would let a worker wait forever)."
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
            if value and not 1 <= value * 1000 <= MAX_TIMEOUT_MS:
                raise ImproperlyConfigured(
                    f"{_where(key, source)} is not allowed: use a number of milliseconds from 1 to "
                    f"{MAX_TIMEOUT_MS}, or 0/None for no limit."
                )
    if not bounded:
        raise ImproperlyConfigured(
            f"{OPTIONS_SETTING}: socketTimeoutMS and timeoutMS are both unlimited, so a stalled "
            "server would block a worker forever. Set socketTimeoutMS or timeoutMS to a number of "
            f"milliseconds from 1 to {MAX_TIMEOUT_MS}."
        )


def _normalised(lower: str, raw: Any, validated: Any) -> Any:
    """Numbers as numbers (milliseconds for *MS options), whatever their source; the rest as written."""
    if lower in INT_RANGES:
        return validated
    if lower in POSITIVE_MS | OPTIONAL_MS:
        if validated is None:
            return None
        ms = round(validated * 1000, 3)
        return int(ms) if ms == int(ms) else ms
    return raw


_TLS_BY_VALUE = (
    "tlscertificatekeyfile",
    "tlscertificatekeyfilepassword",
    "tlscafile",
    "tlscrlfile",
)
_TLS_BY_FALSE = (
    "tlsallowinvalidcertificates",
    "tlsallowinvalidhostnames",
    "tlsdisableocspendpointcheck",
    "tlsinsecure",  # pymongo expands it into the three above
)


def _uses_tls(validated: Mapping[str, tuple[str, Any, str]], is_srv: bool) -> bool:
    """Whether pymongo will use TLS, decided the way pymongo decides it (client_options.py)."""
    for name in ("tls", "ssl"):
        if name in validated and validated[name][1] is not None:
            return bool(validated[name][1])
    if any(name in validated and validated[name][1] for name in _TLS_BY_VALUE):
        return True
    if any(name in validated and not validated[name][1] for name in _TLS_BY_FALSE):
        return True
    return is_srv


def build_config(
    uri: Any,
    client_options: Any,
    *,
    command_metrics: bool = False,
    starting_pool_size: int | None = None,
) -> ClientConfig:
    """Validate the URI and client options now. Raises ``ImproperlyConfigured``.

    ``starting_pool_size`` (a fleet budget's minimum share) caps the pool the client is
    built with; the process's share then raises it up to maxPoolSize (see ``shares``).
    """
    user_options = _user_options(client_options)
    secrets = credential_values(uri, user_options)
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
    _check_ranges(validated)

    # Defaults the URI or the setting already gives are left out: keyword arguments would win.
    given = {key.lower() for key in (*uri_options, *user_options)}
    kwargs = {k: v for k, v in DEFAULT_CLIENT_OPTIONS.items() if k.lower() not in given}
    kwargs.update(user_options)
    if starting_pool_size is not None:
        kwargs = {
            k: v for k, v in kwargs.items() if k.lower() not in {"maxpoolsize", "minpoolsize"}
        }
        kwargs["maxPoolSize"] = min(starting_pool_size, validated["maxpoolsize"][1])
        # pymongo would refill minPoolSize above a shrunken share, and the trim would close
        # them again: under a fleet budget the pool keeps no idle minimum.
        kwargs["minPoolSize"] = 0

    is_srv = uri.startswith("mongodb+srv://")
    return ClientConfig(
        uri=uri,
        redacted_uri=redact_uri(uri),
        hosts=tuple(
            host if is_srv else address_text((host, port)) for host, port in parsed["nodelist"]
        ),
        is_srv=is_srv,
        uri_database=parsed.get("database"),
        kwargs=kwargs,
        effective={
            key: _normalised(lower, value, validated[lower][1])
            for lower, (key, value, _source) in merged.items()
        },
        secrets=secrets,
        username=parsed.get("username")
        or next((v for k, v in user_options.items() if k.lower() == "username"), None),
        command_metrics=command_metrics,
        tls=_uses_tls(validated, is_srv),
    )
