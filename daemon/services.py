"""What the API and the daemon's parts share: the store, the clock, the settings, and
the narrow views of the call engine that other parts need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from config import Settings
from daemon.asr import GuardState
from daemon.clock import Clock
from daemon.store.calls import CallRepository
from daemon.store.db import Database
from daemon.store.intervals import IntervalRepository
from daemon.store.queues import QueueRepository
from daemon.store.tasks import TaskRepository


class AmiStatus(Protocol):
    """How the AMI link is doing, as /readyz and /metrics report it."""

    @property
    def logged_in(self) -> bool: ...

    @property
    def ready(self) -> bool:
        """Logged in and able to place calls (calls reconciled, dialplan loaded)."""
        ...

    @property
    def last_error(self) -> str | None: ...


class CallControl(Protocol):
    """What the task service needs from the call engine."""

    async def hang_up_task(self, task_id: int) -> bool:
        """Hang up the task's call in progress; False if it has none."""
        ...


class Wakeup(Protocol):
    """Tells the scheduler that something it waits for may have changed."""

    def wake(self) -> None: ...


class AsrStatus(Protocol):
    """The answer-rate guards, as /readyz shows them."""

    def states(self) -> dict[int | None, GuardState]: ...


class NoAsr:
    def states(self) -> dict[int | None, GuardState]:
        return {}


class NoAmi:
    """The AMI status before the call engine is attached."""

    logged_in = False
    ready = False
    last_error: str | None = "the call engine is not running"


class NoCalls:
    async def hang_up_task(self, task_id: int) -> bool:
        return False


class NoWakeup:
    def wake(self) -> None:
        return None


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    queues: QueueRepository
    intervals: IntervalRepository
    tasks: TaskRepository
    calls: CallRepository
    ami: AmiStatus = field(default_factory=NoAmi)
    call_control: CallControl = field(default_factory=NoCalls)
    scheduler: Wakeup = field(default_factory=NoWakeup)
    asr: AsrStatus = field(default_factory=NoAsr)
    outbox: Wakeup = field(default_factory=NoWakeup)

    @classmethod
    def over(cls, settings: Settings, db: Database, clock: Clock) -> Services:
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            queues=QueueRepository(db, clock),
            intervals=IntervalRepository(db),
            tasks=TaskRepository(db),
            calls=CallRepository(db),
        )
