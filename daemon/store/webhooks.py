"""The webhook outbox in the store. A webhook is queued inside the transaction that
changed its task, so it is stored exactly when its change is (docs/webhooks.md); the
body is rendered then, from the state just written: a late delivery still tells what
was true at the time. The outbox's delivery reads its heads and records each try here."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from enum import StrEnum

from daemon.store.backend import StoreBackend
from daemon.store.calls import call_from_row
from daemon.store.queries import q
from daemon.store.tasks import task_from_row


class WebhookEvent(StrEnum):
    BEFORE = "before"
    BEFORE_AGAIN = "before_again"
    SUCCESS = "success"
    AFTER = "after"


URL_FIELD = {
    WebhookEvent.BEFORE: "url_before",
    WebhookEvent.BEFORE_AGAIN: "url_before_again",
    WebhookEvent.SUCCESS: "url_success",
    WebhookEvent.AFTER: "url_after",
}


def enqueue_webhook_now(
    conn: sqlite3.Connection,
    event: WebhookEvent,
    task_id: int,
    call_uuid: str | None,
    now: str,
) -> bool:
    """Store the task's webhook for `event` if the task has that URL; True if stored.
    Runs inside the caller's write transaction, on the writer thread."""
    task_row = conn.execute(
        q("select_task_with_webhook_url"), _task_with_url(task_id, event)
    ).fetchone()
    if task_row is None or not task_row["webhook_url"]:
        return False
    _enqueue(conn, event, task_row, call_uuid, now)
    return True


def enqueue_webhook_of_row(
    conn: sqlite3.Connection,
    event: WebhookEvent,
    task_row: sqlite3.Row,
    call_uuid: str | None,
    now: str,
) -> bool:
    """`enqueue_webhook_now` for a task row just written (an UPDATE's RETURNING *): the
    row is not read again. True if stored."""
    if not has_webhook(task_row, event):
        return False
    _enqueue(conn, event, task_row, call_uuid, now)
    return True


def has_webhook(task_row: sqlite3.Row, event: WebhookEvent) -> bool:
    """Whether a task row's params give a URL for `event`."""
    return bool(json.loads(task_row["params"]).get(URL_FIELD[event]))


def _enqueue(
    conn: sqlite3.Connection,
    event: WebhookEvent,
    task_row: sqlite3.Row,
    call_uuid: str | None,
    now: str,
) -> None:
    attempt_row = None
    if call_uuid:
        attempt_row = conn.execute(q("select_attempt"), {"call_uuid": call_uuid}).fetchone()
    conn.execute(q("insert_webhook"), _outbox_row(event, task_row, attempt_row, now))


def enqueue_start_webhooks(
    conn: sqlite3.Connection, starts: Sequence[tuple[WebhookEvent, int, str]], now: str
) -> None:
    """`enqueue_webhook_now` for many attempts that just started, (event, task id, call
    uuid) each, in a few statements: their tasks and attempts are read at once and the
    webhooks of the tasks that have the URL written at once, rendered as one by one."""
    if not starts:
        return
    ids = json.dumps(sorted({task_id for _, task_id, _ in starts}))
    tasks = {row["id"]: row for row in conn.execute(q("select_tasks_by_ids"), {"ids": ids})}
    wanted = [
        (event, tasks[task_id], call_uuid)
        for event, task_id, call_uuid in starts
        if task_id in tasks and has_webhook(tasks[task_id], event)
    ]
    if not wanted:
        return
    uuids = json.dumps([call_uuid for _, _, call_uuid in wanted])
    attempts = {
        row["call_uuid"]: row
        for row in conn.execute(q("select_attempts_by_uuids"), {"call_uuids": uuids})
    }
    rows = [
        _outbox_row(event, task_row, attempts.get(call_uuid), now)
        for event, task_row, call_uuid in wanted
    ]
    conn.executemany(q("insert_webhook"), rows)


def _task_with_url(task_id: int, event: WebhookEvent) -> dict[str, object]:
    return {"id": task_id, "url_path": f"$.{URL_FIELD[event]}"}


def _outbox_row(
    event: WebhookEvent, task_row: sqlite3.Row, attempt_row: sqlite3.Row | None, now: str
) -> dict[str, object]:
    task = task_from_row(task_row)
    attempt = None
    if attempt_row is not None:
        attempt = call_from_row(attempt_row).model_dump(
            mode="json", exclude={"events", "events_received_at"}
        )
    body = json.dumps(
        {"event": str(event), "task": task.model_dump(mode="json"), "attempt": attempt},
        separators=(",", ":"),
    )
    url = getattr(task, URL_FIELD[event])
    return {
        "task_id": task_row["id"],
        "event": str(event),
        "url": str(url),
        "body": body,
        "now": now,
    }


class OutboxRepository:
    def __init__(self, db: StoreBackend) -> None:
        self._db = db

    async def heads(self, busy: list[int], n: int) -> list[sqlite3.Row]:
        """The oldest pending webhook of each task not in `busy`, soonest first."""
        params = {"busy": json.dumps(busy), "n": n}
        return await self._db.read(lambda conn: conn.execute(q("outbox_heads"), params).fetchall())

    async def delivered(self, webhook_id: int, now: str, tries: int) -> None:
        params = {"id": webhook_id, "now": now, "tries": tries}
        await self._db.write(lambda conn: conn.execute(q("outbox_delivered"), params))

    async def failed(
        self, webhook_id: int, tries: int, error: str, next_try: str, given_up: bool
    ) -> None:
        params = {
            "id": webhook_id,
            "tries": tries,
            "error": error,
            "next_try": next_try,
            "given_up": int(given_up),
        }
        await self._db.write(lambda conn: conn.execute(q("outbox_failed"), params))
