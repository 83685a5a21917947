"""The ClickHouse door: settings from CLICKHOUSE_URL, the alias connection, errors, DDL per server version."""

from __future__ import annotations

import pytest
from django.db.utils import ConnectionHandler

from apps.metrics import clickhouse as ch
from apps.metrics.clickhouse_url import clickhouse_database
from apps.metrics.store import ClickHouseStore, OrmStore, peak_store


def test_url_becomes_database_settings_with_timeouts():
    settings = clickhouse_database("clickhouse://reader:p%40ss@ch.example:9440/archive?send_receive_timeout=300")
    assert settings["ENGINE"] == "clickhouse_backend.backend"
    assert (settings["NAME"], settings["USER"], settings["PASSWORD"], settings["HOST"], settings["PORT"]) == (
        "archive",
        "reader",
        "p@ss",
        "ch.example",
        "9440",
    )
    assert settings["OPTIONS"]["connect_timeout"] == 5
    assert settings["OPTIONS"]["send_receive_timeout"] == 300
    assert settings["TEST"]["MIGRATE"] is False
    assert clickhouse_database("clickhouses://h/db")["OPTIONS"]["secure"] is True


def test_a_url_that_is_not_clickhouse_is_refused():
    with pytest.raises(ValueError, match="CLICKHOUSE_URL must look like"):
        clickhouse_database("postgres://x@y/z")


def test_the_store_follows_the_setting(settings):
    settings.KUBEDOOR_PEAK_STORE = "orm"
    assert isinstance(peak_store(), OrmStore)


def test_ttl_only_where_the_server_supports_it():
    assert "TTL" not in ch.daily_peaks_ddl(server_version=(18, 16))
    assert ch.daily_peaks_ddl(server_version=(26, 1)).rstrip().endswith("TTL day + toIntervalDay(400)")


@pytest.mark.django_db
def test_the_clickhouse_alias_of_the_settings_talks_to_the_real_server(clickhouse_url):
    # given: the "clickhouse" alias exactly as the settings module builds it from CLICKHOUSE_URL
    handler = ConnectionHandler({"default": {}, "clickhouse": clickhouse_database(clickhouse_url)})
    door = ch.ClickHouseDoor(handler["clickhouse"])
    # when
    ClickHouseStore(door).ensure_schema()
    # then
    assert door.server_version()[:2] == (18, 16)
    assert door.execute("EXISTS TABLE kubedoor_daily_peaks") == [(1,)]
    handler["clickhouse"].close()


@pytest.mark.django_db
def test_bad_sql_and_unreachable_servers_are_clickhouse_errors(clickhouse_url):
    door = ch.ClickHouseDoor.from_url(clickhouse_url)
    with pytest.raises(
        ch.ClickHouseError, match="ClickHouse: Code: 60. DB::Exception: Table .*no_such_table doesn.t exist"
    ):
        door.execute("SELECT * FROM no_such_table")
    door.close()
    from tests.servers import free_port

    down = ch.ClickHouseDoor.from_url(f"clickhouse://default@127.0.0.1:{free_port()}/default")
    with pytest.raises(ch.ClickHouseError, match="ClickHouse: "):
        down.execute("SELECT 1")
