"""Running the project's own scripts under tools/ (testpbx, sipfarend, testpg) from the
tests: bounded, with their output in the error when they fail."""

from __future__ import annotations

import subprocess
from pathlib import Path


class ToolScriptError(RuntimeError):
    """A script under tools/ failed or gave no result in time; the message carries its
    output."""


def run_script(
    script: Path, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(script), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolScriptError(f"{_command(script, args)}: no result in {timeout} s") from exc


def check_script(
    script: Path, *args: str, timeout: float, env: dict[str, str] | None = None
) -> str:
    """The script's stdout; ToolScriptError when it exits non-zero."""
    done = run_script(script, *args, timeout=timeout, env=env)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise ToolScriptError(f"{_command(script, args)} failed: {output}")
    return done.stdout


def _command(script: Path, args: tuple[str, ...]) -> str:
    return f"tools/{script.name} {' '.join(args)}".strip()
