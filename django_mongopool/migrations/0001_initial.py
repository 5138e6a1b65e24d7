from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PoolHealth",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "pool health",
                "verbose_name_plural": "pool health",
                "permissions": [("view_pool_health", "Can view MongoDB pool health")],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
