"""The probe include placed under admin/ after admin.site.urls: the admin's catch-all takes it."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("admin/mongopool/", include("django_mongopool.urls")),
]
