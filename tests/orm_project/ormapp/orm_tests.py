"""Run by ``python -m django test tests.orm_project.ormapp -p "orm_*.py"`` (tests/test_orm_backend_server.py).

Named so that pytest does not collect it: the suite's default database is SQLite.
"""

from django.db import connection
from django.test import TestCase

from django_mongopool.client.process import get_client
from tests.orm_project.ormapp.models import Item


class ItemTests(TestCase):
    databases = {"default"}

    def test_round_trip_in_the_test_database(self) -> None:
        item = Item.objects.create(key="k", worker=3)
        self.assertEqual(Item.objects.get(pk=item.pk).worker, 3)
        self.assertEqual([i.pk for i in Item.objects.filter(key="k")], [item.pk])
        self.assertTrue(connection.settings_dict["NAME"].startswith("test_"))
        self.assertIs(connection.connection, get_client())
