"""The task operations the API offers that need more than one store call."""

from __future__ import annotations

import structlog

from daemon.clock import now_text
from daemon.services import Services
from daemon.store.tasks import Changed, ChangeOutcome

log = structlog.get_logger("callbackd.tasks")


async def cancel_task(services: Services, scheduler_id: int, task_id: int) -> Changed:
    """Cancel a task: a waiting one finishes at once; one in a call has the call hung up
    before the answer. Either way it ends `failed`, "cancelled". A finished task is
    refused. The answer holds the task as the cancel left it."""
    # Finished before the hang-up: the hang-up ends the attempt, and an attempt that
    # ends first would finish the task with the call's result ("A did not answer").
    changed = await services.tasks.cancel(scheduler_id, task_id, now_text(services.clock))
    if changed.outcome is not ChangeOutcome.CHANGED:
        return changed
    # Also when it was waiting a moment ago: the scheduler may have just started it.
    in_call = await services.call_control.hang_up_task(task_id)
    # With the call's `after` webhook to come once it has ended (its end is logged too).
    log.info("task cancelled", task_id=task_id, scheduler_id=scheduler_id, call_hung_up=in_call)
    services.scheduler.wake()
    services.outbox.wake()
    return changed
