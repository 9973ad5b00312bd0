"""`callbackd migrate` on the shared store: migrates the PostgreSQL of store.url, names
it without its password, and fails with one line when it cannot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from daemon.logsetup import reset_logging
from daemon.store.pg.schema import migrations, schema_version
from tests.pg import TestPg
from tests.unit.test_cli import run

pytestmark = pytest.mark.pg

PASSWORD = "Pa55-word"  # the test cluster trusts 127.0.0.1 and ignores it


def with_password(url: str, dbname: str | None = None) -> str:
    """The store URL (postgresql://...) of a test database, with a password in it."""
    parts = conninfo_to_dict(url)
    name = dbname or parts["dbname"]
    return f"postgresql://{parts['user']}:{PASSWORD}@{parts['host']}:{parts['port']}/{name}"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    reset_logging()


def _config(tmp_path: Path, url: str) -> Path:
    url_file = tmp_path / "store_url"
    url_file.write_text(url)
    config = tmp_path / "callbackd.toml"
    config.write_text(f'[store]\nurl_file = "{url_file}"\n[log]\nformat = "json"\n')
    return config


def test_migrate_brings_the_shared_store_to_the_current_schema(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_password(pg_url)

    code, out, err = run(capsys, "migrate", "--config", str(_config(tmp_path, url)))

    assert code == 0
    assert f"up to date (schema version {migrations()[-1][0]})" in out
    assert PASSWORD not in out + err
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn) == migrations()[-1][0]


def test_a_store_that_cannot_be_reached_is_one_line_without_the_password(
    tmp_path: Path, testpg: TestPg, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_password(testpg.url, "no_such_database")

    code, out, err = run(capsys, "migrate", "--config", str(_config(tmp_path, url)))

    assert code == 1
    assert err.startswith("callbackd: cannot open the store ")
    assert "no_such_database" in err
    assert len(err.strip().splitlines()) == 1
    assert PASSWORD not in out + err
