"""The rows of `make bench`'s report: which figure of which benchmark, its target, the
alternative it is compared with, and the Markdown table they make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench.bench_ami import IntakeFigures, UserEvents
from bench.bench_api import ApiFigures
from bench.bench_dispatch import CONTENDERS, DispatchFigures, PbxFigures
from bench.bench_intervals import IntervalFigures
from bench.bench_live import LiveFigures
from bench.bench_pg import BATCH, PgFigures

MB = 1024  # the figures hold kB

# The list queries the target is about; per_page=1000 pages are ten times the work.
LIST_TARGET_PER_PAGE = 100


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    bound: float
    of_ratio: bool = False  # the bound applies to value / alternative

    def met(self, measured: float) -> bool:
        return measured >= self.bound if self.op == ">=" else measured <= self.bound

    def text(self, unit: str) -> str:
        sign = "≥" if self.op == ">=" else "≤"
        if self.of_ratio:
            return f"{sign} {self.bound:.0%} of the alternative"
        return f"{sign} {self.bound:,g} {unit}"


@dataclass
class Row:
    figure: str
    value: float | None
    unit: str
    target: Target | None = None
    alternative: str = ""  # what the value is compared with
    alternative_value: float | None = None
    error: str = ""  # the benchmark failed: why

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.alternative_value:
            return None
        return self.value / self.alternative_value

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        measured = self.ratio if self.target.of_ratio else self.value
        return None if measured is None else self.target.met(measured)


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def api_rows(f: ApiFigures) -> list[Row]:
    rows = []
    if f.post_rates:
        rows.append(
            Row("Bulk submit: one POST of 10,000 tasks", f.post_rate, "tasks/s", Target(">=", 5e4))
        )
    for kind, found in f.lists.items():
        target = None if "per_page=" in kind else Target("<=", 20)
        rows.append(Row(f"List query p99 at {f.tasks:,} tasks: {kind}", found.p99_ms, "ms", target))
    rows.append(
        Row(
            f"RSS at {f.tasks:,} tasks (after the list queries)",
            f.memory_kb["VmRSS"] / MB,
            "MB",
            Target("<=", 150),
            "the same daemon at start",
            f.memory_idle_kb["VmRSS"] / MB,
        )
    )
    return rows


def intake_rows(f: IntakeFigures) -> list[Row]:
    return [
        Row(
            f"AMI event pipeline ({f.calls * f.events_per_call:,} events, store {f.store})",
            f.callbackd_rate,
            "events/s",
            Target(">=", 0.5, of_ratio=True),
            "panoramisk 1.4 parsing alone",
            f.panoramisk_rate,
        )
    ]


def events_rows(f: list[UserEvents]) -> list[Row]:
    filtered, unfiltered = f
    return [
        Row(
            "AMI events per callback (shipped event filter)",
            filtered.events_per_callback,
            "events",
            None,
            "the same user without the filter",
            unfiltered.events_per_callback,
        )
    ]


def dispatch_rows(f: DispatchFigures) -> list[Row]:
    setting = f"{f.due:,} due at once, {f.pending:,} pending"
    first = f"Dispatch latency p99, first in line ({setting})"
    return [
        Row(first, f.first_p99_ms, "ms", Target("<=", 50)),
        Row(f"Dispatch latency p99, whole batch ({setting})", f.batch_p99_ms, "ms"),
    ]


def pbx_rows(f: PbxFigures) -> list[Row]:
    setting = f"{f.calls:,} callbacks, {f.concurrent} at a time"
    runs = f.runs.keys()
    rows = []
    for other, target in (
        ("raw", Target(">=", 0.95, of_ratio=True)),
        ("callfiles", Target(">=", 1.0, of_ratio=True)),
    ):
        if {"callbackd", other} <= runs:
            rows.append(
                Row(
                    f"Callbacks/s on the test PBX ({setting})",
                    f.rate("callbackd"),
                    "callbacks/s",
                    target,
                    CONTENDERS[other],
                    f.rate(other),
                )
            )
    if {"callbackd", "raw"} <= runs:
        rows.append(
            Row(
                "Daemon CPU per callback (this process: scheduler, engine, store)",
                f.cpu_ms("callbackd"),
                "ms",
                Target("<=", 1.2),
                CONTENDERS["raw"],
                f.cpu_ms("raw"),
            )
        )
    if {"callbackd", "callbackd-pg"} <= runs:
        sqlite = "the SQLite store, the same run"
        rows += [
            Row(
                f"Callbacks/s on the test PBX, PostgreSQL store ({setting})",
                f.rate("callbackd-pg"),
                "callbacks/s",
                None,
                sqlite,
                f.rate("callbackd"),
            ),
            Row(
                "Daemon CPU per callback, PostgreSQL store (this process, all threads)",
                f.cpu_ms("callbackd-pg"),
                "ms",
                None,
                sqlite,
                f.cpu_ms("callbackd"),
            ),
        ]
    # What callbackd's call design costs the PBX, against the minimal Originate the
    # raw client sends (A's channel straight into Dial() of B); the raw client's own
    # row compares that with the same call placed by call files.
    asterisk: tuple[tuple[str, str, Target | None], ...] = (
        ("callbackd", "raw", Target("<=", 1.1, of_ratio=True)),
        ("raw", "callfiles", None),
    )
    for contender, other, bound in asterisk:
        ours, theirs = f.asterisk_cpu_ms(contender), f.asterisk_cpu_ms(other)
        if ours is not None and contender in runs:
            rows.append(
                Row(
                    f"Asterisk CPU per callback, driven by {CONTENDERS[contender]}",
                    ours,
                    "ms",
                    bound if theirs is not None else None,
                    CONTENDERS[other] if theirs is not None else "",
                    theirs,
                )
            )
    return rows


def live_rows(f: LiveFigures) -> list[Row]:
    return [
        Row(
            f"RSS at {f.calls} live calls (all bridged)",
            f.memory_kb["VmRSS"] / MB,
            "MB",
            Target("<=", 150),
            "the same daemon before the calls",
            f.idle_kb["VmRSS"] / MB,
        )
    ]


def pg_rows(f: PgFigures) -> list[Row]:
    rows = [
        Row(
            f"Shared store: bulk add of {BATCH:,} tasks, PostgreSQL COPY (store level)",
            f.copy_rate,
            "tasks/s",
            Target(">=", 5e4),
            "the SQLite store's bulk add of the same batch",
            f.sqlite_rate,
        )
    ]
    for kind, found in f.lists.items():
        rows.append(
            Row(
                f"Shared store: list p99 at {f.tasks:,} tasks, PostgreSQL: {kind}",
                found.p99_ms,
                "ms",
                Target("<=", 20),
                "the SQLite store",
                f.sqlite_lists[kind].p99_ms,
            )
        )
    rows.append(
        Row(
            "Shared store: claim latency p99, two hosts claiming one queue (10 a claim)",
            f.claim_p99_ms,
            "ms",
            None,
            "one host alone",
            f.claim_alone_p99_ms,
        )
    )
    return rows


def interval_rows(f: IntervalFigures) -> list[Row]:
    ours, theirs = f.with_intervals, f.without
    setting = (
        f"{f.queues:,} queues each on its own interval, half closed, {f.held:,} due tasks "
        f"held; {ours.dispatch.due:,} due at once"
    )
    alternative = "the same queues and tasks without intervals"
    return [
        Row(
            f"Dispatch latency p99, first in line ({setting})",
            ours.dispatch.first_p99_ms,
            "ms",
            Target("<=", 50),
            alternative,
            theirs.dispatch.first_p99_ms,
        ),
        Row(
            f"Daemon CPU per callback with calling hours ({setting})",
            ours.cpu_ms,
            "ms",
            Target("<=", 1.0, of_ratio=True),
            alternative,
            theirs.cpu_ms,
        ),
    ]


ROWS: dict[str, tuple[str, Callable[[Any], list[Row]]]] = {
    "api": ("Bulk submit, list queries, RSS with many tasks", api_rows),
    "intake": ("AMI event pipeline", intake_rows),
    "events": ("AMI events per callback", events_rows),
    "dispatch": ("Dispatch latency", dispatch_rows),
    "pbx": ("Callbacks/s and CPU per callback", pbx_rows),
    "live": ("RSS with live calls", live_rows),
    "pg": ("Shared PostgreSQL store beside SQLite", pg_rows),
    "intervals": ("Dispatch with calling hours", interval_rows),
}


def rows_of(figures: dict[str, Any], errors: dict[str, str]) -> list[Row]:
    rows = []
    for name, (title, build) in ROWS.items():
        if name in figures:
            rows += build(figures[name])
        elif name in errors:
            rows.append(Row(title, None, "", error=errors[name]))
    return rows


def cell(row: Row) -> list[str]:
    if row.error:
        return [row.figure, "failed", "", "", "", ""]
    value = "" if row.value is None else f"{number(row.value)} {row.unit}"
    alternative = row.alternative
    if row.alternative_value is not None:
        alternative += f": {number(row.alternative_value)} {row.unit}"
    ratio = "" if row.ratio is None else f"{row.ratio:.0%}"
    met = {True: "yes", False: "**no**", None: "—"}[row.met]
    target = row.target.text(row.unit) if row.target else "—"
    return [row.figure, value, target, alternative or "—", ratio or "—", met]


def markdown_table(rows: Sequence[Row]) -> list[str]:
    head = ["figure", "value", "target", "alternative", "ratio", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [text.replace("|", "\\|") for text in cell(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
