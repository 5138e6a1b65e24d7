"""MongoEngine on the app's client: django_mongopool.mongoengine.connect() against the real server."""

from __future__ import annotations

import os
import uuid
import warnings

import mongoengine
import pytest
from bson.binary import Binary, UuidRepresentation
from mongoengine import connection as me_connection

from django_mongopool import mongoengine as pooled
from django_mongopool.client.process import get_client
from tests.helpers import bound_child, wait_child

pytestmark = pytest.mark.server

ALIAS = "mongopool-test"


class Note(mongoengine.Document):
    key = mongoengine.StringField(required=True)
    ref = mongoengine.UUIDField(binary=True)
    meta = {"db_alias": ALIAS, "collection": "notes"}


@pytest.fixture
def connected(mongo):
    client = pooled.connect(alias=ALIAS, db=mongo.name)
    yield client
    pooled.disconnect(ALIAS)


def test_documents_use_the_app_client_and_legacy_uuids(connected, mongo):
    ref = uuid.uuid4()
    note = Note(key="a", ref=ref).save()
    assert Note.objects.get(id=note.id).ref == ref
    assert Note._get_collection().database.client is get_client()
    # Stored as MongoEngine always stored it: pythonLegacy binary (subtype 3) ...
    raw = get_client()[mongo.name].get_collection("notes").find_one({"_id": note.id})
    assert isinstance(raw["ref"], Binary) and raw["ref"].subtype == 3
    assert raw["ref"].as_uuid(UuidRepresentation.PYTHON_LEGACY) == ref
    # ... while the shared client keeps its own codec options.
    assert get_client().codec_options.uuid_representation == UuidRepresentation.UNSPECIFIED
    assert "MongoEngine" in get_client()._options.pool_options.metadata["driver"]["name"]


def test_connect_is_idempotent_and_refuses_connection_settings(connected, mongo):
    assert pooled.connect(alias=ALIAS, db=mongo.name) is connected
    with pytest.raises(Exception, match="MONGOPOOL_URI"):
        pooled.connect(alias="other", db=mongo.name, host="mongodb://elsewhere/")


def test_disconnect_keeps_the_shared_client_open(connected, mongo):
    client = get_client()
    Note(key="b").save()
    me_connection.disconnect(ALIAS)
    client.admin.command("ping")
    assert get_client() is client
    pooled.connect(alias=ALIAS, db=mongo.name)
    assert Note.objects(key="b").first() is not None


def test_a_client_settings_change_is_followed(connected, settings):
    Note(key="c").save()
    old = get_client()
    settings.MONGOPOOL_CLIENT_OPTIONS = {"maxPoolSize": 3}
    assert Note.objects(key="c").first() is not None
    assert Note._get_collection().database.client is get_client() is not old


def test_forked_child_uses_its_own_client(connected):
    parent = get_client()
    Note(key="parent").save()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            bound_child()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                Note(key="child", ref=uuid.uuid4()).save()
                client = Note._get_collection().database.client
                code = 0
                if client is parent or client is not get_client():
                    code = 2
                elif Note.objects(key="child").first() is None:
                    code = 3
                elif any("fork" in str(w.message) for w in caught):
                    code = 4
        finally:
            os._exit(code)
    assert wait_child(pid) == 0
    assert get_client() is parent
    assert Note._get_collection().database.client is parent
    assert Note.objects(key="child").first() is not None


def test_stock_mongoengine_client_is_reported_with_a_hint(mongo_server, settings):
    settings.MONGOPOOL_STRAY_CLIENTS = "raise"
    try:
        # MongoEngine wraps the StrayClientError in its own ConnectionFailure.
        with pytest.raises(me_connection.ConnectionFailure, match="mongoengine.connect\\(\\)"):
            mongoengine.connect(
                db="x", alias="stock", host=mongo_server.url, uuidRepresentation="standard"
            )
    finally:
        me_connection.disconnect("stock")
