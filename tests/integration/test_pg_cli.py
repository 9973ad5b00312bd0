"""`callbackd migrate` and `callbackd cluster` on the shared store: they name the store
without its password, and fail with one line when they cannot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from daemon.logsetup import reset_logging
from daemon.store.pg import cluster
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrate, migrations, schema_version
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


def _join(url: str, host: str, silent_for: float = 0) -> None:
    with connect(url) as conn:
        migrate(conn)
        cluster.heartbeat(conn, host, migrations()[-1][0], 660)
        conn.execute(
            "UPDATE hosts SET last_heartbeat = now() - make_interval(secs => %s)"
            " WHERE host_id = %s",
            (silent_for, host),
        )


def test_cluster_status_lists_each_host_alive_or_gone(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _join(pg_url, "pbx-1")
    _join(pg_url, "pbx-2", silent_for=120)

    config = str(_config(tmp_path, with_password(pg_url)))

    code, out, _ = run(capsys, "cluster", "--config", config, "status")

    header, first, second = out.strip().splitlines()
    assert code == 0
    assert header.split()[:2] == ["HOST", "LAST"]
    assert first.split()[0] == "pbx-1" and "alive" in first.split()
    assert second.split()[0] == "pbx-2" and "gone" in second.split()


def test_cluster_release_takes_only_a_gone_host(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _join(pg_url, "pbx-1")
    _join(pg_url, "pbx-2", silent_for=120)
    config = str(_config(tmp_path, with_password(pg_url)))

    gone = run(capsys, "cluster", "--config", config, "release", "pbx-2")
    alive = run(capsys, "cluster", "--config", config, "release", "pbx-1")
    unknown = run(capsys, "cluster", "--config", config, "release", "pbx-9")

    assert gone[0] == 0 and "pbx-2: released" in gone[1]
    assert alive[0] == 1 and alive[2].startswith("callbackd: cluster release: pbx-1 is alive")
    assert unknown[0] == 1 and "no host 'pbx-9'" in unknown[2]


def test_cluster_without_a_shared_store_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "callbackd.toml"
    config.write_text(f'[store]\npath = "{tmp_path / "db"}"\n')

    code, _, err = run(capsys, "cluster", "--config", str(config), "status")

    assert code == 1
    assert err.strip() == (
        "callbackd: cluster: there is no cluster without store.url (the shared store)"
    )
