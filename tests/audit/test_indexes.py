"""The audit table carries the indexes its queries use and no more: every admission decision updates them all."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import psycopg
import pytest
from django.db import connection

from tests.servers import REPO
from tests.servers.postgres import drop_database, new_database, server_params

EXPECTED = [
    "(action)",
    "(actor_name)",
    "(at)",
    "(cluster, namespace, name)",
    "(id)",
]


def _index_definitions(cursor) -> list[str]:
    cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_auditevent' ORDER BY indexdef")
    return [definition for (definition,) in cursor.fetchall()]


def _columns(definition: str) -> str:
    """``(cluster, namespace, name)`` of ``CREATE INDEX … USING btree (cluster, namespace, name)``."""
    return re.search(r"\((.*)\)$", definition).group(1).join("()")


def _index_columns(cursor) -> list[str]:
    return sorted(_columns(definition) for definition in _index_definitions(cursor))


@pytest.mark.django_db
def test_the_audit_table_has_five_indexes_and_no_pattern_copies():
    with connection.cursor() as cursor:
        assert _index_columns(cursor) == EXPECTED


def test_the_migration_drops_five_indexes_and_its_reversal_restores_them():
    # given a scratch PostgreSQL database migrated up to the audit app's previous migration
    name, url = new_database("kd_audit_indexes")
    env = os.environ | {"DATABASE_URL": url}

    def migrate(*target: str) -> list[str]:
        """Migrate to ``target``; the table's index definitions (names, columns, operator classes) after."""
        subprocess.run(
            [sys.executable, "manage.py", "migrate", *target, "--noinput"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        with psycopg.connect(**server_params(name)) as db, db.cursor() as cursor:
            return _index_definitions(cursor)

    try:
        before = migrate("audit", "0006")
        # when the migration runs, then is reversed
        after = migrate("audit", "0007")
        reversed_ = migrate("audit", "0006")
    finally:
        drop_database(name)
    # then the five are left; the reversal brings back the very indexes there were, names included (a later
    # migration of these fields finds them by name)
    assert sorted(_columns(definition) for definition in after) == EXPECTED
    assert reversed_ == before
    assert sorted(_columns(definition) for definition in before) == sorted(
        [
            *EXPECTED,
            "(actor_id)",
            "(actor_name varchar_pattern_ops)",
            "(action varchar_pattern_ops)",
            "(cluster)",
            "(cluster varchar_pattern_ops)",
        ]
    )
