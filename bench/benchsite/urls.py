from django.conf import settings
from django.urls import include, path

from benchsite import views

urlpatterns = [
    path("work", views.VARIANTS[settings.VARIANT]),
    path("noop", views.noop),
    path("touch-plain", views.touch_plain),
    path("touch-mw", views.touch_mw),
    path("slow", views.slow),
    path("mongopool/", include("django_mongopool.urls")),
]
