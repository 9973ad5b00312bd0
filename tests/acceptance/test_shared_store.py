"""The real `callbackd run` on the shared PostgreSQL store with the test PBX: calls are
placed and stored there under this host's name, the host shows in `cluster status`, and
a second host on the same store is refused (this version runs one host per store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.acceptance.conftest import callbackd_command, free_port, launch
from tests.acceptance.lifecycle_helpers import Api, write_pbx_config
from tests.pbx import TestPbx

pytestmark = [pytest.mark.pbx, pytest.mark.pg]


def shared_config(directory: Path, pbx: TestPbx, pg_url: str, host_id: str) -> Path:
    parts = conninfo_to_dict(pg_url)
    url_file = directory / f"store_url-{host_id}"
    url_file.write_text(
        f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    )
    directory = directory / host_id
    directory.mkdir()
    config = write_pbx_config(directory, free_port(), pbx)
    text = config.read_text().replace("[store]\n", f'[store]\nurl_file = "{url_file}"\n', 1)
    config.write_text(
        text + f'\n[cluster]\nhost_id = "{host_id}"\nheartbeat = 1\nhost_timeout = 5\n'
    )
    return config


def port_of(config: Path) -> int:
    for line in config.read_text().splitlines():
        if line.startswith("listen = "):
            return int(line.rsplit(":", 1)[1].rstrip('"'))
    raise AssertionError("no listen address")


async def test_a_host_runs_calls_on_the_shared_store_and_a_second_one_is_refused(
    tmp_path: Path, testpbx: TestPbx, pg_url: str, session: aiohttp.ClientSession
) -> None:
    first = shared_config(tmp_path, testpbx, pg_url, "pbx-1")
    daemon = await launch(first, port_of(first), session)
    try:
        api = Api(session, daemon)
        await api.wait_ready()
        queue = await api.new_queue()
        (task,) = await api.add_tasks(queue, {"a_number": "1002", "b_number": "1102"})
        done = await api.wait_finished(task)

        second = shared_config(tmp_path, testpbx, pg_url, "pbx-2")
        refused = await asyncio.create_subprocess_exec(
            *callbackd_command(),
            "run",
            "--config",
            str(second),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(refused.communicate(), 60)
        status = await asyncio.create_subprocess_exec(
            *callbackd_command(),
            "cluster",
            "--config",
            str(first),
            "status",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(status.communicate(), 60)
    finally:
        await daemon.stop()

    assert done["finish_result"] == "success", api.log()
    with psycopg.connect(pg_url) as conn:
        hosts = conn.execute("SELECT host_id FROM attempts").fetchall()
    assert hosts == [("pbx-1",)]
    assert refused.returncode == 1
    assert "cluster: pbx-1 already runs on this store" in err.decode(), err.decode()
    (line,) = [row for row in out.decode().splitlines() if row.startswith("pbx-1")]
    assert "alive" in line.split()
