"""The call engine: places attempts through AMI, follows each call by its events, and
closes it with the outcome the events show.

One consumer reads the AMI event queue in arrival order and feeds each event to the
`CallTracker` of its call (routed by Linkedid/Uniqueid, which carry the call uuid).
Store writes run as supervised side tasks so a slow disk never stalls event intake.
After every (re)login, and for calls whose events stopped coming, the engine asks
Asterisk which channels exist (`CoreShowChannels`): a call still up is followed to its
end, one that is gone is closed ("interrupted" unless it was already bridged).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import structlog

from ami.client import (
    AmiActionError,
    AmiClient,
    AmiError,
    AmiNotConnected,
    AmiSentButUnanswered,
)
from ami.events import AmiEvent, ConnectionChange, linkedid, name, uniqueid
from ami.originate import (
    REQUIRED_CONTEXTS,
    CallRequest,
    a_dial_strings,
    channel,
    dial_string_of,
    originate_fields,
)
from ami.outcome import A_SIDE_SUFFIX, COMMENTS, CallTracker, Milestone, Outcome, Result
from config import Settings
from daemon import notify
from daemon.clock import Clock
from daemon.logsetup import call_log
from daemon.metrics import Metrics
from daemon.models import format_time, parse_time
from daemon.plan import plan_attempt, profile_for
from daemon.retry import NextStep
from daemon.store.attempts import (
    Answer,
    AttemptRepository,
    Claim,
    LiveAttempt,
    StoredEvent,
    TaskRecord,
)
from daemon.store.db import StoreUnavailable
from daemon.store.until_stored import until_stored

log = structlog.get_logger("callbackd.engine")
T = TypeVar("T")

EVENT_FLUSH_INTERVAL = 0.5
# The manager's answer to an Originate while Asterisk shuts down or restarts.
_TRANSIENT_REFUSAL = "shutting down"
# Its answer to an AMI user without the `originate` write class: true of every call.
_NOT_PERMITTED = "permission denied"
# How long no attempt starts after an Originate was not permitted; then one is tried.
NOT_PERMITTED_PAUSE = timedelta(seconds=60)
WATCHDOG_INTERVAL = 5.0


class AttemptListener(Protocol):
    """Who hears about attempts: the scheduler (slots) and the webhook outbox."""

    async def attempt_started(self, record: TaskRecord, call_uuid: str) -> None: ...

    async def call_bridged(self, task_id: int, call_uuid: str) -> None: ...

    async def attempt_withdrawn(self, task_id: int) -> None:
        """The attempt announced by attempt_started was never sent and is undone."""
        ...

    async def attempt_ended(
        self, task_id: int, call_uuid: str, outcome: Outcome, step: NextStep | None
    ) -> None: ...


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


class CallTiming(Protocol):
    """The ring and talk times a call was placed with: its CallRequest, or the profile
    of a call adopted after a restart."""

    @property
    def a_ring_timeout(self) -> int: ...

    @property
    def b_ring_timeout(self) -> int: ...

    @property
    def max_talk_time(self) -> int: ...


@dataclass
class ActiveCall:
    call_uuid: str
    task_id: int
    attempt_no: int
    tracker: CallTracker
    next_seq: int = 1
    pending_events: list[StoredEvent] = field(default_factory=list)
    last_event_at: datetime | None = None
    # How long the call may be quiet on its own: the ring phase (A, then B) before the
    # bridge, the maximum talk time (0 = none) after it.
    ring_phase: timedelta = timedelta(0)
    max_talk: timedelta = timedelta(0)
    closing: bool = False
    # Set by a cancel: a channel of this call that appears from now on is hung up, and
    # an Originate not sent yet is not sent at all.
    cancelled: bool = False
    # Set when the call was found gone without the events of its end (link down,
    # daemon restarted, Asterisk restarted): its result is not known.
    interrupted: bool = False
    # A answered and this is not stored yet: it goes with the bridge, the next event
    # flush or the end, whichever comes first (only crash recovery reads it earlier).
    unsaved_answer: Answer | None = None
    _logger: Any = None

    def log(self) -> Any:
        # Bound once per call: binding costs as much as rendering a line. The level
        # and the format are looked up per line, so a reload still applies.
        if self._logger is None:
            self._logger = call_log(self.task_id, self.attempt_no, self.call_uuid)
        return self._logger


class CallEngine:
    def __init__(
        self,
        ami: AmiClient,
        attempts: AttemptRepository,
        clock: Clock,
        settings: Callable[[], Settings],
        listener: AttemptListener | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self.on_ready: Callable[[], None] = lambda: None
        # Tasks whose Originate is on its way: the webhook outbox holds their webhooks
        # until Asterisk answers it, because an attempt Asterisk refuses while it stops
        # is given back and its `before` webhook withdrawn; the panel must never hear
        # of an attempt that rang nobody. `on_originates_answered` lets the outbox go on.
        self.originating: set[int] = set()
        self.on_originates_answered: Callable[[], None] = lambda: None
        self.ami = ami
        self._attempts = attempts
        self._clock = clock
        self._settings = settings
        self.listener: AttemptListener = listener or NoListener()
        self.calls: dict[str, ActiveCall] = {}
        self._ready = asyncio.Event()
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.dialplan_error: str | None = None
        # Set while Originates are not permitted (manager.conf), with when that was seen.
        self.originate_error: str | None = None
        self._not_permitted_at: datetime | None = None
        self._logins = 0
        self.events_routed = 0
        self._last_time: datetime | None = None
        self._last_text = ""

    # --- status -------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Logged in, reconciled, the dialplan contexts loaded, Originate permitted
        (what /readyz reports)."""
        return self.may_start and self.originate_error is None

    @property
    def may_start(self) -> bool:
        """Whether the scheduler may start attempts now: as `ready`, except that after
        an Originate was not permitted, the next one is tried once the pause is over."""
        return self._following and self.dialplan_error is None and self._not_permitted_at is None

    @property
    def _following(self) -> bool:
        """Logged in and reconciled: the calls in progress are followed by their events."""
        return self._ready.is_set() and self.ami.logged_in

    @property
    def logged_in(self) -> bool:
        return self.ami.logged_in

    @property
    def last_error(self) -> str | None:
        if self.dialplan_error:
            return self.dialplan_error
        if self.originate_error:
            return self.originate_error
        if self.ami.logged_in and not self._ready.is_set():
            return "reconciling calls after login"
        return self.ami.last_error

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - bounded waiting is the point
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return self.ready

    # --- placing and hanging up ----------------------------------------------------

    async def place(self, record: TaskRecord) -> str | None:
        """Start the task's next attempt; see `place_many`."""
        started = await self.place_many([record])
        return started.get(record.id)

    async def place_many(self, records: Sequence[TaskRecord]) -> dict[int, str]:
        """Start the next attempt of each task: claim them and write their attempt rows
        in one transaction, then send each one Originate (all in flight together).
        Returns task id -> call uuid of what started; a task that is no longer waiting,
        or all of them while AMI is not ready, start nothing and use no attempt."""
        if not self.may_start or not records:
            return {}
        now = self._clock.now()
        settings = self._settings()
        planned = []
        for record in records:
            attempt_no = record.attempts_made + 1
            call_uuid = str(uuid.uuid4())
            request, plan = plan_attempt(record, settings, attempt_no, call_uuid)
            claim = Claim(record.id, record.scheduler_id, call_uuid, attempt_no, plan)
            planned.append((record, request, claim))
        self.originating.update(record.id for record, _, _ in planned)
        try:
            return await self._send_claimed(planned, now)
        finally:
            self.originating.difference_update(record.id for record, _, _ in planned)
            self.on_originates_answered()

    async def _send_claimed(
        self, planned: Sequence[tuple[TaskRecord, CallRequest, Claim]], now: datetime
    ) -> dict[int, str]:
        claimed = await self._attempts.claim([claim for _, _, claim in planned], now)
        calls = []
        for record, request, claim in planned:
            if claim.call_uuid not in claimed:
                continue
            call = self._follow(
                claim.call_uuid, record.id, claim.attempt_no, a_dial_strings(request), request
            )
            call.tracker.b_number = request.b_number
            call.last_event_at = now
            await self.listener.attempt_started(record, claim.call_uuid)
            calls.append((record, request, call))
        sent = await asyncio.gather(*(self._originate(*c) for c in calls))
        return {
            record.id: call.call_uuid
            for (record, _, call), ok in zip(calls, sent, strict=True)
            if ok
        }

    async def _originate(self, record: TaskRecord, request: CallRequest, call: ActiveCall) -> bool:
        """Send the attempt's one Originate; False if it was certainly not sent."""
        call_uuid = call.call_uuid
        if call.cancelled:
            call.log().info("cancelled before the Originate; nothing is sent")
            self._close(call, self._clock.now())
            return True
        try:
            await self.ami.originate(originate_fields(request))
            if self.originate_error is not None:
                self.originate_error = None
                log.info("originate permitted again; ready")
        except AmiNotConnected:
            # Certainly not sent: give the attempt back.
            await self._give_back(record, call_uuid)
            return False
        except AmiActionError as exc:
            if _TRANSIENT_REFUSAL in exc.message.lower():
                # Asterisk refused it only because it is stopping: nothing rang, so the
                # attempt is given back and the task starts again once AMI is back.
                call.log().info("originate refused while Asterisk stops; attempt given back")
                await self._give_back(record, call_uuid)
                return False
            if _NOT_PERMITTED in exc.message.lower():
                # Every Originate would meet the same answer: burning each due task on
                # it would fail them all. The attempt is given back and none starts
                # until the pause is over.
                self._originates_not_permitted(exc.message)
                await self._give_back(record, call_uuid)
                return False
            call.log().warning("originate refused", reason=exc.message)
            call.tracker.originate_failed = True
            call.tracker.rejected = True
            self._close(call, self._clock.now())
        except AmiSentButUnanswered:
            # It may ring: never resend. Reconcile or the watchdog settles it.
            call.log().warning("originate unanswered; the call is followed by its events")
        call.log().info("originate sent", a_numbers=request.a_numbers, b_number=request.b_number)
        return True

    async def _give_back(self, record: TaskRecord, call_uuid: str) -> None:
        """Undo a claim whose Originate rang nobody: no attempt is used."""
        call = self.calls.pop(call_uuid)
        now = self._clock.now()
        await self._stored(call, lambda: self._attempts.release(record.id, call_uuid, now))
        await self.listener.attempt_withdrawn(record.id)

    def _originates_not_permitted(self, message: str) -> None:
        error = (
            f"the PBX refused the Originate ({message}): the AMI user needs 'originate'"
            " in its write= classes in manager.conf, then 'manager reload'"
        )
        if self.originate_error is None:  # once, not at every try
            log.error("originate not permitted; no attempt starts", error=error)
            notify.status(f"not ready: {error}")
        self.originate_error = error
        self._not_permitted_at = self._clock.now()

    def _retry_originates(self, now: datetime) -> None:
        """After the pause, let the next dispatch try again (a fixed manager.conf needs
        no restart of callbackd): accepted, the error is cleared; refused, it pauses
        again. Until then /readyz keeps naming it."""
        if (
            self._not_permitted_at is not None
            and now - self._not_permitted_at >= NOT_PERMITTED_PAUSE
        ):
            self._not_permitted_at = None
            log.info("trying the Originate again")
            self.on_ready()

    async def hang_up_task(self, task_id: int) -> bool:
        """Hang up every channel of the task's call in progress."""
        calls = [c for c in self.calls.values() if c.task_id == task_id and not c.closing]
        for call in calls:
            call.cancelled = True
            for uid in sorted(call.tracker.live_channels | {call.call_uuid}):
                await self._hang_up_channel(uid)
        return bool(calls)

    async def _hang_up_channel(self, uid: str) -> None:
        # Already gone, or AMI is down: the call ends or is reconciled anyway.
        with contextlib.suppress(AmiError):
            await self.ami.hangup(uid)

    # --- the event consumer ----------------------------------------------------------

    async def run(self) -> None:
        """Consume AMI events until cancelled, with the event flusher and the watchdog
        beside it. If any of them dies, the engine stops loudly."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._consume())
            group.create_task(self._every(EVENT_FLUSH_INTERVAL, self._flush_events))
            group.create_task(self._every(WATCHDOG_INTERVAL, self.watch))

    async def _consume(self) -> None:
        events_counter = self._metrics.ami_events if self._metrics is not None else None
        queue = self.ami.events
        while True:
            item = await queue.get()
            # What is queued already came in with it (one read carries many events):
            # they share one reading of the clock.
            at = self._clock.now()
            while True:
                if isinstance(item, ConnectionChange):
                    await self._on_connection_change(item)
                    at = self._clock.now()
                else:
                    if events_counter is not None:
                        events_counter.inc()
                    self.route(item, at)
                if queue.empty():
                    break
                item = queue.get_nowait()

    def route(self, ev: AmiEvent, at: datetime) -> None:
        call = self.calls.get(linkedid(ev)) or self.calls.get(
            uniqueid(ev).removesuffix(A_SIDE_SUFFIX)
        )
        if call is None:
            return
        self.events_routed += 1
        call.last_event_at = at
        call.pending_events.append(StoredEvent(call.call_uuid, call.next_seq, self._text(at), ev))
        call.next_seq += 1
        for milestone in call.tracker.feed(ev, at):
            self._on_milestone(call, milestone, at)
        if call.cancelled and name(ev) == "Newchannel":
            # A channel that came up after the cancel (the Originate was in flight).
            self._spawn(self._hang_up_channel(uniqueid(ev)))

    def _text(self, at: datetime) -> str:
        # The events of one read share their arrival time: format it once.
        if at is not self._last_time:
            self._last_time, self._last_text = at, format_time(at)
        return self._last_text

    def _on_milestone(self, call: ActiveCall, milestone: Milestone, at: datetime) -> None:
        tracker = call.tracker
        # At info a call logs two lines, when it starts and when it ends (with what
        # happened); the steps between are debug lines, and stored with its events.
        if milestone is Milestone.A_ANSWERED:
            number = tracker.answered_a.number if tracker.answered_a else None
            call.log().debug("A answered", number=number)
            call.unsaved_answer = (at, number)
        elif milestone is Milestone.BRIDGED:
            call.log().debug("A and B bridged")
            # Stored at once, with its `success` webhook and the answer if that is not
            # stored yet: after a crash, a call found gone counts as a success only if
            # its bridge was stored.
            answer, call.unsaved_answer = call.unsaved_answer, None
            self._spawn(self._bridged(call, at, answer))
        elif milestone is Milestone.ENDED:
            self._close(call, at)

    def _save_answer(self, call: ActiveCall) -> None:
        if call.unsaved_answer is not None:
            at, number = call.unsaved_answer
            call.unsaved_answer = None
            self._spawn(
                self._stored(call, lambda: self._attempts.mark_answered(call.call_uuid, at, number))
            )

    async def _bridged(self, call: ActiveCall, at: datetime, answer: Answer | None) -> None:
        await self._stored(
            call, lambda: self._attempts.mark_bridged(call.call_uuid, call.task_id, at, answer)
        )
        await self.listener.call_bridged(call.task_id, call.call_uuid)

    # --- closing an attempt ------------------------------------------------------------

    def _close(self, call: ActiveCall, at: datetime) -> None:
        if call.closing:
            return
        call.closing = True
        if call.tracker.end_time is None:
            call.tracker.end_time = at
        self._spawn(self._finish(call))

    async def _finish(self, call: ActiveCall) -> None:
        outcome = call.tracker.outcome()
        if not outcome.success and (call.cancelled or call.interrupted):
            result = Result.CANCELLED if call.cancelled else Result.INTERRUPTED
            outcome = replace(outcome, result=result, comment=COMMENTS[result])
        end = outcome.end_time or self._clock.now()
        events, call.pending_events = call.pending_events, []
        # The store decides the task's next state (daemon/lifecycle.py) in the same write.
        ended = await self._stored(
            call, lambda: self._attempts.end(call.call_uuid, call.task_id, outcome, end, events)
        )
        self.calls.pop(call.call_uuid, None)
        step = ended.step
        call.log().info(
            "attempt ended",
            result=str(outcome.result),
            comment=outcome.comment,
            answered_a_number=outcome.answered_a_number,
            task_finished=step is None or step.finished,
            next_attempt=format_time(step.next_attempt) if step and step.next_attempt else None,
        )
        if ended.closed and self._metrics is not None:
            self._metrics.attempts.labels(outcome=str(outcome.result)).inc()
        await self.listener.attempt_ended(call.task_id, call.call_uuid, outcome, step)

    # --- reconcile, watchdog, event flushing ----------------------------------------------

    async def _on_connection_change(self, change: ConnectionChange) -> None:
        if self._metrics is not None:
            self._metrics.ami_connected.set(1 if change.logged_in else 0)
        if not change.logged_in:
            self._ready.clear()
            notify.status(f"AMI disconnected ({change.reason}); no call starts")
            log.warning("AMI link down; no attempt starts until it is back", reason=change.reason)
            return
        if self._logins and self._metrics is not None:
            self._metrics.ami_reconnects.inc()
        self._logins += 1
        try:
            await self._check_dialplan()
            await self.reconcile()
        except AmiError as exc:
            log.warning("reconcile after login failed; waiting for the next login", error=str(exc))
            return
        self._ready.set()
        notify.status(f"AMI ready; following {len(self.calls)} call(s)")
        log.info("AMI ready", calls_followed=len(self.calls))
        self.on_ready()

    async def _check_dialplan(self) -> None:
        if not self._settings().ami.check_dialplan:
            return
        missing = []
        for context in REQUIRED_CONTEXTS:
            try:
                await self.ami.action({"Action": "ShowDialPlan", "Context": context})
            except AmiActionError:
                missing.append(context)
        error = None
        if missing:
            error = (
                f"dialplan context(s) {', '.join(missing)} not loaded on the PBX: include "
                "config/asterisk/extensions_callbackd.conf and run 'dialplan reload'"
            )
        if error is not None and error != self.dialplan_error:
            log.error("dialplan check failed", error=error)  # once, not at every recheck
            notify.status(f"not ready: {error}")
        self.dialplan_error = error

    async def reconcile(self, only: set[str] | None = None) -> None:
        """Match the attempts that are in a call with the channels Asterisk has."""
        channels = await self.ami.core_show_channels()
        by_call: dict[str, set[str]] = {}
        for ev in channels:
            by_call.setdefault(linkedid(ev), set()).add(uniqueid(ev))
        if only is None:
            for live in await self._attempts.live():
                if live.call_uuid not in self.calls:
                    await self._adopt(live)
        now = self._clock.now()
        for call in list(self.calls.values()):
            if call.closing or (only is not None and call.call_uuid not in only):
                continue
            present = by_call.get(call.call_uuid, set())
            if present:
                call.tracker.live_channels = set(present)
                call.tracker.seen_channel = True
                call.last_event_at = now
                # A talk looked at by the watchdog is routine, once every timeout.
                routine = only is not None and call.tracker.bridged_time is not None
                line = call.log().debug if routine else call.log().info
                line("call still up; following it", channels=len(present))
                listed = [ev for ev in channels if linkedid(ev) == call.call_uuid]
                for milestone in call.tracker.catch_up(listed, now):
                    self._on_milestone(call, milestone, now)
                if call.cancelled:
                    # Cancelled while the link was down: its hang-up never got through.
                    for uid in sorted(present):
                        await self._hang_up_channel(uid)
            else:
                call.log().warning("call gone without its end; closing it as interrupted")
                call.interrupted = True
                self._close(call, now)

    async def _adopt(self, live: LiveAttempt) -> None:
        """Follow an attempt that a previous run of the daemon started."""
        record = await self._attempts.task(live.task_id)
        extension_id = record.task.extension_id if record is not None else None
        profile = profile_for(self._settings(), extension_id)
        dial_strings = {
            dial_string_of(channel(profile.a_channel, n)): n for n in live.plan.a_numbers
        }
        call = self._follow(live.call_uuid, live.task_id, live.attempt_no, dial_strings, profile)
        call.next_seq = await self._attempts.next_event_seq(live.call_uuid)
        call.tracker.b_number = live.plan.b_number
        call.tracker.restore(
            parse_time(live.a_answer_time) if live.a_answer_time else None,
            live.answered_a_number,
            parse_time(live.bridged_time) if live.bridged_time else None,
        )

    def _follow(
        self,
        call_uuid: str,
        task_id: int,
        attempt_no: int,
        dial_strings: dict[str, str],
        timing: CallTiming,
    ) -> ActiveCall:
        call = ActiveCall(call_uuid, task_id, attempt_no, CallTracker(call_uuid, dial_strings))
        call.ring_phase = timedelta(seconds=timing.a_ring_timeout + timing.b_ring_timeout)
        call.max_talk = timedelta(seconds=timing.max_talk_time)
        self.calls[call_uuid] = call
        return call

    async def watch(self) -> None:
        """Calls whose events stopped coming are checked against Asterisk; a missing
        dialplan is looked for again, so loading it needs no restart of callbackd."""
        if self.dialplan_error is not None and self.ami.logged_in:
            with contextlib.suppress(AmiError):
                await self._check_dialplan()
            if self.dialplan_error is None:
                log.info("dialplan contexts found; ready")
                self.on_ready()
        self._retry_originates(self._clock.now())
        await self.check_silent_calls()

    async def check_silent_calls(self) -> None:
        """Check against Asterisk's channel list the calls quiet for longer than they
        may be (`calls.event_silence_timeout` past their ring phase, or past the maximum
        talk time once bridged): one gone is closed, one still up is followed on. A
        talk sends no events, so a long call is looked at once every timeout."""
        now = self._clock.now()
        timeout = timedelta(seconds=self._settings().calls.event_silence_timeout)
        silent = {
            c.call_uuid
            for c in self.calls.values()
            if not c.closing
            and c.last_event_at is not None
            and now - c.last_event_at
            > (c.ring_phase if c.tracker.bridged_time is None else c.max_talk) + timeout
        }
        if silent and self._following:
            try:
                await self.reconcile(only=silent)
            except AmiError as exc:
                log.warning("watchdog check failed", error=str(exc))

    async def _flush_events(self) -> None:
        for call in self.calls.values():
            if not call.closing:
                self._save_answer(call)  # shares the transaction of the events
        taken = [
            (call, len(call.pending_events))
            for call in self.calls.values()
            if not call.closing and call.pending_events
        ]
        batch = [ev for call, n in taken for ev in call.pending_events[:n]]
        await self._attempts.save_events(batch)
        # Dropped from the buffers only once stored; events that came meanwhile stay.
        for call, n in taken:
            call.pending_events = call.pending_events[n:]

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except StoreUnavailable as exc:
                # A full disk or a locked file passes; the job runs again next tick.
                log.error("store refused a write; trying again", job=job.__name__, error=str(exc))

    async def _stored(self, call: ActiveCall, write: Callable[[], Awaitable[T]]) -> T:
        """A call's answer, bridge, end or give-back must reach the disk: while the
        store refuses writes (a full disk) it is tried again, and the call stays known
        to the engine until it is stored."""
        return await until_stored(
            self._clock, write, log, task_id=call.task_id, call_uuid=call.call_uuid
        )

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[None]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine side task failed", exc_info=task.exception())

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - the shutdown grace
        """Wait for the store writes in flight (shutdown, tests). Writes a refusing
        store still holds back after `timeout` are dropped: the next start reconciles
        their calls from what is on disk."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    while self._side_tasks:
                        await asyncio.gather(*list(self._side_tasks), return_exceptions=True)
                    # May hand answers to new side tasks.
                    await until_stored(self._clock, self._flush_events, log)
                    if not self._side_tasks:
                        return
        except TimeoutError:
            left = list(self._side_tasks)
            log.error(
                "store writes left undone at shutdown; the next start reconciles them",
                writes=len(left),
            )
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
