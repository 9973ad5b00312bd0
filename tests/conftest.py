"""Fixtures shared by every test directory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from daemon.logsetup import reset_logging
from tests.pbx import TestPbx, TestPbxError
from tests.pg import TestPg, TestPgError


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Logging as it was before the test: configure_logging undone, the root level back."""
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


@pytest.fixture(scope="session")
def testpbx() -> Iterator[TestPbx]:
    """The real test PBX (tools/testpbx), built and started if needed.

    Stopped at the end of the session only if this session started it. A PBX that
    cannot start fails the tests that need it; they are never skipped.
    """
    pbx = TestPbx.from_env()
    started_here = False
    if not pbx.is_running():
        try:
            pbx.start()
        except TestPbxError as exc:
            pytest.fail(str(exc), pytrace=False)
        started_here = True
    yield pbx
    if started_here:
        pbx.stop()


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
    except TestPgError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield pg
    if started_here:
        pg.stop()


@pytest.fixture
def pg_url(testpg: TestPg) -> Iterator[str]:
    """The DSN of an empty database of this test's own."""
    with testpg.fresh_database() as url:
        yield url
