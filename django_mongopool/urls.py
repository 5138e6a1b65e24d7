"""Include before the admin's own URLs, e.g. ``path("admin/mongopool/", include("django_mongopool.urls"))``."""

from django.urls import path

from django_mongopool import views

app_name = "mongopool"
urlpatterns = [
    path("", views.pool_health, name="pool"),
    path("metrics", views.metrics, name="metrics"),
    path("ready", views.ready, name="ready"),
]
