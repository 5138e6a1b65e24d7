"""An entry on the admin index that leads to the pool-health page."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

from django_mongopool.models import PoolHealth
from django_mongopool.permissions import can_view_pool


@admin.register(PoolHealth)
class PoolHealthAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
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

    def changelist_view(
        self, request: HttpRequest, extra_context: object = None
    ) -> HttpResponseRedirect:
        try:
            return HttpResponseRedirect(reverse("mongopool:pool"))
        except NoReverseMatch:
            raise NoReverseMatch(
                "The pool-health page is not routed: add "
                "path('admin/mongopool/', include('django_mongopool.urls')) to your URLconf."
            ) from None
