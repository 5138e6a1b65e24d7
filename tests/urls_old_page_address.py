"""The include where the page used to live (before admin.site.urls, under admin/mongopool/)."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/mongopool/", include("django_mongopool.urls")),
    path("admin/", admin.site.urls),
]
