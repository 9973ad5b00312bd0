"""Every named query of the store is taken by PostgreSQL as the adapter rewrites it (or
as its PostgreSQL twin in daemon/store/pg/queries.sql): run with every parameter null
inside a transaction that is rolled back, a query may break a constraint, never the
grammar or name a function, table or column PostgreSQL does not have."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import errors

from daemon.store.pg.dbapi import translate
from daemon.store.pg.schema import migrate
from daemon.store.queries import queries

pytestmark = pytest.mark.pg

NOT_SQL = (
    errors.SyntaxError,
    errors.UndefinedFunction,
    errors.UndefinedTable,
    errors.UndefinedColumn,
    errors.AmbiguousColumn,
    errors.DatatypeMismatch,
    errors.GroupingError,
)


def _nulls(sql: str) -> dict[str, None] | tuple[None, ...]:
    names = set(re.findall(r"%\((\w+)\)s", sql))
    return dict.fromkeys(names) if names else (None,) * sql.count("%s")


def test_every_named_query_is_postgresql(pg_url: str) -> None:
    refused = {}
    with psycopg.connect(pg_url) as conn:
        migrate(conn)
        for name, sqlite_text in queries().items():
            sql = translate(sqlite_text)
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute(sql.encode(), _nulls(sql))
            except NOT_SQL as exc:
                refused[name] = str(exc).splitlines()[0]
            except psycopg.Error:
                pass  # null where a value belongs: the grammar and the names were fine
    assert refused == {}
