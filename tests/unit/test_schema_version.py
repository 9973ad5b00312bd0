"""A store upgraded by a newer callbackd is refused, by both stores, with one line that
says what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.store.db import Database, StoreError
from daemon.store.queries import migrations
from daemon.store.schema import refusal


@pytest.mark.parametrize(
    ("found", "known", "refused"),
    [(0, 5, False), (4, 5, False), (5, 5, False), (6, 5, True), (99, 5, True)],
)
def test_only_a_schema_newer_than_the_migrations_is_refused(
    found: int, known: int, refused: bool
) -> None:
    assert (refusal(found, known, "the store") is not None) == refused


def test_the_refusal_names_both_versions_and_the_fix() -> None:
    assert refusal(7, 5, "the SQLite store") == (
        "the SQLite store has schema version 7, newer than this callbackd knows (5):"
        " upgrade callbackd on this host"
    )


async def test_a_sqlite_store_from_a_newer_callbackd_is_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "callbackd.db"
    newer = migrations()[-1][0] + 1
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")

    with pytest.raises(StoreError, match=f"schema version {newer}, newer than"):
        await Database.open(path)

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (newer,)
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
