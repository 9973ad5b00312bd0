"""`make bench`: every benchmark in one run, on this machine, into one report.

Runs, in this order: the API (bulk POST, list latency and RSS over a big store), AMI
intake against panoramisk, events per callback on the test PBX, dispatch latency,
callbacks/s on the test PBX (callbackd, a raw AMI client, Asterisk call files), the
daemon's memory with many calls up, and the shared PostgreSQL store beside SQLite (the
throwaway one of tools/testpg), and dispatch with calling hours (many queues on their
own intervals beside the same without). Writes bench/out/report-<UTC timestamp>.json (every
benchmark's raw figures, the machine, Python, the git commit, the command) and
report-<timestamp>.md, and prints the Markdown: one row per figure with its target and
the alternative it is compared with. Progress and each benchmark's own printout go to
stderr. A benchmark that fails is reported as such; the others still run.

    .venv/bin/python -m bench.report [--quick]
        [--only api,intake,events,dispatch,pbx,live,pg,intervals]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_ami, bench_api, bench_dispatch, bench_intervals, bench_live, bench_pg
from bench.figures import as_data, code_version, git
from bench.pbx import TestPbx
from bench.report_rows import Row, markdown_table, rows_of
from config.settings import LogSettings
from daemon.logsetup import configure_logging

OUT = Path(__file__).resolve().parent / "out"


@dataclasses.dataclass(frozen=True)
class Sizes:
    tasks: int = 1_000_000
    post_repeat: int = 5
    queries: int = 300
    intake_calls: int = 20_000
    intake_repeat: int = 3
    events_calls: int = 10
    pending: int = 100_000
    due: int = 1_000
    rounds: int = 10
    spacing: int = 12
    pbx_calls: int = 1_000
    pbx_concurrent: int = 200
    pbx_repeat: int = 2
    live_calls: int = 500
    pg_queries: int = 300
    interval_queues: int = 1_000
    interval_held: int = 100_000


# A few minutes instead of most of an hour: checks the whole pipeline, not the targets.
QUICK = Sizes(
    tasks=100_000,
    post_repeat=2,
    queries=100,
    intake_calls=2_000,
    intake_repeat=1,
    events_calls=3,
    pending=10_000,
    due=200,
    rounds=3,
    spacing=6,
    pbx_calls=200,
    pbx_concurrent=50,
    pbx_repeat=1,
    live_calls=100,
    pg_queries=60,
    interval_queues=100,
    interval_held=10_000,
)


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def sections(sizes: Sizes) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Each benchmark of the report, by the name its figures have in the JSON."""
    s = sizes
    return {
        "api": lambda: bench_api.measure(s.tasks, s.post_repeat, s.queries, log=log),
        "intake": lambda: bench_ami.measure_intake(s.intake_calls, s.intake_repeat, "stub", log),
        "events": lambda: bench_ami.measure_pbx_events(s.events_calls),
        "dispatch": lambda: bench_dispatch.measure_fake(
            s.pending, s.due, s.rounds, s.spacing, log=log
        ),
        "pbx": lambda: bench_dispatch.measure_pbx(
            s.pbx_calls, s.pbx_concurrent, s.pbx_repeat, log=log
        ),
        "live": lambda: bench_live.measure(s.live_calls, log),
        "pg": lambda: bench_pg.measure(s.tasks, s.post_repeat, s.pg_queries, log=log),
        "intervals": lambda: bench_intervals.measure(
            s.interval_queues, s.interval_held, s.due, s.rounds, s.spacing, log=log
        ),
    }


# Each benchmark's own printout, shown on stderr as its figures arrive.
PRINTOUTS: dict[str, Callable[[Any], None]] = {
    "api": bench_api.print_figures,
    "intake": bench_ami.print_intake,
    "events": bench_ami.print_pbx_events,
    "dispatch": bench_dispatch.print_fake,
    "pbx": bench_dispatch.print_pbx,
    "live": bench_live.print_figures,
    "pg": bench_pg.print_figures,
    "intervals": bench_intervals.print_figures,
}


@dataclasses.dataclass
class Report:
    started: datetime
    command: str
    sizes: Sizes
    quick: bool
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    machine: dict[str, Any] = dataclasses.field(default_factory=dict)


async def run_all(report: Report, only: list[str]) -> None:
    for name, measure in sections(report.sizes).items():
        if only and name not in only:
            continue
        log(f"## {name}")
        started = time.perf_counter()
        try:
            report.figures[name] = figures = await measure()
        except (Exception, SystemExit) as exc:
            # One broken benchmark (the PBX is down, say) must not cost the others.
            report.errors[name] = "".join(traceback.format_exception_only(exc)).strip()
            log(traceback.format_exc())
        else:
            with contextlib.redirect_stdout(sys.stderr):
                PRINTOUTS[name](figures)
        report.seconds[name] = round(time.perf_counter() - started, 1)


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    mem_total = ""
    with contextlib.suppress(OSError):
        mem_total = Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory": mem_total,
        "load_average_before": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def header_lines(report: Report, finished: datetime) -> list[str]:
    m = report.machine
    before, after = (" ".join(map(str, m[f"load_average_{w}"])) for w in ("before", "after"))
    load = f"{before} before, {after} after"
    return [
        f"# callbackd benchmarks, {report.started:%Y-%m-%d %H:%M} UTC"
        + (" (quick mode: smaller sizes)" if report.quick else ""),
        "",
        f"- command: `{report.command}`",
        f"- code: {code_version()}",
        f"- machine: {m['cpus']} x {m['cpu_model']}, {m['memory']}, kernel {m['kernel']}; "
        f"load average (1/5/15 min) {load}",
        f"- python {platform.python_version()}; test PBX: {TestPbx.from_env().version()}",
        f"- took {(finished - report.started).total_seconds() / 60:.1f} min "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in report.seconds.items())})",
        "",
    ]


def notes(report: Report) -> list[str]:
    lines = [f"- **{name} failed**: {error}" for name, error in report.errors.items()]
    live = report.figures.get("live")
    if live is not None and (live.left_after_cancel or live.hung_up_by_observer):
        lines.append(
            f"- after the live-calls run, {live.left_after_cancel} calls were still up once "
            f"their tasks were cancelled; the observer hung up {live.hung_up_by_observer}"
        )
    if live is not None and set(live.cancel_answers) != {"200"}:
        lines.append(f"- live calls: DELETE answers by HTTP status {live.cancel_answers}")
    if live is not None and live.observer_lost:
        lines.append(
            "- live calls: the observer's AMI connection ended (Asterisk restarted?), "
            "so no check that every call of the run is gone"
        )
    return ["", *lines] if lines else []


def write(report: Report, rows: list[Row], finished: datetime) -> tuple[Path, Path]:
    stamp = f"{report.started:%Y%m%d-%H%M%S}"
    OUT.mkdir(exist_ok=True)
    markdown = "\n".join([*header_lines(report, finished), *markdown_table(rows), *notes(report)])
    md_path = OUT / f"report-{stamp}.md"
    md_path.write_text(markdown + "\n")
    data = {
        "started_utc": report.started.isoformat(),
        "finished_utc": finished.isoformat(),
        "command": report.command,
        "mode": "quick" if report.quick else "full",
        "sizes": dataclasses.asdict(report.sizes),
        "git": {"commit": git("rev-parse", "HEAD").strip(), "version": code_version()},
        "python": sys.version,
        "asterisk": TestPbx.from_env().version(),
        "machine": report.machine,
        "seconds": report.seconds,
        "errors": report.errors,
        "rows": [as_data(row) for row in rows],
        "figures": as_data(report.figures),
    }
    json_path = OUT / f"report-{stamp}.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    return md_path, json_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    parser.add_argument(
        "--only", default="", help=f"comma-separated, of: {', '.join(sections(Sizes()))}"
    )
    args = parser.parse_args()
    only = [name for name in args.only.split(",") if name]
    unknown = set(only) - sections(Sizes()).keys()
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    command = shlex.join([".venv/bin/python", "-m", "bench.report", *sys.argv[1:]])
    report = Report(datetime.now(UTC), command, QUICK if args.quick else Sizes(), args.quick)
    report.machine = machine()
    with open(os.devnull, "w") as devnull:
        # The in-process benchmarks run the daemon's parts with its logging, to nowhere.
        configure_logging(LogSettings(level="info", format="json"), stream=devnull)
        asyncio.run(run_all(report, only))
    report.machine["load_average_after"] = load_average()
    finished = datetime.now(UTC)
    rows = rows_of(report.figures, report.errors)
    md_path, json_path = write(report, rows, finished)
    print(md_path.read_text(), end="")
    log(f"# wrote {md_path.relative_to(OUT.parent.parent)} and {json_path.name}")


if __name__ == "__main__":
    main()
