"""The shared store's settings: `store.url` with its password kept out of sight (from
url_file or the store_url credential), and the `[cluster]` section."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from daemon.services import open_services
from daemon.store.db import StoreError

URL = "postgresql://callbackd:Pa55-word@db.example:5432/callbackd"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CALLBACKD_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callbackd.toml"
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    return str(caught.value)


def test_without_a_url_the_store_is_the_sqlite_file(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, ""))

    assert not settings.store.shared
    assert settings.cluster.heartbeat == 10
    assert settings.cluster.host_timeout == 30


def test_the_url_comes_from_its_file_and_never_shows_in_the_settings(tmp_path: Path) -> None:
    url_file = tmp_path / "store_url"
    url_file.write_text(URL + "\n")

    settings = load_settings(_config(tmp_path, f'[store]\nurl_file = "{url_file}"\n'))

    assert settings.store.shared
    assert settings.store.url.get_secret_value() == URL
    assert "Pa55-word" not in repr(settings)
    assert "Pa55-word" not in str(settings.model_dump())


def test_the_url_comes_from_the_store_url_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "store_url").write_text(URL)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))

    settings = load_settings(_config(tmp_path, ""))

    assert settings.store.url.get_secret_value() == URL


def test_a_url_that_is_not_postgresql_is_named_without_showing_it(tmp_path: Path) -> None:
    message = _error(_config(tmp_path, '[store]\nurl = "mysql://u:Pa55-word@db/x"\n'))

    assert message.startswith("config error: store.url: must be a postgresql:// URL")
    assert "Pa55-word" not in message


@pytest.mark.parametrize(
    ("cluster", "key"),
    [
        ("heartbeat = 20\nhost_timeout = 30", "cluster: host_timeout must be at least twice"),
        ("host_id = 'pbx 1'", "cluster.host_id"),
        ("heartbeat = 0", "cluster.heartbeat"),
        ("hosts = 2", "cluster.hosts: unknown key"),
    ],
)
def test_a_bad_cluster_setting_is_named(tmp_path: Path, cluster: str, key: str) -> None:
    assert key in _error(_config(tmp_path, f"[cluster]\n{cluster}\n"))


def test_an_empty_host_id_is_the_machine_hostname(tmp_path: Path) -> None:
    named = load_settings(_config(tmp_path, "[cluster]\nhost_id = 'pbx-1'\n")).cluster
    unnamed = load_settings(_config(tmp_path, "")).cluster

    assert named.resolved_host_id(lambda: "pbx-7") == "pbx-1"
    assert unnamed.resolved_host_id(lambda: "pbx-7") == "pbx-7"


async def test_a_host_given_store_url_never_falls_back_to_its_sqlite_file(
    tmp_path: Path,
) -> None:
    # Nothing listens on port 1: the shared store cannot be reached.
    url = "postgresql://callbackd:Pa55-word@127.0.0.1:1/callbackd"
    text = f'[store]\npath = "{tmp_path / "db.sqlite"}"\nurl = "{url}"\n'
    settings = load_settings(_config(tmp_path, text))

    with pytest.raises(StoreError, match=r"^cannot open the store ") as refused:
        await open_services(settings)

    assert "Pa55-word" not in str(refused.value)
    assert not (tmp_path / "db.sqlite").exists()
