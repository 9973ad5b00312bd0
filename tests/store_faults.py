"""A store that refuses writes for a while, as a full disk makes SQLite refuse them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

import pytest

from daemon.store.db import Database, StoreUnavailable

T = TypeVar("T")
REFUSAL = "the store refused a write: database or disk is full"


def refuse_writes(db: Database, monkeypatch: pytest.MonkeyPatch, times: int) -> list[bool]:
    """The next `times` writes of `db` fail; returns the list that records each
    refusal."""
    refused: list[bool] = []
    real_write = db.write

    async def write(work: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        if len(refused) < times:
            refused.append(True)
            raise StoreUnavailable(REFUSAL)
        return await real_write(work, alone=alone)

    monkeypatch.setattr(db, "write", write)
    return refused
