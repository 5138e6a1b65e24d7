from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/mongopool/", include("django_mongopool.urls")),  # before the admin's own URLs
    path("admin/", admin.site.urls),
    path("", include("guestbook.urls")),
]
