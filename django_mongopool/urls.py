"""The readiness probe and Prometheus metrics, to mount outside the admin.

``path("mongopool/", include("django_mongopool.urls"))`` gives ``/mongopool/ready`` and
``/mongopool/metrics`` (keep them out of ``admin/``, where ingress rules usually stop probes).
``ready`` is public (no hosts, no secrets) for load balancers; ``metrics`` answers staff with
the pool permission or ``Authorization: Bearer <MONGOPOOL_METRICS_TOKEN>``. The pool-health page
needs no line here: the admin mounts it (see admin.py); the include's root redirects there (the
page's old address, ``/admin/mongopool/``, keeps working where the include is still mounted).
"""

from __future__ import annotations

from django.urls import NoReverseMatch, Resolver404, path, resolve, reverse

from django_mongopool.audit import views

app_name = "mongopool"
urlpatterns = [
    path("", views.page, name="page"),  # to the admin-mounted page
    path("ready", views.ready, name="ready"),
    path("metrics", views.metrics, name="metrics"),
]


def served_url(name: str) -> str | None:
    """``reverse(name)`` when a request there reaches this app's view; None when the include is
    missing or a pattern listed before it takes the URL (e.g. the admin's catch-all)."""
    try:
        url = reverse(name)
        match = resolve(url)
    except (NoReverseMatch, Resolver404):
        return None
    return (
        url if match.url_name == name.rpartition(":")[2] and match.app_name == "mongopool" else None
    )
