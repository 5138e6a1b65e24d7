"""The pool-health page, mounted by the admin as the changelist of the table-less PoolHealth model."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_safe

from django_mongopool.audit.permissions import can_view_pool
from django_mongopool.audit.report import web_report
from django_mongopool.models import PoolHealth
from django_mongopool.request.negotiation import format_is_known, wants_json
from django_mongopool.urls import served_url

REFRESH_SECONDS = 5


def _metrics_url() -> str | None:
    # No link when django_mongopool.urls is not included or another pattern takes the URL (W030).
    return served_url("mongopool:metrics")


@admin.register(PoolHealth)
class PoolHealthAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def get_urls(self) -> list[URLPattern]:
        # Only the changelist: there are no rows to add, change, delete or show history for.
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_view_pool(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return can_view_pool(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @method_decorator(require_safe)
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The page, or the same report as JSON (``?format=json`` or ``Accept: application/json``)."""
        if not self.has_view_permission(request):
            raise PermissionDenied("You need the 'Can view MongoDB pool health' permission.")
        if not format_is_known(request):
            return HttpResponse(
                "format must be 'json' or 'html'.", status=400, content_type="text/plain"
            )
        # $currentOp (connections per application) only on an explicit ?current_op=1.
        report = web_report(current_op=request.GET.get("current_op") == "1")
        response: HttpResponse
        if wants_json(request):
            response = JsonResponse(report, json_dumps_params={"default": str})
        else:
            response = TemplateResponse(
                request,
                "django_mongopool/pool_health.html",
                self._context(request, report, extra_context),
            )
        patch_vary_headers(response, ("Accept",))
        return response

    def _context(
        self, request: HttpRequest, report: dict[str, Any], extra: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": "MongoDB pool health",
            "opts": self.opts,
            "report": report,
            "process": report["process"],
            "refresh_seconds": REFRESH_SECONDS,
            "json_url": f"{request.path}?format=json",
            "metrics_url": _metrics_url(),
            "server_connections": sorted((report["server"]["connections"] or {}).items()),
            **(extra or {}),
        }
