"""System checks (``django_mongopool.E0xx`` errors, ``W0xx`` warnings). No network I/O.

Registered by :func:`register` from ``AppConfig.ready()``. Ids are never reused;
every id is listed in docs/checks.md (tests/test_checks.py compares).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from django_mongopool.client import pymongo_internals
from django_mongopool.client.options import ClientConfig
from django_mongopool.client.process import connected_before_fork
from django_mongopool.conf import conf
from django_mongopool.fleet import budget

MIDDLEWARE_PATH = "django_mongopool.middleware.MongoSessionMiddleware"
LONG_WAIT_MS = 30_000  # load balancers commonly give up on a request after 30 s
PASSWORDLESS_MECHANISMS = {"MONGODB-X509", "MONGODB-AWS", "MONGODB-OIDC", "GSSAPI"}
Messages = list[checks.CheckMessage]


def _config() -> ClientConfig | None:
    """The client configuration, or None when E001/E004 already report what is wrong."""
    if not conf.uri_is_set:
        return None
    try:
        conf.validate_all()
        return conf.client_config
    except ImproperlyConfigured:
        return None


def check_uri(app_configs: Any = None, **kwargs: Any) -> Messages:
    if not conf.uri_is_set:
        return [
            checks.Error(
                "MONGOPOOL_URI is not set, so django-mongopool has no server to connect to.",
                hint="Set MONGOPOOL_URI to a connection string such as mongodb://host:27017/dbname.",
                id="django_mongopool.E001",
            )
        ]
    try:
        conf.validate_all()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(
                f"The MONGOPOOL_* settings are invalid: {exc}",
                hint="Fix the setting named in the message; the app cannot build its client.",
                id="django_mongopool.E004",
            )
        ]
    return []


def check_middleware(app_configs: Any = None, **kwargs: Any) -> Messages:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    count = middleware.count(MIDDLEWARE_PATH)
    if count == 0:
        return [
            checks.Error(
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE, so request.mongo_session does not exist "
                "and no request session is ended for you.",
                hint=f"Add '{MIDDLEWARE_PATH}' to MIDDLEWARE, first.",
                id="django_mongopool.E002",
            )
        ]
    if count > 1:
        return [
            checks.Error(
                f"{MIDDLEWARE_PATH} is listed {count} times in MIDDLEWARE; the inner copy would "
                "replace request.mongo_session and the outer session would never be used.",
                hint="Keep exactly one entry.",
                id="django_mongopool.E003",
            )
        ]
    before = middleware[: middleware.index(MIDDLEWARE_PATH)]
    if before:
        return [
            checks.Warning(
                f"{MIDDLEWARE_PATH} comes after {', '.join(before)}: a response those return "
                "(or an exception they raise) bypasses it, and none of them can use "
                "request.mongo_session.",
                hint="Put MongoSessionMiddleware first in MIDDLEWARE.",
                id="django_mongopool.W001",
            )
        ]
    return []


def check_pool(app_configs: Any = None, **kwargs: Any) -> Messages:
    config = _config()
    if config is None:
        return []  # reported as E001 / E004
    messages: Messages = []
    capacity = conf.server_max_connections
    processes = conf.processes
    per_server = budget.fleet_per_server(processes, config.max_pool_size)
    messages += _fleet_budget(processes, capacity)
    if capacity is not None and per_server > capacity and conf.fleet_budget is None:
        messages.append(
            checks.Error(
                f"The fleet can open {processes} processes x (maxPoolSize "
                f"{config.max_pool_size} + {budget.MONITORS_PER_SERVER} monitor connections) = "
                f"{per_server} connections to each server, more than "
                f"MONGOPOOL_SERVER_MAX_CONNECTIONS = {capacity}.",
                hint=f"Lower maxPoolSize to at most {budget.largest_pool_that_fits(capacity, processes)}, "
                "run fewer processes, or raise the server's net.maxIncomingConnections.",
                id="django_mongopool.E005",
            )
        )
    read_wait_ms, write_wait_ms = checkout_waits_ms(config)
    if read_wait_ms > LONG_WAIT_MS and not config.option("timeoutMS"):  # else: timeoutMS below
        wait_queue = config.option("waitQueueTimeoutMS")
        messages.append(
            checks.Warning(
                f"waitQueueTimeoutMS = {wait_queue}: with a saturated pool a read waits up to "
                f"{read_wait_ms / 1000:g} s and a write up to {write_wait_ms / 1000:g} s before "
                "the request gets its 503 (pymongo retries a read once after a check-out "
                "timeout, and the retry waits again).",
                hint=f"Keep the longest wait at most {LONG_WAIT_MS} ms (load balancers usually "
                f"give up at 30 s): waitQueueTimeoutMS at most {LONG_WAIT_MS // 2} with "
                "retryable reads, or set timeoutMS, which bounds the whole operation.",
                id="django_mongopool.W002",
            )
        )
    for name in ("serverSelectionTimeoutMS", "timeoutMS"):
        value = config.option(name)
        if value and float(value) > LONG_WAIT_MS:
            messages.append(
                checks.Warning(
                    f"{name} = {value}: with a saturated pool or an unreachable server a worker "
                    f"waits up to {float(value) / 1000:g} s before the request gets its 503.",
                    hint=f"Use at most {LONG_WAIT_MS} ms (load balancers usually give up at 30 s).",
                    id="django_mongopool.W002",
                )
            )
    if not config.appname:
        messages.append(
            checks.Warning(
                "appname is empty, so this app's connections cannot be told apart from others in "
                "$currentOp, the server's logs and mongo_connections.",
                hint="Set MONGOPOOL_CLIENT_OPTIONS['appname'] to your project's name.",
                id="django_mongopool.W003",
            )
        )
    return messages


def _retries_reads(config: ClientConfig) -> bool:
    value = config.option("retryReads", True)
    return str(value).strip().lower() not in {"false", "0", "no", "off"}


def checkout_waits_ms(config: ClientConfig) -> tuple[float, float]:
    """The longest a read and a write wait for a connection before failing, in milliseconds.

    A check-out gives up after waitQueueTimeoutMS; pymongo retries a retryable read once after
    a check-out timeout, so a read waits twice that. With timeoutMS set, the whole operation
    (both check-outs included) ends at timeoutMS instead.
    """
    wait_queue = float(config.option("waitQueueTimeoutMS") or 0)
    read = wait_queue * (2 if _retries_reads(config) else 1)
    limit = float(config.option("timeoutMS") or 0)
    if limit:
        return limit, limit
    return read, wait_queue


NO_DATABASE_HINT = (
    "Set MONGOPOOL_DATABASE = 'name', or put the database in the MONGOPOOL_URI path "
    "(mongodb://host:27017/name)."
)


def check_database(app_configs: Any = None, **kwargs: Any) -> Messages:
    """No default database: get_database() without a name, and the heartbeats, have none."""
    config = _config()
    if config is None or conf.database:
        return []  # E001 / E004 report an unusable configuration
    if conf.heartbeat_seconds:
        return [
            checks.Error(
                "MONGOPOOL_HEARTBEAT_SECONDS is set but there is no default database "
                "(MONGOPOOL_URI has no /database and MONGOPOOL_DATABASE is not set): the "
                "heartbeats have nowhere to be written, so the pool page and the audit cannot "
                "see the fleet, and a fleet budget cannot share itself out.",
                hint=NO_DATABASE_HINT,
                id="django_mongopool.E020",
            )
        ]
    return [
        checks.Warning(
            "There is no default database: MONGOPOOL_URI has no /database and "
            "MONGOPOOL_DATABASE is not set, so get_database() without a name raises "
            "ImproperlyConfigured.",
            hint=NO_DATABASE_HINT + " Or always pass the name: get_database('name').",
            id="django_mongopool.W020",
        )
    ]


def _fleet_budget(processes: int, capacity: int | None) -> Messages:
    fleet_budget = conf.fleet_budget
    if fleet_budget is None:
        return []
    messages: Messages = []
    smallest = budget.smallest_budget(processes)
    if fleet_budget < smallest:
        messages.append(
            checks.Error(
                f"MONGOPOOL_FLEET_BUDGET = {fleet_budget} cannot give each of the "
                f"{processes} processes (MONGOPOOL_PROCESSES) one pooled connection plus its "
                f"{budget.MONITORS_PER_SERVER} monitor connections: that needs {smallest}.",
                hint=f"Raise MONGOPOOL_FLEET_BUDGET to at least {smallest}, or run fewer processes.",
                id="django_mongopool.E006",
            )
        )
    if not conf.heartbeat_seconds:
        messages.append(
            checks.Error(
                "MONGOPOOL_FLEET_BUDGET is set but MONGOPOOL_HEARTBEAT_SECONDS is 0: the processes "
                "learn about each other only from heartbeats, so every process would stay at "
                "MONGOPOOL_FLEET_MIN_SHARE.",
                hint="Set MONGOPOOL_HEARTBEAT_SECONDS (e.g. 5).",
                id="django_mongopool.E007",
            )
        )
    if capacity is not None and fleet_budget > capacity:
        messages.append(
            checks.Warning(
                f"MONGOPOOL_FLEET_BUDGET = {fleet_budget} is above the server's capacity "
                f"MONGOPOOL_SERVER_MAX_CONNECTIONS = {capacity}: the budget would not stop the "
                "server from refusing connections.",
                hint=f"Lower MONGOPOOL_FLEET_BUDGET to at most {capacity} (leave room for other clients).",
                id="django_mongopool.W006",
            )
        )
    return messages


def check_fork(app_configs: Any = None, **kwargs: Any) -> Messages:
    if connected_before_fork():
        return [
            checks.Warning(
                "This process was forked from a parent whose MongoDB client was already "
                "connected: every worker inherits the parent's sockets and monitor threads.",
                hint="Do not query MongoDB at import time or in AppConfig.ready() under a "
                "preforking server (gunicorn --preload, uWSGI without lazy-apps).",
                id="django_mongopool.W004",
            )
        ]
    return []


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("/") else host
    if name == "localhost" or name.endswith(".sock") or name.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_deploy(app_configs: Any = None, **kwargs: Any) -> Messages:
    config = _config()
    if config is None:
        return []
    remote = [h for h in config.hosts if not _is_loopback(h)]
    messages: Messages = []
    if remote and not config.tls:
        exposed = (
            "the password, the queries and the data"
            if config.username
            else "the queries and the data"
        )
        messages.append(
            checks.Warning(
                f"TLS is off for {', '.join(remote)}: {exposed} cross the network in clear.",
                hint="Add tls=true to MONGOPOOL_URI (mongodb+srv:// URIs turn it on by default).",
                id="django_mongopool.W101",
            )
        )
    mechanism = str(config.option("authMechanism") or "").upper()
    has_user = bool(config.username)
    if remote and not has_user and mechanism not in PASSWORDLESS_MECHANISMS:
        messages.append(
            checks.Warning(
                f"No credentials for {', '.join(remote)}: the server must be accepting "
                "unauthenticated connections.",
                hint="Enable authentication on the server and put a user in MONGOPOOL_URI.",
                id="django_mongopool.W102",
            )
        )
    direct = str(config.option("directConnection", "")).lower() in {"true", "1"}
    if direct and config.option("replicaSet"):
        messages.append(
            checks.Warning(
                f"directConnection=true to a member of replica set {config.option('replicaSet')!r}: "
                "the app will not follow elections and fails when that member steps down.",
                hint="Remove directConnection and list the members (or use mongodb+srv://).",
                id="django_mongopool.W103",
            )
        )
    return messages


def check_metrics_routed(app_configs: Any = None, **kwargs: Any) -> Messages:
    """A metrics token without a route to use it on: the include was forgotten."""
    from django.urls import NoReverseMatch, reverse

    try:
        if not conf.metrics_token:
            return []
    except ImproperlyConfigured:
        return []  # reported as E004
    try:
        reverse("mongopool:metrics")
    except NoReverseMatch:
        return [
            checks.Warning(
                "MONGOPOOL_METRICS_TOKEN is set but no URL serves the metrics: "
                "django_mongopool.urls is not included in the URLconf.",
                hint='Add path("mongopool/", include("django_mongopool.urls")) to your URLconf '
                "(outside admin/), or remove the token.",
                id="django_mongopool.W005",
            )
        ]
    return []


def check_pymongo_internals(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The pymongo internals the package uses that this pymongo has moved (see ``pymongo_internals``),
    each with the fallback in force."""
    status = pymongo_internals.status()
    messages: Messages = []
    for feature in status.failed:
        if feature.key == "fleet_budget":
            if conf.fleet_budget is None:
                continue  # nothing relies on it
            messages.append(
                checks.Error(
                    f"MONGOPOOL_FLEET_BUDGET cannot be enforced on pymongo "
                    f"{status.pymongo_version}: {feature.summary()}. Fallback in force: "
                    f"{feature.fallback}.",
                    hint="Pin pymongo to a release this django-mongopool is tested with (the "
                    "documentation's Limits page names them), upgrade django-mongopool, or remove "
                    "MONGOPOOL_FLEET_BUDGET.",
                    id=pymongo_internals.CHECK_IDS[feature.key],
                )
            )
            continue
        messages.append(
            checks.Warning(
                f"pymongo {status.pymongo_version} has moved internals django-mongopool uses "
                f"for {feature.promise}: {feature.summary()}. Fallback in force: "
                f"{feature.fallback}.",
                hint="Pin pymongo to a release this django-mongopool is tested with (the "
                "documentation's Limits page names them), or upgrade django-mongopool.",
                id=pymongo_internals.CHECK_IDS[feature.key],
            )
        )
    return messages


def _served_by(url: str) -> str:
    from django.urls import Resolver404, resolve

    try:
        match = resolve(url)
    except Resolver404:
        return "no view (404)"
    func = match.func
    name = getattr(func, "__qualname__", None) or type(func).__name__
    return f"{getattr(func, '__module__', '?')}.{name}"


def check_probe_reachable(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The include is there, but a pattern listed before it takes its URLs (e.g. after
    ``admin.site.urls`` under ``admin/``, where the admin's catch-all answers a 302 to the login)."""
    from django.urls import NoReverseMatch, reverse

    from django_mongopool.urls import served_url

    messages: Messages = []
    for name, what in (("mongopool:ready", "readiness probe"), ("mongopool:metrics", "metrics")):
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue  # not included: nothing to reach (W005 covers a metrics token without it)
        if served_url(name) is None:
            messages.append(
                checks.Warning(
                    f"The {what} URL {url} is answered by {_served_by(url)}, not by "
                    "django-mongopool: a URL pattern listed before the include takes it, so a "
                    "load balancer's probe (or a Prometheus scrape) never reaches it.",
                    hint='Put path("mongopool/", include("django_mongopool.urls")) before '
                    "admin.site.urls and outside admin/ in your URLconf.",
                    id="django_mongopool.W030",
                )
            )
    return messages


ORM_ENGINE = "django_mongopool.backends.mongodb"


def check_orm_pool_sized(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The ORM engine on the app's pool defaults, which are smaller than pymongo's."""
    from django_mongopool.client.options import DEFAULT_CLIENT_OPTIONS

    aliases = [
        alias
        for alias, database in (getattr(settings, "DATABASES", None) or {}).items()
        if isinstance(database, dict) and database.get("ENGINE") == ORM_ENGINE
    ]
    config = _config()
    if not aliases or config is None or conf.fleet_budget is not None:
        return []  # no ORM alias; E001/E004 report the settings; a fleet budget sizes the pool
    given = dict(conf.raw("MONGOPOOL_CLIENT_OPTIONS") or {})
    if (
        any(str(key).lower() == "maxpoolsize" for key in given)
        or "maxPoolSize" not in config.kwargs
    ):
        return []  # sized in MONGOPOOL_CLIENT_OPTIONS or in the URI
    default = DEFAULT_CLIENT_OPTIONS["maxPoolSize"]
    wait = config.option("waitQueueTimeoutMS")
    return [
        checks.Warning(
            f"DATABASES[{aliases[0]!r}] uses ENGINE {ORM_ENGINE!r}, which runs on "
            f"django-mongopool's pool with its defaults: maxPoolSize {default} and "
            f"waitQueueTimeoutMS {wait} (the stock engine has pymongo's 100 and no wait limit). "
            f"More than {default} threads of a process running queries at once wait, and after "
            f"{float(wait) / 1000:g} s fail with DatabaseError (WaitQueueTimeoutError; a 503 in "
            "a request).",
            hint="Set MONGOPOOL_CLIENT_OPTIONS['maxPoolSize'] to at least the threads per "
            "process that use MongoDB at once (gunicorn --threads, uWSGI threads, ASGI "
            "thread-pool size), within what the server accepts (check E005); set it to "
            f"{default} to keep the default and silence this warning.",
            id="django_mongopool.W031",
        )
    ]


def register() -> None:
    """Register every check (``AppConfig.ready()``; registering twice is harmless)."""
    for check in (
        check_uri,
        check_middleware,
        check_pool,
        check_database,
        check_fork,
        check_pymongo_internals,
    ):
        checks.register(check, "django_mongopool")
    checks.register(check_metrics_routed, "django_mongopool", checks.Tags.urls)
    checks.register(check_probe_reachable, "django_mongopool", checks.Tags.urls)
    checks.register(check_orm_pool_sized, "django_mongopool")
    checks.register(check_deploy, "django_mongopool", deploy=True)
