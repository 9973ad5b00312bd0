"""The task operations the API offers that need more than one store call."""

from __future__ import annotations

from daemon.clock import now_text
from daemon.models import FinishResult, TaskStatus
from daemon.services import Services
from daemon.store.tasks import CANCELLED_COMMENT, ChangeOutcome


async def cancel_task(services: Services, scheduler_id: int, task_id: int) -> ChangeOutcome:
    """Cancel a task: a waiting one finishes at once; one in a call has the call hung up
    first. Either way it ends `failed`, "cancelled". A finished task is refused."""
    task = await services.tasks.get(scheduler_id, task_id)
    if task is None:
        return ChangeOutcome.NOT_FOUND
    if task.status == TaskStatus.FINISHED:
        return ChangeOutcome.WRONG_STATE
    if task.status == TaskStatus.EXECUTED:
        await services.call_control.hang_up_task(task_id)
    now = now_text(services.clock)
    if not await services.tasks.finish(task_id, FinishResult.FAILED, CANCELLED_COMMENT, now):
        return ChangeOutcome.WRONG_STATE
    services.scheduler.wake()
    services.outbox.wake()
    return ChangeOutcome.CHANGED
