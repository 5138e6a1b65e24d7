"""The ORM variants' model (installed only for orm_stock / orm_pooled; no migrations needed:
MongoDB creates the collection on the first insert)."""

from django.db import models


class OrmItem(models.Model):
    class Meta:
        app_label = "benchsite"

    def __str__(self) -> str:
        return str(self.pk)
