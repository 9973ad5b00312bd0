"""This host among the hosts of the shared store: joining, the lease that says when it
may dial, and a heartbeat that also runs the recovery of gone hosts."""

from __future__ import annotations

import logging

import pytest
from psycopg.conninfo import conninfo_to_dict

from config import Settings
from daemon.clock import SystemClock
from daemon.membership import Membership, longest_call, recovery_news
from daemon.store.pg import cluster
from daemon.store.pg.connection import connect
from daemon.store.pg.schema import migrate
from tests.integration.test_pg_cluster import add_queue, claim, host, silence, value

pytestmark = pytest.mark.pg
CLOSED = "recovered the work of gone hosts"
WAITING = "attempts of gone hosts wait while their calls may be up"


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


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hosts_join_side_by_side_and_each_dials_only_while_its_lease_runs(store: str) -> None:
    clock = Monotonic()
    first = Membership(settings(store, "pbx-1"), SystemClock(), clock)
    second = Membership(settings(store, "pbx-2"), SystemClock(), clock)

    before = first.may_act()
    first.join()
    second.join()
    joined = first.may_act()
    clock.now += 30  # frozen past host_timeout: the lease ended before the others see it
    frozen = first.may_act()
    first.beat()
    again = first.may_act()

    assert (before, joined, frozen, again) == (False, True, False, True)
    assert value(store, "SELECT string_agg(host_id, ',' ORDER BY host_id) FROM hosts") == (
        "pbx-1,pbx-2"
    )


async def test_a_heartbeat_closes_a_gone_hosts_call_once_it_cannot_be_up(store: str) -> None:
    [task_id] = add_queue(store, 1, limit=10, tasks=1)
    gone = await host(store, "pbx-1")
    await claim(gone, 1, [task_id])
    await gone.close()
    silence(store, "pbx-1", 10**5)
    alive = Membership(settings(store, "pbx-2"), SystemClock())

    recovered = alive.beat()

    assert recovered == cluster.Recovered(closed=1)
    assert value(store, "SELECT finish_comment FROM tasks") == "interrupted"


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


@pytest.mark.parametrize(
    ("recovered", "waiting_before", "news"),
    [
        (cluster.Recovered(), 0, None),
        (cluster.Recovered(closed=1), 0, (logging.WARNING, CLOSED)),
        (cluster.Recovered(closed=1, waiting=2), 2, (logging.WARNING, CLOSED)),
        (cluster.Recovered(waiting=2), 0, (logging.INFO, WAITING)),
        (cluster.Recovered(waiting=2), 2, None),  # the same attempts still wait: said once
        (cluster.Recovered(waiting=1), 2, (logging.INFO, WAITING)),
        (cluster.Recovered(), 2, (logging.INFO, WAITING)),  # none waits any more
    ],
)
def test_a_recovery_pass_is_logged_when_it_is_news(
    recovered: cluster.Recovered, waiting_before: int, news: tuple[int, str] | None
) -> None:
    assert recovery_news(recovered, waiting_before) == news
