"""The SQLite store's connections, durability settings, migrations, and its one way to
write and one way to read.

Each connection is a plain `sqlite3` connection owned by one thread (`Worker`): a write
is a function run on the writer's thread inside a `BEGIN IMMEDIATE` transaction
committed with `synchronous=FULL`, so when `write` returns the change is on disk (WAL)
and a 2xx answered after it survives `kill -9` and power loss. Writes submitted while one
is being committed share the next transaction (group commit). A read is a function run
on one of a few reader threads inside a read transaction of its own, begun when the read
starts: it sees every write that returned before, and nothing half written.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from daemon.store.backend import Backend, StoreError, StoreUnavailable
from daemon.store.group_commit import GroupCommit
from daemon.store.queries import migrations
from daemon.store.schema import refusal

T = TypeVar("T")
__all__ = ["Database", "StoreError", "StoreUnavailable", "migrate", "schema_version"]

_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA cache_size = -32000",
)
# Reads that may run at once: list pages and the scheduler's look-ups do not queue
# behind one another's SQLite time (which runs off the GIL), on a two-core box.
READERS = 2


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: every transaction is begun and ended explicitly here.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


class Worker:
    """One sqlite3 connection on one thread of its own: `await run(fn)` runs `fn(conn)`
    there and returns what it returns. aiosqlite offers no public way to run a function
    on its thread; this is that, with nothing else."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def open(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, _connect, path)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise StoreError("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._conn)

    async def close(self) -> None:
        if self._conn is not None:
            await self.run(sqlite3.Connection.close)
            self._conn = None
        self._executor.shutdown(wait=True)


class Database(Backend):
    """One SQLite file: a writer with group commit, and `READERS` readers. It is the
    store backend (`daemon.store.backend.StoreBackend`) for the embedded store."""

    def __init__(self, writer: Worker, readers: Sequence[Worker]) -> None:
        self._writer = writer
        self._readers: asyncio.Queue[Worker] = asyncio.Queue()
        self._all_readers = tuple(readers)
        for reader in readers:
            self._readers.put_nowait(reader)
        self._commit = GroupCommit(lambda group: writer.run(group))

    @classmethod
    async def open(cls, path: Path, readers: int = READERS) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True)
        opened: list[Worker] = []
        try:
            writer = Worker("store-writer")
            opened.append(writer)
            await writer.open(path)
            await writer.run(migrate)
            for i in range(readers):
                reader = Worker(f"store-reader-{i}")
                opened.append(reader)
                await reader.open(path)
        except (sqlite3.Error, StoreError) as exc:
            for worker in opened:
                await worker.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        return cls(opened[0], opened[1:])

    async def close(self) -> None:
        await self._commit.drain()
        for reader in self._all_readers:
            await reader.close()
        await self._writer.close()

    async def write(self, work: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """Run `work` on the writer's thread inside a durable transaction and return
        what it returns once committed; if it raises, nothing it did is kept and the
        exception is raised here. Writes that come while one is committed go together
        into the next transaction, each in a savepoint of its own; `alone` gives a large
        write (a bulk add) a transaction of its own, after the small ones waiting with
        it. StoreUnavailable: the store refused the commit, and nothing is kept."""
        return await self._commit.write(work, alone=alone)

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on a free reader's thread inside one read transaction begun now,
        so that all its queries see the same state: every write that returned before
        this call, and none that is not committed."""
        reader = await self._readers.get()
        try:
            return await reader.run(lambda conn: _in_snapshot(conn, work))
        finally:
            self._readers.put_nowait(reader)


def _in_snapshot(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    conn.execute("BEGIN")  # deferred: the snapshot is taken at the first read
    try:
        return work(conn)
    finally:
        conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection, steps: Iterable[tuple[int, str]] | None = None) -> int:
    """Apply every migration newer than the file's `user_version`, each in its own
    transaction; returns the version the file is at afterwards."""
    current = schema_version(conn)
    steps = list(migrations() if steps is None else steps)
    refused = refusal(current, max((v for v, _ in steps), default=0), "the SQLite store")
    if refused is not None:
        raise StoreError(refused)
    for version, script in steps:
        if version <= current:
            continue
        # executescript commits first; the script runs inside our own BEGIN ... COMMIT.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = version
    return current
