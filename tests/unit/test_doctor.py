"""The checks of `callbackd doctor` as tables: each is a pure function of its facts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ami.events import AmiEvent
from callbackd.doctor import (
    ACTIONS,
    PROBE_EVENTS,
    AmiFacts,
    StoreFacts,
    _probe_over,
    ami_checks,
    event_checks,
    filtered_events,
    gather_store,
    login_check,
    rights_check,
    shipped_snippet,
    store_check,
    tokens_check,
)
from config import Settings

SETTINGS = Settings.model_validate({"ami": {"secret": "s3cret", "port": 5038}})
ALLOWED = filtered_events(shipped_snippet())
LOGGED_IN = AmiFacts(logged_in=True, commands=frozenset(ACTIONS), missing_contexts=())


def _events(*names: str) -> tuple[AmiEvent, ...]:
    return tuple({"Event": n, "Linkedid": "doctor-1"} for n in names)


def test_the_shipped_filter_lets_through_every_event_of_the_probe() -> None:
    assert PROBE_EVENTS <= ALLOWED
    assert {"BridgeEnter", "OriginateResponse"} <= ALLOWED


@pytest.mark.parametrize(
    ("tokens", "ok", "says"),
    [
        ({}, False, "api.tokens_file"),
        ({"acme-token-1": "acme"}, True, "1 (clients: acme; admin tokens: 0)"),
        ({"admin-token1": "*"}, True, "no client of its own; admin tokens: 1"),
    ],
)
def test_tokens(tokens: dict[str, str], ok: bool, says: str) -> None:
    check = tokens_check(tokens)

    assert (check.ok, says in check.text) == (ok, True)
    assert not any(token in check.text for token in tokens)  # never shown


@pytest.mark.parametrize(
    ("facts", "ok", "says"),
    [
        (StoreFacts("/s.db", exists=False, creatable=True), True, "first start creates"),
        (StoreFacts("/s.db", exists=False, creatable=False), False, "writable by the user"),
        (StoreFacts("/s.db", exists=True, error="not writable (x)"), False, "not writable (x)"),
        (StoreFacts("/s.db", exists=True, version=5), True, "schema 5 (current)"),
        (StoreFacts("/s.db", exists=True, version=3), True, "upgrades it to 5"),
        (StoreFacts("/s.db", exists=True, version=6), False, "newer than this callbackd knows (5)"),
    ],
)
def test_store(facts: StoreFacts, ok: bool, says: str) -> None:
    check = store_check(facts, latest=5)

    assert (check.ok, says in check.text) == (ok, True), check.text


def test_the_store_is_read_without_being_created_or_migrated(tmp_path: Path) -> None:
    missing = tmp_path / "var" / "cb.db"
    db = tmp_path / "cb.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 4")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")

    assert gather_store(missing) == StoreFacts(str(missing), exists=False, creatable=True)
    assert not missing.parent.exists()
    assert gather_store(db) == StoreFacts(str(db), exists=True, version=4)
    assert gather_store(junk).error is not None


@pytest.mark.parametrize(
    ("settings", "error", "says"),
    [
        (SETTINGS, "login refused: Authentication failed", "[callbackd] section of manager.conf"),
        (SETTINGS, "connect to 127.0.0.1:5038 failed: refused", "is Asterisk running"),
        (SETTINGS, None, "no answer within"),
        (Settings(), "login refused: Authentication failed", "ami.secret is empty"),
    ],
)
def test_login(settings: Settings, error: str | None, says: str) -> None:
    check = login_check(settings, AmiFacts(logged_in=False, error=error))

    assert check.ok is False
    assert says in check.text
    assert "s3cret" not in check.text


def test_a_failed_login_leaves_the_other_ami_checks_unchecked() -> None:
    checks = ami_checks(SETTINGS, AmiFacts(logged_in=False, error="x"), ALLOWED)

    assert [c.ok for c in checks] == [False, None, None, None, None]


@pytest.mark.parametrize(
    ("commands", "ok", "says"),
    [
        (frozenset(ACTIONS) | {"Ping"}, True, "may send Originate"),
        (
            frozenset(ACTIONS) - {"Originate"},
            False,
            "may not send Originate: its write= classes need originate",
        ),
        (frozenset({"Originate"}), False, "need call,reporting"),
    ],
)
def test_rights(commands: frozenset[str], ok: bool, says: str) -> None:
    check = rights_check(AmiFacts(logged_in=True, commands=commands))

    assert (check.ok, says in check.text) == (ok, True), check.text


def test_without_the_originate_right_the_probe_is_not_made() -> None:
    facts = AmiFacts(logged_in=True, commands=frozenset({"Hangup"}), missing_contexts=())

    checks = ami_checks(SETTINGS, facts, ALLOWED)

    assert [(c.name, c.ok) for c in checks][-2:] == [
        ("AMI events", None),
        ("AMI event filter", None),
    ]


def test_missing_contexts_are_named_with_the_fix() -> None:
    facts = AmiFacts(logged_in=True, commands=frozenset(ACTIONS), missing_contexts=("callbackd-b",))

    [_, _, dialplan, *_] = ami_checks(SETTINGS, facts, ALLOWED)

    assert dialplan.ok is False
    assert "callbackd-b not loaded" in dialplan.text and "dialplan reload" in dialplan.text


@pytest.mark.parametrize(
    ("seen", "reading", "filtering", "says"),
    [
        (PROBE_EVENTS, True, True, "only the events callbackd uses"),
        (
            PROBE_EVENTS | {"HangupRequest", "LocalBridge"},
            True,
            False,
            "also receives HangupRequest, LocalBridge",
        ),
        (PROBE_EVENTS - {"UserEvent"}, False, True, "add 'user'"),
        (PROBE_EVENTS - {"DialEnd"}, True, False, "DialEnd did not arrive"),
        (frozenset(), False, None, "read = call,user"),
    ],
)
def test_events_of_the_probe(
    seen: frozenset[str], reading: bool, filtering: bool | None, says: str
) -> None:
    facts = AmiFacts(logged_in=True, probe_events=_events(*sorted(seen)))

    events, event_filter = event_checks(facts, ALLOWED)

    assert (events.ok, event_filter.ok) == (reading, filtering)
    assert says in events.text + event_filter.text


def test_a_refused_probe_is_a_failure_that_says_why() -> None:
    events, event_filter = event_checks(AmiFacts(logged_in=True, probe_error="No such"), ALLOWED)

    assert (events.ok, event_filter.ok) == (False, None)
    assert "No such" in events.text


def test_every_check_is_one_line_starting_with_its_verdict() -> None:
    lines = [c.line() for c in ami_checks(SETTINGS, LOGGED_IN, ALLOWED)]

    assert [line.split()[0] for line in lines] == ["ok", "ok", "ok", "skip", "skip"]
    assert all("\n" not in line for line in lines)


def _channel_event(event: str, uniqueid: str) -> AmiEvent:
    return {"Event": event, "Uniqueid": uniqueid, "Linkedid": "doctor-1"}


@pytest.mark.parametrize(
    ("names", "over"),
    [
        # The OriginateResponse may come before the last channel's hang-up: not over yet.
        ([("Newchannel", "p"), ("Newchannel", "p;2"), ("OriginateResponse", "p")], False),
        (
            [
                ("Newchannel", "p"),
                ("Newchannel", "p;2"),
                ("Hangup", "p;2"),
                ("OriginateResponse", "p"),
                ("Hangup", "p"),
            ],
            True,
        ),
        ([("Newchannel", "p"), ("Hangup", "p")], False),  # not answered yet
        ([("OriginateResponse", "p")], False),  # no channel seen (yet)
    ],
)
def test_the_probe_is_over_once_answered_and_every_channel_is_gone(
    names: list[tuple[str, str]], over: bool
) -> None:
    assert _probe_over([_channel_event(e, u) for e, u in names]) is over
