"""Time intervals in the store, always scoped to one client, and the calling hours of a
stored interval as daemon.intervals evaluates them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from functools import lru_cache, partial
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from daemon.intervals import Hours, State, state
from daemon.models import (
    IntervalCondition,
    IntervalInput,
    IntervalOutput,
    IntervalUpdate,
    format_time,
)
from daemon.store.db import Database
from daemon.store.queries import q

_CONDITIONS = TypeAdapter(list[IntervalCondition])


class DeleteOutcome(Enum):
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    IN_USE = "in_use"


@lru_cache(maxsize=4096)
def stored_hours(timezone: str, conditions: str) -> Hours:
    """The hours of an interval as stored (its zone name and conditions JSON); parsed
    once per distinct interval, as the scheduler asks for them on every pass."""
    return Hours(ZoneInfo(timezone), tuple(_CONDITIONS.validate_json(conditions)))


def hours_state(timezone: str | None, conditions: str | None, now: datetime) -> State:
    """Open or closed at `now`, and until when; no interval = always open."""
    if timezone is None or conditions is None:
        return State(True, None)
    return state(stored_hours(timezone, conditions), now)


def opening_text(current: State) -> str | None:
    """`next_open_utc` as the API shows it: only while closed."""
    return None if current.open or current.until is None else format_time(current.until)


def _conditions_json(conditions: list[IntervalCondition]) -> str:
    return json.dumps([c.model_dump(mode="json", exclude_none=True) for c in conditions])


def interval_from_row(row: sqlite3.Row, now: datetime) -> IntervalOutput:
    current = hours_state(row["timezone"], row["conditions"], now)
    return IntervalOutput(
        id=row["id"],
        name=row["name"],
        timezone=row["timezone"],
        conditions=list(stored_hours(row["timezone"], row["conditions"]).conditions),
        create_date_utc=row["create_date"],
        is_open=current.open,
        next_open_utc=opening_text(current),
    )


def _create(fields: Mapping[str, object], conn: sqlite3.Connection) -> sqlite3.Row:
    row = conn.execute(q("insert_interval"), fields).fetchone()
    created: sqlite3.Row = conn.execute(
        q("select_interval"), {"id": row[0], "client_id": fields["client_id"]}
    ).fetchone()
    return created


def _update(
    ids: Mapping[str, object], change: IntervalUpdate, conn: sqlite3.Connection
) -> sqlite3.Row | None:
    row = conn.execute(q("select_interval"), ids).fetchone()
    if row is None:
        return None
    fields = {"name": row["name"], "timezone": row["timezone"]}
    fields |= change.model_dump(exclude_none=True, exclude={"conditions"})
    conditions = row["conditions"]
    if change.conditions is not None:
        conditions = _conditions_json(change.conditions)
    conn.execute(q("update_interval"), {**ids, **fields, "conditions": conditions})
    updated: sqlite3.Row = conn.execute(q("select_interval"), ids).fetchone()
    return updated


def _delete(ids: Mapping[str, object], conn: sqlite3.Connection) -> DeleteOutcome:
    if conn.execute(q("select_interval"), ids).fetchone() is None:
        return DeleteOutcome.NOT_FOUND
    used = conn.execute(q("count_queues_of_interval"), ids).fetchone()
    if used is not None and used[0] > 0:
        return DeleteOutcome.IN_USE
    conn.execute(q("retire_interval_id"), ids)
    conn.execute(q("delete_interval"), ids)
    return DeleteOutcome.DELETED


class IntervalRepository:
    """Every answer to a write is read in the write's own transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, client_id: str, interval: IntervalInput, now: datetime
    ) -> IntervalOutput:
        fields = {
            "client_id": client_id,
            "name": interval.name,
            "timezone": interval.timezone,
            "conditions": _conditions_json(interval.conditions),
            "now": format_time(now),
        }
        return interval_from_row(await self._db.write(partial(_create, fields)), now)

    async def get(self, client_id: str, interval_id: int, now: datetime) -> IntervalOutput | None:
        ids = {"id": interval_id, "client_id": client_id}
        row = await self._db.fetch_one(q("select_interval"), ids)
        return None if row is None else interval_from_row(row, now)

    async def list(self, client_id: str, now: datetime) -> list[IntervalOutput]:
        rows = await self._db.fetch_all(q("select_intervals"), {"client_id": client_id})
        return [interval_from_row(row, now) for row in rows]

    async def update(
        self, client_id: str, interval_id: int, change: IntervalUpdate, now: datetime
    ) -> IntervalOutput | None:
        ids = {"id": interval_id, "client_id": client_id}
        row = await self._db.write(partial(_update, ids, change))
        return None if row is None else interval_from_row(row, now)

    async def delete(self, client_id: str, interval_id: int) -> DeleteOutcome:
        """Delete an interval no queue uses; its id is never given again."""
        ids = {"id": interval_id, "client_id": client_id}
        return await self._db.write(partial(_delete, ids))

    async def owns(self, client_id: str, interval_id: int) -> bool:
        ids = {"id": interval_id, "client_id": client_id}
        return await self._db.fetch_one(q("select_interval"), ids) is not None
