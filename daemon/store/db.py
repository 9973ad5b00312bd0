"""The SQLite database: connections, durability settings, migrations, transactions.

Writes go through one connection, serialised by a lock, in `BEGIN IMMEDIATE` transactions
committed with `synchronous=FULL`: when a write returns, it is on disk (WAL), so a 2xx
answered after it survives `kill -9` and power loss. Reads use a second connection, so a
list query never waits behind a bulk insert and never sees uncommitted rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from daemon.store.queries import migrations
from daemon.store.schema import refusal

Params = Mapping[str, Any] | Sequence[Any]
T = TypeVar("T")

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA cache_size = -32000",
)


class StoreError(Exception):
    """The store cannot be opened or migrated."""


class StoreUnavailable(Exception):
    """A write could not be committed now (disk full, file locked); nothing of it is
    kept, and the same write may succeed later."""


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn


class Database:
    """Two connections to one SQLite file: a locked writer and a free reader."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = await _connect(path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        try:
            await migrate(writer)
            reader = await _connect(path)
        except sqlite3.Error as exc:
            await writer.close()
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        except StoreError:
            await writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        await self._reader.close()
        async with self._write_lock:
            await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A durable write transaction; rolled back if the block raises."""
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writer
                except BaseException:
                    if self._writer.in_transaction:
                        await self._writer.execute("ROLLBACK")
                    raise
                await self._writer.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
                raise StoreUnavailable(f"the store refused a write: {exc}") from exc

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` inside one durable transaction on the writer's own thread and
        return what it returns; rolled back if it raises.

        Unlike `transaction()`, whose every statement is a round trip between the event
        loop and the writer thread, the whole transaction is one round trip: what the
        call engine writes per call is many small statements."""
        async with self._write_lock:
            try:
                # aiosqlite has no public way to run a function on its thread; _execute
                # is what its own methods use.
                run = self._writer._execute
                result: T = await run(_in_transaction, self._writer._conn, work)  # type: ignore[no-untyped-call]
                return result
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"the store refused a write: {exc}") from exc

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the reader's thread inside one read transaction, so that all
        its queries see the same state of the store; one round trip."""
        run = self._reader._execute  # as in write()
        result: T = await run(_in_snapshot, self._reader._conn, work)  # type: ignore[no-untyped-call]
        return result

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._reader.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._reader.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    async def is_writable(self) -> bool:
        """True when a write transaction can be taken and committed now."""
        try:
            async with asyncio.timeout(2), self.transaction() as tx:
                await tx.execute("SELECT 1")
        except (sqlite3.Error, StoreUnavailable, TimeoutError):
            return False
        return True


def _in_snapshot(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN")  # deferred: the snapshot is taken at the first read
    try:
        return work(conn)
    finally:
        conn.execute("COMMIT")


def _in_transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def migrate(
    conn: aiosqlite.Connection, steps: Iterable[tuple[int, str]] | None = None
) -> int:
    """Apply every migration newer than the file's `user_version`, each in its own
    transaction; returns the version the file is at afterwards."""
    current = await schema_version(conn)
    steps = list(migrations() if steps is None else steps)
    refused = refusal(current, max((v for v, _ in steps), default=0), "the SQLite store")
    if refused is not None:
        raise StoreError(refused)
    for version, script in steps:
        if version <= current:
            continue
        # executescript commits first; the script runs inside our own BEGIN ... COMMIT.
        try:
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
        current = version
    return current
