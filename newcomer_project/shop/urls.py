from django.contrib import admin
from django.urls import include, path
from orders import views

urlpatterns = [
    path("admin/", admin.site.urls),
    # urls.py: the readiness probe and Prometheus metrics, outside admin/ (the page needs no line)
    path("mongopool/", include("django_mongopool.urls")),
    path("orders/", views.order_list),
    path("orders/new/", views.order_create),
    path("orders/count/", views.order_count),
]
