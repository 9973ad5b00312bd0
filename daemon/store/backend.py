"""What the store's entity modules need of a database, as one small interface: run a
write, run a read. The embedded SQLite store (`daemon.store.db.Database`) is one
backend; a shared one (PostgreSQL) implements the same, and every backend must pass
the contract suite in tests/unit/test_store_contract.py.

The promises, which callers rely on and the suite checks:
- `write(work)` runs `work(conn)` in a transaction with no other write running beside
  it; it returns only once that transaction is durably committed; if `work` raises,
  nothing it did is kept and its exception is raised to the caller alone; if the
  commit is refused, `StoreUnavailable` is raised and nothing is kept.
- `read(work)` runs `work(conn)` in one snapshot taken after every write that returned
  before `read` was called (read-your-writes), and shared with no other read.
- Neither runs `work` on the event loop, so a long one does not stall the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
Params = Mapping[str, Any] | Sequence[Any]


class StoreError(Exception):
    """The store cannot be opened or migrated, or is used after it was closed."""


class StoreUnavailable(Exception):
    """A write could not be committed now (disk full, file locked); nothing of it is
    kept, and the same write may succeed later."""


@runtime_checkable
class StoreBackend(Protocol):
    """Runs the store's work on its connections (a DB-API connection: sqlite3 here)."""

    async def write(self, work: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """`alone`: a large write that gets a transaction of its own, so that small
        writes waiting with it do not wait for its commit."""
        ...

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def is_writable(self) -> bool: ...

    async def close(self) -> None: ...


class Backend(ABC):
    """What every backend builds the same way on its own `read` and `write`: one-statement
    reads, and the probe /readyz asks."""

    @abstractmethod
    async def write(self, work: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T: ...

    @abstractmethod
    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def fetch_all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self.read(lambda conn: conn.execute(sql, params).fetchall())

    async def fetch_one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_value(self, sql: str, params: Params = ()) -> Any:
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    async def is_writable(self) -> bool:
        """True when a write transaction can be taken and committed now."""
        try:
            async with asyncio.timeout(2):
                await self.write(lambda conn: conn.execute("SELECT 1").fetchone())
        except (sqlite3.Error, StoreUnavailable, TimeoutError):
            return False
        return True
