"""Read-only views of the store for the operator console: a task's webhook deliveries
and how many calls each limit holds now.
Nothing here writes; the queries are the console's own, so they sit beside it."""

from __future__ import annotations

import re
import sqlite3
from typing import Literal

from pydantic import BaseModel, Field

from daemon.store.db import Database
from daemon.store.queries import q

_DELIVERIES = """SELECT id, event, url, created, next_try, tries, delivered_at, given_up,
                        last_error
                 FROM outbox WHERE task_id = ? ORDER BY id"""
_HTTP_STATUS_RE = re.compile(r"^HTTP (\d{3})$")


class Delivery(BaseModel):
    """One webhook of a task in the outbox and how its delivery went."""

    id: int = Field(description="The webhook's id in the outbox.")
    event: str = Field(description="before, before_again, success or after.")
    url: str = Field(description="Where it is POSTed.")
    state: Literal["pending", "delivered", "given_up"] = Field(
        description="pending: tries go on; delivered: a 2xx came back; given_up: no more tries."
    )
    tries: int = Field(description="How many times it was sent.")
    created_utc: str = Field(description="When it was queued (UTC).")
    next_try_utc: str | None = Field(description="When it is sent next (UTC), while pending.")
    delivered_utc: str | None = Field(description="When a 2xx came back (UTC).")
    last_status: int | None = Field(
        description="The receiver's HTTP status of the last failed try (a 2xx is not kept)."
    )
    last_error: str = Field(description="Why the last try failed, in plain words.")


def _delivery(row: sqlite3.Row) -> Delivery:
    error = str(row["last_error"])
    status = _HTTP_STATUS_RE.match(error)
    state: Literal["pending", "delivered", "given_up"] = (
        "delivered" if row["delivered_at"] else "given_up" if row["given_up"] else "pending"
    )
    return Delivery(
        id=row["id"],
        event=row["event"],
        url=row["url"],
        state=state,
        tries=row["tries"],
        created_utc=row["created"],
        next_try_utc=row["next_try"] if state == "pending" else None,
        delivered_utc=row["delivered_at"],
        last_status=int(status.group(1)) if status else None,
        last_error=error,
    )


class ConsoleReads:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def deliveries(self, task_id: int) -> list[Delivery]:
        return [_delivery(row) for row in await self._db.fetch_all(_DELIVERIES, (task_id,))]

    async def running(self, scheduler_id: int, extension_id: int | None) -> tuple[int, int, int]:
        """Calls in progress now, each counted as its limit counts them: in the queue
        (over every host of a shared store), on this host's PBX, and on the extension
        profile on this host's PBX (0 without one)."""
        in_queue = int(
            await self._db.fetch_value(q("count_running_in_queue"), {"id": scheduler_id})
        )
        on_this_pbx = int(await self._db.fetch_value(q("count_calls_on_this_pbx")))
        in_extension = 0
        if extension_id is not None:
            params = {"extension_id": extension_id}
            found = await self._db.fetch_value(q("count_calls_in_profile_on_this_pbx"), params)
            in_extension = int(found)
        return in_queue, on_this_pbx, in_extension
