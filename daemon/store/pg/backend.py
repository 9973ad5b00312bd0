"""The shared PostgreSQL store as a store backend: the same `write` and `read` of plain
functions as the SQLite store's `Database`, on psycopg connections each owned by a
thread of its own (daemon/store/pg/dbapi.py lets those functions run unchanged).

Writes go through one writer connection with the SQLite store's group commit (writes
that come while one is committed share the next transaction, a failing one undone
alone: daemon/store/group_commit.py, `undo_by_retry`), committed before `write`
returns (synchronous_commit as the server has it: on, by default). Reads run on a few
reader connections, each inside a REPEATABLE READ READ ONLY transaction begun
when the read starts: one snapshot, taken after every write that returned before.
A lost connection makes the write fail as `StoreUnavailable` (nothing of it is kept)
and is opened again at the next use: a PostgreSQL restart or failover is a pause.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from daemon.store.backend import Backend, StoreError, StoreUnavailable
from daemon.store.group_commit import GroupCommit
from daemon.store.pg.connection import CONNECT_TIMEOUT_S
from daemon.store.pg.dbapi import Connection
from daemon.store.pg.schema import migrate_store

T = TypeVar("T")
READERS = 2


class Worker:
    """One connection on one thread of its own, opened (again) when needed."""

    def __init__(self, name: str, url: str, host_id: str, host_timeout: float) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._url = url
        self._host_id = host_id
        self._host_timeout = host_timeout
        self._conn: Connection | None = None
        self._closed = False

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.broken:
            self._conn = Connection.open(
                self._url, CONNECT_TIMEOUT_S, self._host_id, self._host_timeout
            )
        return self._conn

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")

        def on_thread() -> T:
            # The adapter is used as the sqlite3 connection the work functions expect.
            return work(self._connection())  # type: ignore[arg-type]

        return await asyncio.get_running_loop().run_in_executor(self._executor, on_thread)

    @property
    def broken(self) -> bool:
        """The connection was lost (a restart, a failover): the next run opens another."""
        return self._conn is not None and self._conn.broken

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._conn is not None:
                self._conn.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)


def _in_snapshot(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        return work(conn)
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class PgDatabase(Backend):
    """The shared store: a writer and `READERS` readers on one PostgreSQL database."""

    def __init__(self, writer: Worker, readers: Sequence[Worker]) -> None:
        self._writer = writer
        # Savepoints cost a round trip each here: a group goes without them first.
        self._commit = GroupCommit(writer.run, undo_by_retry=True)
        self._all_readers = tuple(readers)
        self._readers: asyncio.Queue[Worker] = asyncio.Queue()
        for reader in readers:
            self._readers.put_nowait(reader)

    @classmethod
    async def open(
        cls, url: str, host_id: str = "", host_timeout: float = 30, readers: int = READERS
    ) -> PgDatabase:
        """Connect and migrate (StoreError, without the password, when it cannot);
        `host_id` is the host whose attempts this store writes and reconciles, and
        `host_timeout` (cluster.host_timeout) when another host is gone."""
        await asyncio.to_thread(migrate_store, url)
        workers = [Worker(f"store-reader-{i}", url, host_id, host_timeout) for i in range(readers)]
        return cls(Worker("store-writer", url, host_id, host_timeout), workers)

    async def close(self) -> None:
        await self._commit.drain()
        await self._writer.close()
        for reader in self._all_readers:
            await reader.close()

    async def write(self, work: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """As the SQLite store's `Database.write`: `work` runs in a savepoint of the next
        transaction (one of its own if `alone`) and its result is returned once
        committed; if it raises, nothing it did is kept. StoreUnavailable: the database
        cannot be reached or refused the commit; nothing is kept."""
        return await self._commit.write(work, alone=alone)

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        reader = await self._readers.get()
        try:
            try:
                return await reader.run(lambda conn: _in_snapshot(conn, work))
            except sqlite3.OperationalError:
                if not reader.broken:
                    raise
            # A connection lost since its last use (PostgreSQL restarted): a read
            # changes nothing, so it is simply run again on a new one.
            return await reader.run(lambda conn: _in_snapshot(conn, work))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the store cannot be read now: {exc}") from exc
        finally:
            self._readers.put_nowait(reader)
