"""This host among the hosts of the shared store: joining (one host per store at a time
in this version), and a heartbeat that also runs the recovery of gone hosts."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from config import Settings
from daemon.clock import SystemClock
from daemon.membership import Membership, longest_call
from daemon.store.db import StoreError
from daemon.store.pg import cluster
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrate
from tests.integration.test_pg_cluster import add_queue, claim, silence, value

pytestmark = pytest.mark.pg


def settings(pg_url: str, host_id: str, **calls: int) -> Settings:
    parts = conninfo_to_dict(pg_url)
    url = f"postgresql://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    return Settings(
        store={"url": url},
        cluster={"host_id": host_id, "heartbeat": 1, "host_timeout": 30},
        calls=calls,
    )


@pytest.fixture
def store(pg_url: str) -> str:
    with connect(pg_url) as conn:
        migrate(conn)
    return pg_url


def test_a_second_host_is_refused_while_the_first_is_alive(store: str) -> None:
    first = Membership(settings(store, "pbx-1"), SystemClock())
    second = Membership(settings(store, "pbx-2"), SystemClock())
    first.join()
    first.join()  # the same host again, after a restart

    with pytest.raises(StoreError, match="cluster: pbx-1 already runs on this store"):
        second.join()
    silence(store, "pbx-1", 31)
    second.join()

    assert value(store, "SELECT string_agg(host_id, ',' ORDER BY host_id) FROM hosts") == (
        "pbx-1,pbx-2"
    )


def test_a_heartbeat_takes_back_what_a_gone_host_claimed(store: str) -> None:
    add_queue(store, 1, limit=10, tasks=1)
    with connect(store) as conn:
        cluster.heartbeat(conn, "pbx-1", 6, 660)
    claim(store, "pbx-1", room=1)
    silence(store, "pbx-1", 31)
    alive = Membership(settings(store, "pbx-2"), SystemClock())

    recovered = alive.beat()

    assert recovered == cluster.Recovered(given_back=1)
    assert value(store, "SELECT status FROM tasks") == "scheduled"


@pytest.mark.parametrize(
    ("calls", "profiles", "longest"),
    [
        ({"max_talk_time": 600}, {}, 660),
        ({"max_talk_time": 600}, {101: {"a_ring_timeout": 90}}, 720),
        ({"max_talk_time": 600}, {101: {"max_talk_time": 0}}, 0),
        ({"max_talk_time": 0}, {}, 0),
    ],
)
def test_the_longest_call_covers_every_profile(
    calls: dict[str, int], profiles: dict[int, dict[str, int]], longest: int
) -> None:
    assert longest_call(Settings(calls=calls, extensions=profiles)) == longest
