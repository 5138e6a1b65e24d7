"""The quickstart's "Use" example, made into views that answer."""

from django.http import JsonResponse
from django.views.decorators.http import require_POST

from django_mongopool import get_async_database, get_database


def order_list(request):
    orders = get_database()["orders"]  # MONGOPOOL_DATABASE, or the URI's /database
    docs = orders.find({"user": request.user.pk}, session=request.mongo_session)
    return JsonResponse({"orders": [doc["item"] for doc in docs]})


@require_POST
def order_create(request):
    orders = get_database()["orders"]
    orders.insert_one(
        {"user": request.user.pk, "item": request.POST["item"]}, session=request.mongo_session
    )
    return JsonResponse({"created": request.POST["item"]}, status=201)


async def order_count(request):
    session = await request.amongo_session()
    orders = get_async_database()["orders"]
    return JsonResponse({"count": await orders.count_documents({}, session=session)})
