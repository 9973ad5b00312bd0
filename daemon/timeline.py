"""`callbackd call`: the attempt timeline of a task or a call, read from the store file
read-only, so it works with the daemon stopped or running (SQLite WAL readers do not
block the writer).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ami.outcome import CallTracker, Milestone
from daemon.models import CallRecord
from daemon.store.calls import call_from_row, event_headers
from daemon.store.queries import q

# Headers worth a glance in a one-line event, in this order, when the event has them.
KEY_FIELDS = (
    "DestChannel",
    "ChannelStateDesc",
    "DialStatus",
    "Cause",
    "Cause-txt",
    "Response",
    "Reason",
    "BridgeUniqueid",
    "UserEvent",
    "Variable",
)
_TASK = """SELECT id, scheduler_id, status, finish_result, finish_comment, attempts_made,
                  next_attempt FROM tasks WHERE id = ?"""
_ATTEMPTS_OF_TASK = "SELECT * FROM attempts WHERE task_id = ? ORDER BY attempt_no"
_ATTEMPT = "SELECT * FROM attempts WHERE call_uuid = ?"
_GIVEN_BACK = "SELECT time, refusal, count FROM given_back WHERE task_id = ?"


_STEP_WORDS = {
    Milestone.A_ANSWERED: "A answered",
    Milestone.B_ANSWERED: "B answered",
    Milestone.BRIDGED: "A and B bridged",
    Milestone.ENDED: "last channel gone: the call is over",
}


class TimelineError(Exception):
    """The store cannot be read, or holds no such task or call."""


def open_readonly(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise TimelineError(f"{path}: no such store file")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def _get(event: dict[str, str], key: str) -> str:
    # Asterisk spells some headers differently across events (Uniqueid / UniqueID).
    wanted = key.lower()
    return next((v for k, v in event.items() if k.lower() == wanted), "")


def event_line(received_at: str, event: dict[str, str]) -> str:
    name = _get(event, "Event") or _get(event, "Response") or "?"
    fields = " ".join(f"{k}={v}" for k in KEY_FIELDS if (v := _get(event, k)) and k != "Response")
    return f"{received_at}  {name:<18} {_get(event, 'Channel') or '-':<36} {fields}".rstrip()


def _or_dash(value: object) -> str:
    return "-" if value in (None, "") else str(value)


def _seconds(value: int | None) -> str:
    return "-" if value is None else f"{value}s"


def _caller_id(number: str, name: str = "", empty: str = "default") -> str:
    if not number and not name:
        return empty
    return f'"{name}" <{number}>' if name else number


def attempt_lines(call: CallRecord) -> Iterator[str]:
    result = _or_dash(call.result) + (f": {call.result_comment}" if call.result_comment else "")
    yield f"attempt {call.attempt}  call {call.call_uuid}  {call.state}  result {result}"
    yield (
        f"  A {', '.join(call.a_numbers)}  caller ID "
        f"{_caller_id(call.a_caller_id_number, call.a_caller_id_name)}"
        f"  answered {_or_dash(call.answered_a_number)}"
    )
    # An empty B caller ID means B is shown the A number that answered.
    b_caller_id = _caller_id(call.b_caller_id_number, empty="the A number that answered")
    yield f"  B {call.b_number}  caller ID {b_caller_id}"
    yield (
        f"  start {call.start_time_gmt}  A answered {_or_dash(call.a_answer_time_gmt)}"
        f"  bridged {_or_dash(call.bridged_time_gmt)}  end {_or_dash(call.end_time_gmt)}"
    )
    yield (
        f"  duration {_seconds(call.duration)}  bridged {_seconds(call.bridged_duration)}"
        f"  dial status A {_or_dash(call.a_dial_status)} B {_or_dash(call.b_dial_status)}"
        f"  hangup cause A {_or_dash(call.a_hangup_cause)} B {_or_dash(call.b_hangup_cause)}"
    )
    if call.pbx_refusal:
        yield f"  the PBX refused the Originate: {call.pbx_refusal}"
    if call.cancel_time_gmt:
        yield f"  cancelled {call.cancel_time_gmt}: the task was cancelled and its call hung up"


def _task_line(row: sqlite3.Row) -> str:
    outcome = row["status"] + (f"/{row['finish_result']}" if row["finish_result"] else "")
    parts = [f"task {row['id']}  queue {row['scheduler_id']}  {outcome}"]
    if row["finish_comment"]:
        parts.append(f"({row['finish_comment']})")
    parts.append(f"attempts made {row['attempts_made']}")
    if row["next_attempt"]:
        parts.append(f"next attempt {row['next_attempt']}")
    return "  ".join(parts)


def _given_back(conn: sqlite3.Connection, task_id: int) -> list[str]:
    """The task's attempts given back because the PBX could not take calls: they
    rang nobody and used no try, so they have no attempt of their own."""
    row = conn.execute(_GIVEN_BACK, (task_id,)).fetchone()
    if row is None:
        return []
    return [
        f"given back {row['count']} time(s), no try used; the last at {row['time']}: "
        f"the PBX refused the Originate ({row['refusal']})"
    ]


def _events(conn: sqlite3.Connection, call: CallRecord) -> list[str]:
    """The call's events, each marked with the step of the engine's decision it made
    (the same pure tracker replays them), and the decision at the end."""
    rows = conn.execute(q("select_call_events"), {"call_uuid": call.call_uuid}).fetchall()
    if not rows:
        why = f": the PBX refused the Originate ({call.pbx_refusal})" if call.pbx_refusal else ""
        return [f"  no AMI events recorded{why}"]
    tracker = CallTracker(call.call_uuid, {}, call.b_number)
    lines = [f"  AMI events ({len(rows)}), with the engine's decisions:"]
    for row in rows:
        try:
            event = event_headers(row["event"])
        except ValueError:  # JSONDecodeError included
            event = {"Event": "(unreadable)"}
        received = datetime.fromisoformat(row["received_at"]).replace(tzinfo=UTC)
        steps = tracker.feed(event, received)
        marks = "".join(f"  <- {_STEP_WORDS[step]}" for step in steps)
        lines.append("    " + event_line(row["received_at"], event) + marks)
    decided = tracker.outcome()
    if call.result is not None and decided.result != call.result:
        # Events lost (link down, daemon killed) and filled in by reconciling.
        lines.append(f"  decision: {call.result} (the stored events alone say {decided.result})")
    else:
        lines.append(f"  decision: {_or_dash(call.result)}: {call.result_comment}")
    if call.cancel_time_gmt:
        lines[-1] += f"; the task was cancelled at {call.cancel_time_gmt}"
    return lines


def timeline(conn: sqlite3.Connection, ident: str) -> list[str]:
    """The lines to print for `ident`: a task id (all digits) or a call uuid."""
    if ident.isdigit():
        task = conn.execute(_TASK, (int(ident),)).fetchone()
        if task is None:
            raise TimelineError(f"no task {ident} in the store")
        attempts = conn.execute(_ATTEMPTS_OF_TASK, (int(ident),)).fetchall()
    else:
        attempts = conn.execute(_ATTEMPT, (ident,)).fetchall()
        if not attempts:
            raise TimelineError(f"no call {ident} in the store")
        task = conn.execute(_TASK, (attempts[0]["task_id"],)).fetchone()
    lines = [_task_line(task)] if task is not None else []
    if task is not None:
        lines.extend(_given_back(conn, task["id"]))
    if not attempts:
        lines.append("no attempts yet")
    for row in attempts:
        call = call_from_row(row)
        lines.append("")
        lines.extend(attempt_lines(call))
        lines.extend(_events(conn, call))
    return lines
