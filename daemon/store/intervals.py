"""Time intervals in the store, always scoped to one client, and the calling hours of a
stored interval as daemon.intervals evaluates them."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from enum import Enum
from functools import lru_cache
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


class IntervalRepository:
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
        async with self._db.transaction() as tx:
            cursor = await tx.execute(q("insert_interval"), fields)
            row = await cursor.fetchone()
        assert row is not None
        created = await self.get(client_id, int(row[0]), now)
        assert created is not None
        return created

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
        async with self._db.transaction() as tx:
            cursor = await tx.execute(q("select_interval"), ids)
            row = await cursor.fetchone()
            if row is None:
                return None
            fields = {"name": row["name"], "timezone": row["timezone"]}
            fields |= change.model_dump(exclude_none=True, exclude={"conditions"})
            conditions = row["conditions"]
            if change.conditions is not None:
                conditions = _conditions_json(change.conditions)
            await tx.execute(q("update_interval"), {**ids, **fields, "conditions": conditions})
        return await self.get(client_id, interval_id, now)

    async def delete(self, client_id: str, interval_id: int) -> DeleteOutcome:
        """Delete an interval no queue uses; its id is never given again."""
        ids = {"id": interval_id, "client_id": client_id}
        async with self._db.transaction() as tx:
            cursor = await tx.execute(q("select_interval"), ids)
            if await cursor.fetchone() is None:
                return DeleteOutcome.NOT_FOUND
            cursor = await tx.execute(q("count_queues_of_interval"), ids)
            used = await cursor.fetchone()
            if used is not None and used[0] > 0:
                return DeleteOutcome.IN_USE
            await tx.execute(q("retire_interval_id"), ids)
            await tx.execute(q("delete_interval"), ids)
        return DeleteOutcome.DELETED

    async def owns(self, client_id: str, interval_id: int) -> bool:
        ids = {"id": interval_id, "client_id": client_id}
        return await self._db.fetch_one(q("select_interval"), ids) is not None
