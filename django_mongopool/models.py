"""The unmanaged model that carries the pool page's admin entry and its permission (no table)."""

from django.db import models


class PoolHealth(models.Model):
    """No table: this unmanaged model only carries the page's permission and its admin entry.

    Its primary key is a CharField so that ``migrate`` passes on every backend, including
    django-mongodb-backend, whose check mongodb.E001 rejects AutoField.
    """

    id = models.CharField(primary_key=True, max_length=32, editable=False)

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_pool_health", "Can view MongoDB pool health")]
        verbose_name = "pool health"
        verbose_name_plural = "pool health"

    def __str__(self) -> str:
        return "MongoDB pool health"
