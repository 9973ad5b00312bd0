"""A psycopg connection that the store's work functions can use as they use sqlite3's.

The store's entity modules are plain functions of a DB-API connection, written once. On
PostgreSQL they get this adapter: `?` and `:name` parameters become psycopg's, rows
read by position and by column name as `sqlite3.Row` does, the SQLite-only spellings
the store uses are rewritten (and a named query with a PostgreSQL twin in
daemon/store/pg/queries.sql is replaced by it), and the driver's errors are raised as
the sqlite3 errors the callers already tell apart: a lost connection or a refused
commit is `sqlite3.OperationalError` ("the store refused a write"), a broken
constraint `sqlite3.IntegrityError`.
"""

from __future__ import annotations

import re
import sqlite3
import weakref
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper

from daemon.store.queries import parse_named_queries, queries

Params = Mapping[str, Any] | Sequence[Any]

# SQLite spellings the store's SQL uses, and PostgreSQL's.
_REWRITES = (
    (re.compile(r"\bBEGIN IMMEDIATE\b"), "BEGIN"),
    (re.compile(r"\bifnull\(", re.IGNORECASE), "coalesce("),
    # SQLite's unary + keeps its planner off an index; PostgreSQL has no + for text.
    (re.compile(r"(?<=[\s(])\+(?=[a-z_])"), ""),
    # `params ->> '$.field'`: SQLite's JSON path on a text column.
    (re.compile(r"([\w.]+) ->> '\$\.(\w+)'"), r"(\1::jsonb ->> '\2')"),
    (re.compile(r"\bjson_array_length\(([\w.]+)\)"), r"jsonb_array_length(\1::jsonb)"),
    # `FROM json_each(params, '$.a.b') WHERE value ...`: the array's elements as text.
    (
        re.compile(r"json_each\(([\w.]+), '\$\.([\w.]+)'\)"),
        lambda m: (
            f"jsonb_array_elements_text({m[1]}::jsonb #> '{{{m[2].replace('.', ',')}}}')"
            " AS json_each (value)"
        ),
    ),
)
_TOKEN = re.compile(r"--[^\n]*|'(?:[^']|'')*'|::|:(\w+)|\?|%")


class _IntAsUnknown(Dumper):
    """Integers sent untyped, as SQLite takes a value: `text_column = 101` compares as
    text and `int_column = 101` as a number, where a typed bigint would make PostgreSQL
    refuse the first (the store compares JSON fields, text here, with ints)."""

    oid = 0

    def dump(self, obj: Any) -> bytes:
        return str(obj).encode()


def _without_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL. Nothing stored holds one (the API refuses control
    # characters), so a value that does matches nothing either way; U+FFFD keeps it
    # matching nothing without the driver's error.
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _params(params: Params) -> Params:
    if isinstance(params, Mapping):
        return {key: _without_nul(value) for key, value in params.items()}
    return [_without_nul(value) for value in params]


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, as sqlite3.Row is."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    # The names straight from the result: `cursor.description` builds a Column object
    # per column, and this runs for every statement's result.
    result = cursor.pgresult
    names: dict[str, int] = {}
    if result is not None:
        names = {(result.fname(i) or b"").decode(): i for i in range(result.nfields)}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row._names = names
        return row

    return make


@cache
def _pg_queries() -> dict[str, str]:
    """The PostgreSQL twins of named queries, by the SQLite text they replace."""
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    twins = parse_named_queries(text)
    return {queries()[name]: sql for name, sql in twins.items()}


@cache
def translate(sql: str) -> str:
    """The PostgreSQL text of a statement of the store's SQL."""
    sql = _pg_queries().get(sql, sql)
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith(("'", "--")):
            return text.replace("%", "%%")  # psycopg reads % everywhere in the text
        if text == "::":
            return text
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        return f"%({match.group(1)})s"

    return _TOKEN.sub(token, sql)


def _as_sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    if isinstance(exc, pg_errors.IntegrityError):
        return sqlite3.IntegrityError(str(exc))
    if isinstance(exc, psycopg.OperationalError | pg_errors.AdminShutdown):
        return sqlite3.OperationalError(str(exc))
    return sqlite3.DatabaseError(str(exc))


def _has_rows(cursor: psycopg.Cursor[Any]) -> bool:
    # What `cursor.description is not None` says, without its Column objects.
    result = cursor.pgresult
    return result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK


class Cursor:
    """A statement's result. The connection's one psycopg cursor is reused by its next
    statement: a result still referenced then is kept here first (`detach`)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor: psycopg.Cursor[Any] | None = cursor
        self._rowcount = -1
        self._rows: list[Any] = []

    def detach(self) -> None:
        """Keep the rows not fetched yet and the row count: the cursor runs another
        statement now."""
        cursor = self._cursor
        if cursor is None:
            return
        self._rowcount = cursor.rowcount
        self._rows = cursor.fetchall() if _has_rows(cursor) else []
        self._cursor = None

    @property
    def rowcount(self) -> int:
        return self._rowcount if self._cursor is None else self._cursor.rowcount

    def fetchone(self) -> Any:
        if self._cursor is None:
            return self._rows.pop(0) if self._rows else None
        return self._cursor.fetchone() if _has_rows(self._cursor) else None

    def fetchall(self) -> list[Any]:
        if self._cursor is None:
            rows, self._rows = self._rows, []
            return rows
        return self._cursor.fetchall() if _has_rows(self._cursor) else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class Connection:
    """One psycopg connection, outside any transaction until a BEGIN (autocommit mode,
    as the store's sqlite3 connections are: every transaction is begun explicitly)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        # One cursor for every `execute`: a new one per statement costs about 10 µs.
        self._cursor = conn.cursor()
        self._last: weakref.ref[Cursor] | None = None

    @classmethod
    def open(
        cls, url: str, connect_timeout: int, host_id: str = "", host_timeout: float = 30
    ) -> Connection:
        """`host_id` is this session's `callbackd.host_id`: the host the attempts it
        writes belong to, whose attempts it reconciles and whose webhooks it sends;
        `host_timeout` tells it when another host is gone."""
        try:
            conn = psycopg.connect(
                url, autocommit=True, row_factory=_row_factory, connect_timeout=connect_timeout
            )
            conn.execute(
                "SELECT set_config('callbackd.host_id', %s, false),"
                " set_config('callbackd.host_timeout', %s, false)",
                (host_id, str(host_timeout)),
            )
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc
        conn.adapters.register_dumper(int, _IntAsUnknown)
        return cls(conn)

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    @property
    def broken(self) -> bool:
        return self._conn.closed or self._conn.broken

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        last = self._last() if self._last is not None else None
        if last is not None:  # its caller still holds it: it keeps its result
            last.detach()
        try:
            self._cursor.execute(translate(sql).encode(), _params(params))
        except psycopg.Error as exc:
            self._last = None
            raise _as_sqlite_error(exc) from exc
        result = Cursor(self._cursor)
        self._last = weakref.ref(result)
        return result

    def executemany(self, sql: str, rows: Sequence[Params]) -> Cursor:
        cursor = self._conn.cursor()
        try:
            cursor.executemany(translate(sql).encode(), [_params(row) for row in rows])
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc
        return Cursor(cursor)

    def copy_rows(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """COPY rows in (`COPY table (columns) FROM STDIN`): bulk inserts at a fraction
        of an INSERT's cost per row."""
        try:
            with self._conn.cursor().copy(statement.encode()) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise _as_sqlite_error(exc) from exc

    def close(self) -> None:
        self._conn.close()
