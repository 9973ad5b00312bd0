"""What the API and the daemon's parts share: the store, the clock, the settings, and
the narrow views of the call engine that other parts need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, cast

from config import Settings
from daemon.asr import GuardState
from daemon.clock import Clock, SystemClock
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


class LiveSettings:
    """The running config: every part reads it through this, so a reload (SIGHUP)
    reaches them all at once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self) -> Settings:
        return self.settings


@dataclass
class Services:
    live: LiveSettings
    db: Database
    clock: Clock
    queues: QueueRepository
    intervals: IntervalRepository
    tasks: TaskRepository
    calls: CallRepository
    ami_status: AmiStatus = field(default_factory=NoAmi)
    call_control: CallControl = field(default_factory=NoCalls)
    scheduler: Wakeup = field(default_factory=NoWakeup)
    asr: AsrStatus = field(default_factory=NoAsr)
    outbox: Wakeup = field(default_factory=NoWakeup)

    @property
    def settings(self) -> Settings:
        return self.live.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.live.settings = settings

    @classmethod
    def over(
        cls,
        settings: Settings | LiveSettings,
        db: Database,
        clock: Clock,
        *,
        ami_status: AmiStatus | None = None,
        call_control: CallControl | None = None,
        scheduler: Wakeup | None = None,
        outbox: Wakeup | None = None,
        asr: AsrStatus | None = None,
    ) -> Services:
        """The API's view over an open store and the call parts; a part not given is
        a placeholder that does nothing (the API alone, in tests)."""
        return cls(
            live=settings if isinstance(settings, LiveSettings) else LiveSettings(settings),
            db=db,
            clock=clock,
            queues=QueueRepository(db, clock),
            intervals=IntervalRepository(db),
            tasks=TaskRepository(db),
            calls=CallRepository(db),
            ami_status=ami_status or NoAmi(),
            call_control=call_control or NoCalls(),
            scheduler=scheduler or NoWakeup(),
            outbox=outbox or NoWakeup(),
            asr=asr or NoAsr(),
        )


async def open_store(settings: Settings) -> Database:
    """The store the daemon runs on: the SQLite file, or the shared PostgreSQL store of
    store.url (whose connections name this host, cluster.host_id)."""
    if settings.store.shared:
        from daemon.store.pg.backend import PgDatabase  # psycopg only when it is used

        shared = await PgDatabase.open(
            settings.store.url.get_secret_value(),
            settings.cluster.resolved_host_id(),
            settings.cluster.host_timeout,
        )
        # The same interface (daemon/store/backend.py, the contract suite checks it).
        return cast(Database, shared)
    return await Database.open(settings.store.path)


async def open_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Open the store and the API's view over it (tests, the API without calls)."""
    return Services.over(settings, await open_store(settings), clock or SystemClock())
