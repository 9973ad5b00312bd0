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

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


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
