from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),  # also serves the pool-health page
    path("mongopool/", include("django_mongopool.urls")),  # readiness probe and Prometheus
    path("", include("guestbook.urls")),
]
