"""The composition root: the layers import one way, and a part that fails to stop is
logged and makes the exit status say so."""

from __future__ import annotations

import ast
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from callbackd.serve import _cleanup
from tests.conftest import logged

ROOT = Path(__file__).resolve().parents[2]
# Each package and the packages it must never import: api -> daemon -> ami, config
# below all of them, and only callbackd/ above them all.
FORBIDDEN = {
    "config": {"ami", "daemon", "api", "callbackd"},
    "ami": {"daemon", "api", "callbackd"},
    "daemon": {"api", "callbackd"},
    "api": {"callbackd"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_above_it(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: names for path, names in wrong.items() if names} == {}


async def failing_part(app: web.Application) -> AsyncIterator[None]:
    yield
    raise RuntimeError("the drain failed")


async def quiet_part(app: web.Application) -> AsyncIterator[None]:
    yield


async def runner_with(*parts: object) -> web.AppRunner:
    app = web.Application()
    app.cleanup_ctx.extend(parts)  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


async def test_a_part_that_fails_to_stop_is_logged_and_reported(log_output: io.StringIO) -> None:
    runner = await runner_with(quiet_part, failing_part, failing_part)

    assert await _cleanup(runner) is False

    lines = [json.loads(x) for x in logged(log_output).splitlines()]
    failures = [line for line in lines if line["event"] == "a part failed to stop"]
    assert len(failures) == 2
    assert all("the drain failed" in line["exception"] for line in failures)


async def test_parts_that_stop_cleanly_report_so(log_output: io.StringIO) -> None:
    runner = await runner_with(quiet_part)

    assert await _cleanup(runner) is True
    assert logged(log_output) == ""
