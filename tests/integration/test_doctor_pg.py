"""`callbackd doctor`'s store check on the shared PostgreSQL store: the store's schema
is read without migrating it, and an unreachable one is named without its password."""

from __future__ import annotations

import psycopg
import pytest

from callbackd.doctor import gather_shared_store, store_check
from daemon.store.pg.schema import migrate, migrations, schema_version
from tests.integration.test_pg_cli import PASSWORD, with_password
from tests.pg import TestPg

pytestmark = pytest.mark.pg
LATEST = migrations()[-1][0]


def test_an_empty_shared_store_is_writable_and_left_unmigrated(pg_url: str) -> None:
    check = store_check(gather_shared_store(with_password(pg_url)), LATEST)

    assert check.ok is True
    assert f"schema 0; the next start (or 'callbackd migrate') upgrades it to {LATEST}" in (
        check.text
    )
    assert PASSWORD not in check.text
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == 0


def test_a_migrated_shared_store_is_current(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        migrate(conn)

    check = store_check(gather_shared_store(pg_url), LATEST)

    assert (check.ok, check.text.endswith(f"schema {LATEST} (current)")) == (True, True)


def test_an_unreachable_shared_store_fails_without_its_password(testpg: TestPg) -> None:
    url = with_password(testpg.url, "no_such_database")

    check = store_check(gather_shared_store(url), LATEST)

    assert check.ok is False
    assert "cannot connect" in check.text and "no_such_database" in check.text
    assert PASSWORD not in check.text
