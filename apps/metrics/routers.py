"""Keeps the ``clickhouse`` alias out of the ORM: it serves only the archive's raw SQL."""

from __future__ import annotations

from typing import Any


class ClickHouseRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        return False if db == "clickhouse" else None
