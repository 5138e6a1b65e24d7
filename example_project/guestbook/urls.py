from django.urls import path

from guestbook import views

app_name = "guestbook"
urlpatterns = [
    path("", views.entry_list, name="list"),
    path("entries/<str:entry_id>/", views.entry_detail, name="detail"),
    path("export.csv", views.export_csv, name="export"),
    path("api/entries/", views.api_entries, name="api-entries"),
    path("api/sign/", views.api_sign, name="api-sign"),
    path("api/async-sign/", views.api_async_sign, name="api-async-sign"),
    path("api/entries/stream/", views.api_entries_stream, name="api-entries-stream"),
]
