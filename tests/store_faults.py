"""A store that refuses writes for a while, as a full disk makes SQLite refuse them."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from daemon.store.db import Database, StoreUnavailable

T = TypeVar("T")
REFUSAL = "the store refused a write: database or disk is full"


def refuse_writes(db: Database, monkeypatch: pytest.MonkeyPatch, times: int) -> list[bool]:
    """The next `times` write transactions of `db` (either kind) fail; returns the list
    that records each refusal."""
    refused: list[bool] = []
    real_transaction, real_write = db.transaction, db.write

    def refuse_now() -> bool:
        if len(refused) < times:
            refused.append(True)
            return True
        return False

    @asynccontextmanager
    async def transaction() -> AsyncIterator[Any]:
        if refuse_now():
            raise StoreUnavailable(REFUSAL)
        async with real_transaction() as tx:
            yield tx

    async def write(work: Callable[[sqlite3.Connection], T]) -> T:
        if refuse_now():
            raise StoreUnavailable(REFUSAL)
        return await real_write(work)

    monkeypatch.setattr(db, "transaction", transaction)
    monkeypatch.setattr(db, "write", write)
    return refused
