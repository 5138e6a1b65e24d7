from django.contrib import admin
from django.urls import include, path

from tests import views

urlpatterns = [
    path("t/insert/", views.insert_and_read),
    path("t/untouched/", views.untouched),
    path("t/raises/", views.raises),
    path("t/stream/", views.stream),
    path("t/async/", views.async_insert),
    path("t/async-stream/", views.async_stream),
    path("t/transfer/", views.transfer),
    path("t/file/", views.file_download),
    path("t/stray/", views.client_per_request),
    path("t/leak/", views.leaks_a_session),
    path("t/no-leak/", views.ends_its_session),
    path("t/async-leak/", views.async_leaks_a_session),
    path("t/async-native/", views.async_native),
    path("t/async-native-stream/", views.async_native_stream),
    path("t/async-native-slow/", views.async_native_slow),
    path("mongopool/", include("django_mongopool.urls")),
    path("admin/", admin.site.urls),
    path("", include("guestbook.urls")),
]
