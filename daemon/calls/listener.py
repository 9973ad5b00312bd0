"""Who hears about the engine's attempts: the scheduler (its slots, when to dispatch)
and the webhook outbox (what to send), through `AttemptListeners`."""

from __future__ import annotations

from typing import Protocol

from ami.outcome import Outcome
from daemon.retry import NextStep
from daemon.store.attempts import TaskRecord


class AttemptListener(Protocol):
    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None: ...

    async def call_bridged(self, task_id: int, call_uuid: str) -> None: ...

    async def attempt_withdrawn(self, task_id: int) -> None:
        """The attempt announced by attempt_started was never sent and is undone."""
        ...

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None: ...

    def ready_to_place(self) -> None:
        """Attempts may start (again): AMI is ready, or what held them is gone."""
        ...

    def originates_answered(self) -> None:
        """Asterisk answered the Originates that were on their way."""
        ...


class NoListener:
    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None:
        return None

    async def call_bridged(self, task_id: int, call_uuid: str) -> None:
        return None

    async def attempt_withdrawn(self, task_id: int) -> None:
        return None

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None:
        return None

    def ready_to_place(self) -> None:
        return None

    def originates_answered(self) -> None:
        return None


class AttemptListeners:
    """Tells every added listener, in the order they were added. The engine is built
    with it before the parts that listen exist (they need the engine themselves)."""

    def __init__(self) -> None:
        self._listeners: list[AttemptListener] = []

    def add(self, listener: AttemptListener) -> None:
        self._listeners.append(listener)

    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None:
        for listener in self._listeners:
            await listener.attempt_started(record, call_uuid)

    async def call_bridged(self, task_id: int, call_uuid: str) -> None:
        for listener in self._listeners:
            await listener.call_bridged(task_id, call_uuid)

    async def attempt_withdrawn(self, task_id: int) -> None:
        for listener in self._listeners:
            await listener.attempt_withdrawn(task_id)

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None:
        for listener in self._listeners:
            await listener.attempt_ended(task_id, call_uuid, outcome, step)

    def ready_to_place(self) -> None:
        for listener in self._listeners:
            listener.ready_to_place()

    def originates_answered(self) -> None:
        for listener in self._listeners:
            listener.originates_answered()
