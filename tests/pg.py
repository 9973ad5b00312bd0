"""The project's throwaway PostgreSQL (tools/testpg) as seen by the tests.

`TestPg` runs the script (start, stop, restart) and hands out databases of their own,
made from `template0` and dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from tests.tool_scripts import check_script, run_script

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "tools" / "testpg"

# A first start may install Debian's postgresql package; later ones take a second.
START_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0

_databases = itertools.count(1)


@dataclass
class TestPg:
    url: str = ""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return run_script(SCRIPT, *args, timeout=timeout)

    def _check(self, *args: str, timeout: float) -> str:
        return check_script(SCRIPT, *args, timeout=timeout).strip()

    def is_running(self) -> bool:
        return self._run("status", timeout=30).returncode == 0

    def start(self) -> None:
        """Install if needed, start, and learn the DSN; returns once it accepts."""
        self.url = self._check("start", timeout=START_TIMEOUT)

    def stop(self) -> None:
        self._check("stop", timeout=STOP_TIMEOUT)

    def restart(self) -> None:
        """Stop (every session is cut) and start again on the same port and data."""
        self._check("restart", timeout=START_TIMEOUT)

    def database_url(self, name: str) -> str:
        return make_conninfo(self.url, dbname=name)

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new, empty database for one test; dropped (its sessions cut) afterwards."""
        name = f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield self.database_url(name)
        finally:
            with psycopg.connect(self.url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
