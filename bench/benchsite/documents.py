from django.conf import settings
from mongoengine import Document, StringField, connect

connect(
    db=settings.BENCH_DB,
    host=settings.BENCH_URL,
    maxPoolSize=settings.BENCH_POOL,
    appname="bench-mongoengine",
)


class Item(Document):
    id = StringField(primary_key=True)
    meta = {"collection": "items", "auto_create_index": False}
