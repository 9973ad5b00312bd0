"""The task operations the API offers that need more than one store call."""

from __future__ import annotations

from daemon.clock import now_text
from daemon.models import FinishResult, TaskStatus
from daemon.services import Services
from daemon.store.tasks import CANCELLED_COMMENT, ChangeOutcome


async def cancel_task(services: Services, scheduler_id: int, task_id: int) -> ChangeOutcome:
    """Cancel a task: a waiting one finishes at once; one in a call has the call hung up
    before the answer. Either way it ends `failed`, "cancelled". A finished task is
    refused."""
    task = await services.tasks.get(scheduler_id, task_id)
    if task is None:
        return ChangeOutcome.NOT_FOUND
    if task.status == TaskStatus.FINISHED:
        return ChangeOutcome.WRONG_STATE
    # Finished before the hang-up: the hang-up ends the attempt, and an attempt that
    # ends first would finish the task with the call's result ("A did not answer").
    now = now_text(services.clock)
    if not await services.tasks.finish(task_id, FinishResult.FAILED, CANCELLED_COMMENT, now):
        return ChangeOutcome.WRONG_STATE
    # Also when it was waiting a moment ago: the scheduler may have just started it.
    await services.call_control.hang_up_task(task_id)
    services.scheduler.wake()
    services.outbox.wake()
    return ChangeOutcome.CHANGED
