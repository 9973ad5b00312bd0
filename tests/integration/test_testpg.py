"""The throwaway PostgreSQL of tools/testpg: reachable, one empty database per test,
and a restart that keeps the data and the DSN (the fault tests restart it mid-run)."""

from __future__ import annotations

import psycopg
import pytest

from tests.pg import TestPg

pytestmark = pytest.mark.pg


def test_a_fresh_database_is_empty_and_private_to_its_test(testpg: TestPg) -> None:
    with testpg.fresh_database() as first, testpg.fresh_database() as second:
        with psycopg.connect(first, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
        with psycopg.connect(second) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()

    assert first != second
    assert tables == (0,)


def test_a_restart_keeps_the_data_and_the_address(testpg: TestPg, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    url = testpg.url

    testpg.restart()

    assert testpg.is_running()
    assert testpg.url == url
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]
