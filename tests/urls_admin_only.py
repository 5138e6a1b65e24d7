"""A URLconf with the admin but without django_mongopool.urls (no probe, no metrics route)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
