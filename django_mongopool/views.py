"""The pool-health page (admin look), its JSON and Prometheus forms, and a readiness probe."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

import pymongo
from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from pymongo.errors import PyMongoError

from django_mongopool import audit, exposition
from django_mongopool.charts import history_chart
from django_mongopool.client import get_client, get_config, get_metrics
from django_mongopool.permissions import bearer_token, can_view_pool, token_matches

PAGE_TIMEOUT = 2.0  # seconds per server query while rendering the page
REFRESH_SECONDS = 5


def pool_viewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the admin login; logged-in users without the permission get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not can_view_pool(request.user):
            raise PermissionDenied("You need the 'Can view MongoDB pool health' permission.")
        return view(request, *args, **kwargs)

    return wrapper


def _wants_json(request: HttpRequest) -> bool:
    fmt = request.GET.get("format")
    if fmt is not None:
        if fmt not in {"json", "html"}:
            raise ValueError(fmt)
        return fmt == "json"
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def _report() -> dict[str, Any]:
    timeout = min(PAGE_TIMEOUT, float(get_config().option("serverSelectionTimeoutMS")) / 1000)
    return audit.build_report(timeout=timeout)


@never_cache
@require_safe
@pool_viewer_required
def pool_health(request: HttpRequest) -> HttpResponse:
    try:
        as_json = _wants_json(request)
    except ValueError:
        return HttpResponse(
            "format must be 'json' or 'html'.", status=400, content_type="text/plain"
        )
    report = _report()
    if as_json:
        return JsonResponse(report, json_dumps_params={"default": str})
    max_pool = report["budget"]["max_pool_size"]
    context = {
        **admin.site.each_context(request),
        "title": "MongoDB pool health",
        "report": report,
        "process": report["process"],
        "chart": history_chart(report["process"]["history"], max_pool),
        "refresh_seconds": REFRESH_SECONDS,
        "json_url": f"{request.path}?format=json",
        "metrics_url": reverse("mongopool:metrics"),
        "server_connections": sorted((report["server"]["connections"] or {}).items()),
    }
    return render(request, "django_mongopool/pool_health.html", context)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: staff with the permission, or ``Authorization: Bearer <token>``."""
    token = bearer_token(request)
    if token is not None:
        if not token_matches(token):
            return _unauthorized("invalid token")
    elif not request.user.is_authenticated:
        return _unauthorized("authentication required")
    elif not can_view_pool(request.user):
        raise PermissionDenied
    return HttpResponse(exposition.render(_report()), content_type=exposition.CONTENT_TYPE)


def _unauthorized(reason: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"error": reason}), status=401, content_type="application/json"
    )
    response["WWW-Authenticate"] = 'Bearer realm="django-mongopool"'
    return response


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    """200 when the pool has room and the server answers a ping quickly, else 503. Public: no secrets."""
    config = get_config()
    for server in get_metrics().snapshot().servers:
        if server.waiting > 0 or server.in_use >= config.max_pool_size:
            return JsonResponse({"status": "unavailable", "reason": "pool saturated"}, status=503)
    try:
        with pymongo.timeout(config.readiness_timeout):
            get_client().admin.command("ping")
    except PyMongoError:
        return JsonResponse({"status": "unavailable", "reason": "database unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
