"""What every benchmark shares to hand its figures back: the figures are dataclasses,
returned by each benchmark's `measure...()` function (bench/report.py collects them in
one run) and, from the command line, written as JSON with `--json PATH`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Where a benchmark writes the progress lines it shows while it runs.
Log = Callable[[str], None]


def as_data(figures: Any) -> Any:
    """Dataclasses (with their properties, e.g. a computed rate) as plain JSON data."""
    if dataclasses.is_dataclass(figures) and not isinstance(figures, type):
        data = {f.name: as_data(getattr(figures, f.name)) for f in dataclasses.fields(figures)}
        for attr, value in vars(type(figures)).items():
            if isinstance(value, property):
                data[attr] = as_data(getattr(figures, attr))
        return data
    if isinstance(figures, dict):
        return {str(key): as_data(value) for key, value in figures.items()}
    if isinstance(figures, list | tuple):
        return [as_data(value) for value in figures]
    return figures


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")


def write_json(path: Path | None, figures: Any) -> None:
    if path is not None:
        path.write_text(json.dumps(as_data(figures), indent=2) + "\n")


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile the benchmarks have always reported."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the peak) of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def git(*args: str) -> str:
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout


def code_version() -> str:
    """HEAD, plus the product files changed in the working tree, if any."""
    head = git("rev-parse", "--short", "HEAD").strip()
    # Porcelain lines are "XY path": the status columns may start with a space.
    dirty = git("status", "--porcelain", "--", "daemon", "ami", "api", "config").splitlines()
    return head + (f" + uncommitted {[line[3:] for line in dirty]}" if dirty else "")
