"""The readiness probe and the Prometheus endpoint (the pool-health page itself is in admin.py)."""

from __future__ import annotations

import json
from typing import Any

import pymongo
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from pymongo.errors import PyMongoError

from django_mongopool import audit, exposition
from django_mongopool.client import get_client, get_config, get_metrics
from django_mongopool.permissions import bearer_token, can_view_pool, token_matches

PAGE_TIMEOUT = 2.0  # seconds per server query while answering a web request


def web_report() -> dict[str, Any]:
    """The audit report with server queries capped at PAGE_TIMEOUT (the page and /metrics)."""
    timeout = min(PAGE_TIMEOUT, float(get_config().option("serverSelectionTimeoutMS")) / 1000)
    return audit.build_report(timeout=timeout)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: staff with the permission, or ``Authorization: Bearer <token>``."""
    token = bearer_token(request)
    user = getattr(request, "user", None)  # no AuthenticationMiddleware: token only
    if token is not None:
        if not token_matches(token):
            return _unauthorized("invalid token")
    elif user is None or not user.is_authenticated:
        return _unauthorized("authentication required")
    elif not can_view_pool(user):
        raise PermissionDenied
    if not exposition.prometheus_available():
        return HttpResponse(
            exposition.MISSING_EXTRA, status=501, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(exposition.render(web_report()), content_type=exposition.CONTENT_TYPE)


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
