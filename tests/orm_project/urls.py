from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.orm_project.ormapp.models import Item


def lookup(request: HttpRequest) -> HttpResponse:
    # Equality filter only: FerretDB answers it correctly (see the list in docs/orm.md).
    items = list(Item.objects.filter(key=request.GET.get("key", "")))
    return HttpResponse(str(len(items)))


urlpatterns = [path("lookup/", lookup)]
