"""The readiness probe and the Prometheus endpoint (the pool-health page itself is in admin.py)."""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from django_mongopool.audit import prometheus, readiness
from django_mongopool.audit.permissions import bearer_token, can_view_pool, token_matches
from django_mongopool.audit.report import web_report
from django_mongopool.conf import conf

PAGE = "admin:django_mongopool_poolhealth_changelist"


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
    if not prometheus.prometheus_available():
        return HttpResponse(
            prometheus.MISSING_EXTRA, status=501, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(prometheus.render(web_report()), content_type=prometheus.CONTENT_TYPE)


def _unauthorized(reason: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"error": reason}), status=401, content_type="application/json"
    )
    response["WWW-Authenticate"] = 'Bearer realm="django-mongopool"'
    return response


def _not_ready(reason: str) -> JsonResponse:
    response = JsonResponse({"status": "unavailable", "reason": reason}, status=503)
    # An expected answer during an outage: not an ERROR for Django's request logger (no e-mails).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@csrf_exempt  # a POST gets require_safe's 405, not the CSRF check's 403
@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    """200 when no pool is saturated and the server answers a ping in time, else 503. Public."""
    if readiness.saturated():
        return _not_ready("pool saturated")
    if not readiness.reachable(conf.readiness_timeout):
        return _not_ready("database unreachable")
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def page(request: HttpRequest) -> HttpResponseRedirect:
    """The include's own root (``/admin/mongopool/`` where the page used to be): to the page."""
    try:
        target = reverse(PAGE)
    except NoReverseMatch:
        raise Http404("The pool-health page needs django.contrib.admin in the URLconf.") from None
    query = request.META.get("QUERY_STRING", "")
    return HttpResponseRedirect(f"{target}?{query}" if query else target)
