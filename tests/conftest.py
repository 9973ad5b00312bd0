"""Fixtures shared by every test directory."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from config.settings import LogSettings
from daemon import logsetup
from daemon.logsetup import reset_logging
from tests.pbx import REPO, SipFarEnd, TestPbx
from tests.pg import TestPg
from tests.tool_scripts import ToolScriptError

# The fixtures of the acceptance tests that run the daemon on the test PBX.
pytest_plugins = ["tests.acceptance.pbx_fixtures"]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Logging as it was before the test: configure_logging undone, the root level back."""
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The daemon's log lines as JSON, for `logged` to read."""
    out = io.StringIO()
    logsetup.configure_logging(LogSettings(format="json"), stream=out, env={})
    yield out
    logsetup.reset_logging()


def logged(out: io.StringIO) -> str:
    """What reached `out`: lines are written by the log writer thread."""
    assert logsetup.flush_logs()
    return out.getvalue()


class _Service(Protocol):
    def is_running(self) -> bool: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Service)


def _running(service: S) -> Iterator[S]:
    """The service, started if needed and stopped at the end of the session only if this
    session started it. One that cannot start fails the tests that need it; they are
    never skipped."""
    started_here = False
    if not service.is_running():
        try:
            service.start()
        except ToolScriptError as exc:
            pytest.fail(str(exc), pytrace=False)
        started_here = True
    yield service
    if started_here:
        service.stop()


@pytest.fixture(scope="session")
def testpbx() -> Iterator[TestPbx]:
    """The real test PBX (tools/testpbx), built and started if needed."""
    yield from _running(TestPbx.from_env())


@pytest.fixture(scope="session")
def sip_farend(testpbx: TestPbx) -> Iterator[SipFarEnd]:
    """The SIPp far end of the test PBX's PJSIP trunk (tools/sipfarend), installed and
    started if needed."""
    yield from _running(SipFarEnd.from_env())


@pytest.fixture(scope="session")
def testpg() -> Iterator[TestPg]:
    """The throwaway PostgreSQL (tools/testpg), installed and started if needed.

    Stopped at the end of the session only if this session started it. A PostgreSQL
    that cannot start fails the tests that need it; they are never skipped.
    """
    pg = TestPg()
    started_here = not pg.is_running()
    try:
        pg.start()  # also when running: it prints the DSN
    except ToolScriptError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield pg
    if started_here:
        pg.stop()


@pytest.fixture
def pg_url(testpg: TestPg) -> Iterator[str]:
    """The DSN of an empty database of this test's own."""
    with testpg.fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def testpbx2(testpbx: TestPbx) -> Iterator[TestPbx]:
    """A second test PBX for two-host tests: its own chroot (CALLBACKD_TESTPBX2_DIR,
    default <repo>/.testpbx2, copied from the first PBX's when not built yet) and AMI
    port (CALLBACKD_TESTPBX2_AMI_PORT, default the first PBX's + 1)."""
    first_dir = Path(os.environ.get("CALLBACKD_TESTPBX_DIR", REPO / ".testpbx"))
    directory = Path(os.environ.get("CALLBACKD_TESTPBX2_DIR", REPO / ".testpbx2"))
    port = int(os.environ.get("CALLBACKD_TESTPBX2_AMI_PORT", testpbx.port + 1))
    if not (directory / "built").is_file():
        # A copy of the built chroot instead of a second debootstrap; the first PBX's
        # mounts (it runs) are left out.
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["cp", "-a", "--one-file-system", str(first_dir / "root"), str(directory)],
            check=True,
            timeout=600,
        )
        shutil.copy(first_dir / "built", directory / "built")
    pbx = testpbx.second(directory, port)
    started_here = False
    if not pbx.is_running():
        try:
            pbx.start()
        except ToolScriptError as exc:
            pytest.fail(str(exc), pytrace=False)
        started_here = True
    yield pbx
    if started_here:
        pbx.stop()
