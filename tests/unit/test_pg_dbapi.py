"""The store's SQLite SQL as PostgreSQL takes it: parameters, SQLite-only spellings,
and text that only looks like them (strings, comments, casts) left alone."""

from __future__ import annotations

import pytest

from daemon.store.pg.dbapi import Row, translate


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("UPDATE t SET a = :a WHERE id = :id", "UPDATE t SET a = %(a)s WHERE id = %(id)s"),
        ("SELECT x::text, ':no' FROM t", "SELECT x::text, ':no' FROM t"),
        ("SELECT 'it''s ?' FROM t", "SELECT 'it''s ?' FROM t"),
        ("-- the guard's window: ?\nSELECT ?", "-- the guard's window: ?\nSELECT %s"),
        ("SELECT '10%' LIKE x", "SELECT '10%%' LIKE x"),
        (
            "WHERE +status IN (?) AND (+scheduler_id = 1)",
            "WHERE status IN (%s) AND (scheduler_id = 1)",
        ),
        ("SELECT a + b", "SELECT a + b"),
        ("SELECT ifnull(a, '')", "SELECT coalesce(a, '')"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        (
            "SELECT t.params ->> '$.extension_id'",
            "SELECT (t.params::jsonb ->> 'extension_id')",
        ),
        (
            "EXISTS (SELECT 1 FROM json_each(a.plan, '$.x.y') WHERE value LIKE ?)",
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(a.plan::jsonb #> '{x,y}')"
            " AS json_each (value) WHERE value LIKE %s)",
        ),
    ],
)
def test_sqlite_spellings_become_postgresql(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql


def test_a_row_is_read_by_position_and_by_name() -> None:
    row = Row((1, "on"))
    row._names = {"id": 0, "status": 1}

    assert (row[0], row["status"], row.keys(), dict(zip(row.keys(), row, strict=True))) == (
        1,
        "on",
        ["id", "status"],
        {"id": 1, "status": "on"},
    )
