"""``manage.py clickhouse_migrate``: create the daily-peak table in ClickHouse (idempotent)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.metrics import clickhouse as ch
from apps.metrics.store import ClickHouseStore


class Command(BaseCommand):
    help = "Create the daily-peak table in ClickHouse (CLICKHOUSE_URL, or --clickhouse-url); safe to re-run."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clickhouse-url", default="", help="default: CLICKHOUSE_URL")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["clickhouse_url"]
        if not url and not settings.CLICKHOUSE_URL:
            raise CommandError("CLICKHOUSE_URL is not set: the daily peaks live in the default database.")
        door = ch.ClickHouseDoor.from_url(url) if url else ch.ClickHouseDoor.default()
        try:
            version = door.server_version()
            ClickHouseStore(door).ensure_schema()
        except ch.ClickHouseError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            door.close()
        ttl = "with" if tuple(version) >= ch.TTL_MIN_VERSION else "without (the server has no table TTL)"
        self.stdout.write(f"{ch.PEAKS_TABLE} ready on ClickHouse {'.'.join(map(str, version))}, {ttl} the 400-day TTL")
