"""Direct SQL for tests that set up a state the API cannot make (a call's rows, a task in
a given status), written through the store's one write path."""

from __future__ import annotations

import sqlite3
from typing import Any

from daemon.store.backend import StoreBackend


async def execute(db: StoreBackend, statement: str, params: Any = ()) -> list[sqlite3.Row]:
    """Run one statement in a write of its own; returns its rows (RETURNING)."""
    return await db.write(lambda conn: conn.execute(statement, params).fetchall())
