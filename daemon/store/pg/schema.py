"""The PostgreSQL store's migrations: the same versions as the SQLite store's, applied
under a lock so that hosts starting together migrate once, all in one transaction (a
failed upgrade leaves the schema as it was)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from daemon.store.db import StoreError
from daemon.store.pg.connection import CONNECT_TIMEOUT_S, connect, reason
from daemon.store.pg.url import shown
from daemon.store.queries import migrations as migrations_of
from daemon.store.schema import refusal

__all__ = ["CONNECT_TIMEOUT_S", "migrate", "migrate_store", "migrations", "schema_version"]
# pg_advisory_xact_lock key of migrations: any fixed number no other lock uses.
MIGRATION_LOCK = 0x63616C6C  # "call"


def migrations() -> list[tuple[int, str]]:
    return migrations_of(__package__)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The version the store is at; 0 for an empty database."""
    cur = conn.cursor(row_factory=tuple_row)  # whatever rows the connection makes
    exists = cur.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: psycopg.Connection[Any], steps: Iterable[tuple[int, str]] | None = None) -> int:
    """Apply every migration newer than the store's version; returns the version after.
    StoreError when the store is newer than these migrations."""
    steps = list(migrations() if steps is None else steps)
    known = max((version for version, _ in steps), default=0)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        current = schema_version(conn)
        refused = refusal(current, known, "the PostgreSQL store")
        if refused is not None:
            raise StoreError(refused)
        if current == 0:
            conn.execute("CREATE TABLE schema_version (version integer PRIMARY KEY)")
        for version, script in steps:
            if version > current:
                conn.execute(script.encode())  # no parameters: several statements at once
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                current = version
    return current


def migrate_store(url: str) -> int:
    """Connect to the store at `url`, migrate it and return its version. StoreError,
    naming the store without its password, when it cannot be reached or is newer."""
    with connect(url) as conn:
        try:
            return migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot migrate the store {shown(url)}: {reason(exc)}") from None
