"""The answer-rate guard: per extension profile (None = the default profile), the share
of attempts in which an A number answered among those that reached the network, over a
sliding window; below `min_ratio` the profile's due tasks are held and one probe
attempt starts every `probe_interval` until the ratio is back.

`guard_tripped` and `counts_as` are the decisions, pure; `AsrGuard` keeps the windows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ami.outcome import Result
from config import Settings
from config.settings import AsrGuardSettings

Profile = int | None  # an extension_id, None = the default profile

# Attempts that say nothing about the network: the client cancelled, the Originate was
# never sent (given back), the PBX's dialplan refused it, or its end was not seen.
_NOT_COUNTED = frozenset({Result.CANCELLED, Result.REJECTED, Result.INTERRUPTED})


def counts_as(result: Result | str | None, a_answered: bool) -> bool | None:
    """An ended attempt in the ratio: True if an A number answered, False if it reached
    the network unanswered, None if it does not count."""
    if result is None or result in _NOT_COUNTED:
        return None
    return a_answered


def guard_tripped(cfg: AsrGuardSettings, attempts: int, answered: int, tripped: bool) -> bool:
    """Whether the guard holds the profile's tasks, given the window's distinct counted
    attempts and those answered, and whether it held them until now. A window too small
    to judge never trips it; once tripped only a ratio back at `min_ratio` clears it (the
    window drains while tasks are held, and the probes are what refill it)."""
    if cfg.min_ratio <= 0:
        return False
    if tripped:
        return attempts == 0 or answered < cfg.min_ratio * attempts
    return attempts >= cfg.min_attempts and answered < cfg.min_ratio * attempts


@dataclass(frozen=True)
class GuardState:
    """A profile's guard as /readyz shows it."""

    tripped: bool
    attempts: int
    answered: int
    min_ratio: float
    min_attempts: int

    @property
    def ratio(self) -> float | None:
        return self.answered / self.attempts if self.attempts else None


@dataclass(frozen=True)
class Change:
    """The guard of `profile` tripped (True) or cleared (False)."""

    profile: Profile
    tripped: bool
    state: GuardState


class _Window:
    def __init__(self) -> None:
        # call_uuid -> (end time, answered): one entry per attempt, however many A
        # numbers rang in it or events reported it.
        self.attempts: OrderedDict[str, tuple[datetime, bool]] = OrderedDict()
        self.answered = 0
        self.tripped = False
        self.last_probe: datetime | None = None

    def add(self, call_uuid: str, ended: datetime, answered: bool) -> None:
        if call_uuid in self.attempts:
            return
        self.attempts[call_uuid] = (ended, answered)
        self.answered += answered

    def drop_before(self, since: datetime) -> None:
        # Attempts arrive roughly in end order; the few out of order age out a little late.
        while self.attempts:
            uuid, (ended, answered) = next(iter(self.attempts.items()))
            if ended >= since:
                break
            del self.attempts[uuid]
            self.answered -= answered


class AsrGuard:
    """The windows of every profile under the settings in force."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings  # the settings in force: a reload changes the guard
        self._windows: dict[Profile, _Window] = {}

    def config(self, profile: Profile) -> AsrGuardSettings:
        settings = self._settings()
        ext = settings.extensions.get(profile) if profile is not None else None
        return settings.calls.asr_guard.over(ext.asr_guard if ext else None)

    def guarded(self) -> list[Profile]:
        """The profiles whose guard is on."""
        profiles: list[Profile] = [None, *self._settings().extensions]
        return [p for p in profiles if self.config(p).min_ratio > 0]

    def _window(self, profile: Profile) -> _Window:
        return self._windows.setdefault(profile, _Window())

    def record(
        self, profile: Profile, call_uuid: str, ended: datetime, counted: bool | None
    ) -> Change | None:
        """Take an ended attempt into its profile's window; the change it causes."""
        if counted is None:
            return None
        self._window(profile).add(call_uuid, ended, counted)
        return self._evaluate(profile, ended)

    def held(self, now: datetime) -> tuple[set[Profile], list[Change]]:
        """The profiles whose tasks are held now, and the changes found looking."""
        changes = []
        for profile in list(self._windows):
            change = self._evaluate(profile, now)
            if change is not None:
                changes.append(change)
        return {p for p, w in self._windows.items() if w.tripped}, changes

    def may_probe(self, profile: Profile, now: datetime) -> bool:
        window = self._window(profile)
        interval = timedelta(seconds=self.config(profile).probe_interval)
        return window.last_probe is None or now >= window.last_probe + interval

    def probed(self, profile: Profile, now: datetime) -> None:
        self._window(profile).last_probe = now

    def next_probe(self, profile: Profile, now: datetime) -> datetime:
        window = self._window(profile)
        interval = timedelta(seconds=self.config(profile).probe_interval)
        return now if window.last_probe is None else max(now, window.last_probe + interval)

    def state(self, profile: Profile) -> GuardState:
        cfg = self.config(profile)
        window = self._window(profile)
        return GuardState(
            window.tripped, len(window.attempts), window.answered, cfg.min_ratio, cfg.min_attempts
        )

    def states(self) -> dict[Profile, GuardState]:
        """Every guarded profile's state (for /readyz)."""
        return {p: self.state(p) for p in self.guarded()}

    def _evaluate(self, profile: Profile, now: datetime) -> Change | None:
        cfg = self.config(profile)
        window = self._window(profile)
        window.drop_before(now - timedelta(seconds=cfg.window))
        tripped = guard_tripped(cfg, len(window.attempts), window.answered, window.tripped)
        if tripped == window.tripped:
            return None
        window.tripped = tripped
        if tripped:
            window.last_probe = now  # the first probe waits one probe_interval
        return Change(profile, tripped, self.state(profile))
