from typing import Any

SQL_APPS = {"admin", "auth", "contenttypes", "sessions"}


class ContribToSQLite:
    """The contrib apps on the "sql" alias, everything else on the MongoDB default."""

    def _alias(self, model: Any) -> str:
        return "sql" if model._meta.app_label in SQL_APPS else "default"

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self._alias(model)

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self._alias(model)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return (db == "sql") == (app_label in SQL_APPS)
