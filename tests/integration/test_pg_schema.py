"""The PostgreSQL store's schema: migrated from the same versions as the SQLite one,
with the same tables and columns at every version, once however many hosts start
together, and never by a callbackd older than the schema."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from daemon.store.db import StoreError
from daemon.store.pg import schema as pg_schema
from daemon.store.queries import migrations as sqlite_migrations
from tests.pg import TestPg

pytestmark = pytest.mark.pg

# What only several hosts need: the hosts, each attempt's host, and where the version is
# kept (SQLite keeps it in PRAGMA user_version).
PG_ONLY_TABLES = {"hosts", "schema_version"}
PG_ONLY_COLUMNS = {"attempts": {"host_id"}}
PG_ONLY_INDEXES = {"task_counts_by_key"}  # SQLite: its primary key
# SQLite's declared types and the PostgreSQL types that hold the same values.
SAME_TYPE = {"INTEGER": {"integer", "bigint"}, "TEXT": {"text"}}

Columns = dict[str, dict[str, str]]


def sqlite_columns(version: int) -> Columns:
    conn = sqlite3.connect(":memory:")
    for number, script in sqlite_migrations():
        if number <= version:
            conn.executescript(script)
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        table: {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info({table})")}
        for table in tables
    }


def sqlite_indexes(version: int) -> set[str]:
    conn = sqlite3.connect(":memory:")
    for number, script in sqlite_migrations():
        if number <= version:
            conn.executescript(script)
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    return {row[0] for row in rows}


def pg_indexes(url: str) -> set[str]:
    """The indexes made by CREATE INDEX (not those of keys and constraints)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint)"
        ).fetchall()
    return {row[0] for row in rows}


def pg_columns(url: str) -> Columns:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
    columns: Columns = {}
    for table, column, data_type in rows:
        columns.setdefault(table, {})[column] = data_type
    return columns


def test_both_stores_have_the_same_migration_versions() -> None:
    assert [v for v, _ in pg_schema.migrations()] == [v for v, _ in sqlite_migrations()]


@pytest.mark.parametrize("version", [v for v, _ in sqlite_migrations()])
def test_at_every_version_both_stores_have_the_same_tables_columns_and_indexes(
    testpg: TestPg, version: int
) -> None:
    with testpg.fresh_database() as url:
        with psycopg.connect(url) as conn:
            pg_schema.migrate(conn, pg_schema.migrations()[:version])
        pg = pg_columns(url)
        indexes = pg_indexes(url)
    lite = sqlite_columns(version)

    assert indexes - PG_ONLY_INDEXES == sqlite_indexes(version)
    assert set(pg) - PG_ONLY_TABLES == set(lite)
    for table, columns in lite.items():
        extra = PG_ONLY_COLUMNS.get(table, set())
        assert set(pg[table]) - extra == set(columns), table
        for column, declared in columns.items():
            assert pg[table][column] in SAME_TYPE[declared], (table, column)


def test_migrating_twice_changes_nothing(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        first = pg_schema.migrate(conn)
        second = pg_schema.migrate(conn)
        versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()

    assert first == second == sqlite_migrations()[-1][0]
    assert versions == [(v,) for v, _ in pg_schema.migrations()]


def test_hosts_starting_together_migrate_once(pg_url: str) -> None:
    def start_host() -> int:
        with psycopg.connect(pg_url) as conn:
            return pg_schema.migrate(conn)

    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: start_host(), range(4)))

    assert done == [pg_schema.migrations()[-1][0]] * 4


def test_a_store_migrated_by_a_newer_callbackd_is_refused_and_left_alone(pg_url: str) -> None:
    newer = pg_schema.migrations()[-1][0] + 1
    with psycopg.connect(pg_url) as conn:
        pg_schema.migrate(conn)
        conn.execute("INSERT INTO schema_version VALUES (%s)", (newer,))
        conn.commit()

        with pytest.raises(StoreError, match=f"schema version {newer}, newer than"):
            pg_schema.migrate(conn)

        assert pg_schema.schema_version(conn) == newer


def test_task_counts_follow_every_insert_change_and_delete(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        pg_schema.migrate(conn)
        conn.execute(
            "INSERT INTO queues (id, client_id, name, create_date) VALUES (1, 'c', 'q', '')"
        )
        conn.execute(
            "INSERT INTO tasks (id, scheduler_id, params, status, create_date)"
            " SELECT i, 1, '{}', 'scheduled', '' FROM generate_series(1, 5) i"
        )
        conn.execute("UPDATE tasks SET status = 'executed' WHERE id <= 3")
        conn.execute("UPDATE tasks SET name = 'renamed' WHERE id = 4")  # no count changes
        conn.execute("UPDATE tasks SET status = 'finished', finish_result = 'success' WHERE id = 1")
        conn.execute("DELETE FROM tasks WHERE id = 5")
        counts = conn.execute(
            "SELECT status, finish_result, sum(n)::int FROM task_counts"
            " GROUP BY 1, 2 HAVING sum(n) != 0 ORDER BY 1"
        ).fetchall()

    assert counts == [("executed", "", 2), ("finished", "success", 1), ("scheduled", "", 1)]
