"""Config reload: live keys change, restart-only keys keep their running value, and a bad
file leaves the running config in place with one log line."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from config import Settings, load_settings
from daemon.reload import Reloader, live_part, needs_restart
from daemon.services import Services, open_services
from tests.conftest import logged

BASE = """
[api]
listen = "127.0.0.1:8080"
[api.tokens]
"token-old-12345" = "acme"
[store]
path = "{store}"
[ami]
host = "127.0.0.1"
secret = "ami-old-secret"
[calls]
max_concurrent = 10
[webhooks]
timeout = 5
[log]
level = "info"
format = "json"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "callbackd.toml"
    path.write_text(BASE.format(store=tmp_path / "callbackd.db"))
    return path


@pytest.fixture
async def services(config: Path) -> AsyncIterator[Services]:
    svc = await open_services(load_settings(config))
    yield svc
    await svc.db.close()


def edit(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))


async def test_live_keys_take_effect_and_listeners_hear_of_it(
    config: Path, services: Services, log_output: io.StringIO
) -> None:
    reloader = Reloader(config, services.live)
    heard: list[Settings] = []
    reloader.on_reload(heard.append)
    edit(config, '"token-old-12345" = "acme"', '"token-new-67890" = "beta"')
    edit(config, "max_concurrent = 10", "max_concurrent = 3\n[extensions.101]\nmax_concurrent = 1")
    edit(config, "timeout = 5", "timeout = 9")

    assert await reloader.reload()

    now = services.settings
    assert now.api.tokens == {"token-new-67890": "beta"}
    assert now.calls.max_concurrent == 3
    assert now.extensions[101].max_concurrent == 1
    assert now.webhooks.timeout == 9
    assert heard == [now]
    [line] = [json.loads(x) for x in logged(log_output).splitlines()]
    assert line["event"] == "config reloaded"


async def test_restart_only_keys_keep_their_running_value_and_are_named(
    config: Path, services: Services, log_output: io.StringIO
) -> None:
    before = services.settings
    edit(config, "127.0.0.1:8080", "0.0.0.0:9090")
    edit(config, 'host = "127.0.0.1"', 'host = "10.0.0.5"')
    edit(config, 'level = "info"', 'level = "debug"')

    assert await Reloader(config, services.live).reload()

    now = services.settings
    assert now.api.listen == before.api.listen
    assert now.ami == before.ami
    assert now.store == before.store
    assert now.log.level == "debug"
    [line] = [json.loads(x) for x in logged(log_output).splitlines()]
    assert line["level"] == "warning"
    assert line["keys"] == ["api.listen", "ami.*"]


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("timeout = 5", "timeout = -1", "webhooks.timeout"),
        ("max_concurrent = 10", "max_concurrents = 10", "calls.max_concurrents"),
        ('level = "info"', 'level = "info', "not valid TOML"),
    ],
    ids=["bad-value", "unknown-key", "broken-toml"],
)
async def test_a_bad_config_keeps_the_running_one_and_logs_one_line(
    config: Path, services: Services, log_output: io.StringIO, old: str, new: str, key: str
) -> None:
    before = services.settings
    heard: list[Settings] = []
    reloader = Reloader(config, services.live)
    reloader.on_reload(heard.append)
    edit(config, old, new)
    edit(config, '"token-old-12345" = "acme"', '"token-new-67890" = "beta"')

    assert not await reloader.reload()

    assert services.settings is before
    assert heard == []
    [line] = [json.loads(x) for x in logged(log_output).splitlines()]
    assert line["level"] == "error"
    assert key in line["error"]
    assert "\n" not in line["error"]


async def test_a_missing_config_file_keeps_the_running_config(
    config: Path, services: Services, log_output: io.StringIO
) -> None:
    before = services.settings
    await asyncio.to_thread(config.unlink)
    assert not await Reloader(config, services.live).reload()
    assert services.settings is before


async def test_new_secrets_are_redacted_even_before_they_are_live(
    config: Path, services: Services, log_output: io.StringIO
) -> None:
    edit(config, "ami-old-secret", "ami-new-secret")  # ami.* needs a restart
    assert await Reloader(config, services.live).reload()
    structlog.get_logger("callbackd").info("will use ami-new-secret after a restart")
    assert "ami-new-secret" not in logged(log_output)


def test_needs_restart_names_exactly_the_changed_restart_only_keys() -> None:
    running = Settings()
    new = Settings(
        api={"listen": "127.0.0.1:9", "cors_origins": ["https://panel"]},
        store={"path": "/elsewhere.db"},
        calls={"max_concurrent": 1},
    )
    assert needs_restart(running, new) == ["api.listen", "api.cors_origins", "store.path"]
    assert needs_restart(running, Settings(calls={"max_concurrent": 1})) == []


def test_live_part_takes_everything_else_from_the_new_config() -> None:
    running = Settings(api={"tokens": {"token-old-12345": "a"}})
    new = Settings(
        api={"listen": "127.0.0.1:9", "tokens": {"token-new-67890": "b"}},
        ami={"port": 5039},
        webhooks={"max_attempts": 2},
    )
    merged = live_part(running, new)
    assert merged.api.listen == running.api.listen
    assert merged.api.tokens == {"token-new-67890": "b"}
    assert merged.ami.port == 5038
    assert merged.webhooks.max_attempts == 2
