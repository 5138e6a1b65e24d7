from django.db import models


class Item(models.Model):
    key = models.CharField(max_length=64)
    worker = models.IntegerField(default=0)

    class Meta:
        app_label = "ormapp"

    def __str__(self) -> str:
        return self.key
