"""Call events written straight into a store, as the engine stores them (one row per
batch, migration 0004), for tests that need a call history without placing the call."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ami.events import AmiEvent
from daemon.store.attempts import stored_form
from daemon.store.queries import q

INSERT_EVENT_BATCH = q("insert_call_event_batch")
COUNT_STORED_EVENTS = "SELECT coalesce(sum(json_array_length(events)), 0) FROM call_event_batches"


def event_batch(
    call_uuid: str, last_seq: int, timed_events: Sequence[tuple[str, AmiEvent]]
) -> tuple[str, int, str]:
    """The row of one batch: `timed_events` are (received_at, event) in arrival order,
    the last of them numbered `last_seq`."""
    return (
        call_uuid,
        last_seq,
        json.dumps([[at, stored_form(event)] for at, event in timed_events]),
    )
