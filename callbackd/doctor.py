"""`callbackd doctor`: checks from callbackd's side what a start needs — the API tokens,
the store, the AMI login, the AMI user's rights, the dialplan contexts, the events the
user receives — and prints one line per check, naming what to fix.

Facts are gathered first (`gather_*`, the only code that touches the store or AMI);
each check is a pure function of its facts. The AMI events are checked with a probe
call that rings nobody: an Originate of `Local/rejected@callbackd-a`, which runs only
the dialplan's own `rejected` step (a UserEvent and a hang-up), so the probe shows
whether the call and user events arrive and whether anything else does.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from ami.client import AmiClient, AmiError, ConnectionSettings
from ami.dialplan import dialplan_problem, missing_contexts
from ami.events import AmiEvent, ConnectionChange, header, name
from ami.originate import B_CONTEXT, REQUIRED_CONTEXTS
from ami.outcome import A_CONTEXT
from callbackd.compose import connection_settings as daemon_connection
from config import Settings
from daemon.store.pg.schema import CONNECT_TIMEOUT_S, schema_version
from daemon.store.pg.schema import migrations as shared_migrations
from daemon.store.pg.url import shown
from daemon.store.queries import migrations
from daemon.store.schema import refusal

MANAGER_SNIPPET = "config/asterisk/manager_callbackd.conf"
RELOAD_MANAGER = f"(see {MANAGER_SNIPPET}), then 'manager reload' on the PBX"
# The actions callbackd sends, and the write class each needs.
ACTIONS = {
    "Originate": "originate",
    "Hangup": "call",
    "CoreShowChannels": "reporting",
    "ShowDialPlan": "reporting",
}
# What the probe call raises on the test PBX and on any Asterisk 22 with callbackd's
# dialplan: the events of both Local halves, the dialplan's UserEvent and the answer.
PROBE_EVENTS = frozenset(
    {"Newchannel", "DialBegin", "DialEnd", "UserEvent", "Hangup", "OriginateResponse"}
)
LOGIN_WAIT = 6.0
PROBE_WAIT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked, because an earlier check failed
    text: str

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark} {self.name}: {self.text}"


# --- the pure checks ----------------------------------------------------------------


def tokens_check(tokens: Mapping[str, str]) -> Check:
    if not tokens:
        return Check(
            "API tokens",
            False,
            "none configured, so every API request is refused: put 'TOKEN CLIENT_ID' lines "
            "in api.tokens_file or the api_tokens credential",
        )
    clients = sorted({client for client in tokens.values() if client != "*"})
    admins = sum(1 for client in tokens.values() if client == "*")
    who = ", ".join(clients) if clients else "no client of its own"
    return Check("API tokens", True, f"{len(tokens)} (clients: {who}; admin tokens: {admins})")


@dataclass(frozen=True)
class StoreFacts:
    where: str  # the file, or the shared store's URL without its password
    exists: bool
    creatable: bool = False  # for a file that does not exist yet
    version: int | None = None
    error: str | None = None  # why it could not be opened or written


def store_check(facts: StoreFacts, latest: int) -> Check:
    where = facts.where
    if not facts.exists:
        if facts.creatable:
            return Check("store", True, f"{where} does not exist yet; the first start creates it")
        return Check(
            "store",
            False,
            f"{where} cannot be created: make its directory exist and be writable by the "
            "user callbackd runs as",
        )
    if facts.error is not None:
        return Check("store", False, f"{where}: {facts.error}")
    version = facts.version or 0
    refused = refusal(version, latest, where)
    if refused is not None:
        return Check("store", False, refused)
    if version < latest:
        return Check(
            "store",
            True,
            f"{where} writable, schema {version}; the next start (or 'callbackd migrate') "
            f"upgrades it to {latest}",
        )
    return Check("store", True, f"{where} writable, schema {version} (current)")


@dataclass(frozen=True)
class AmiFacts:
    logged_in: bool
    error: str | None = None  # why not logged in
    commands: frozenset[str] = frozenset()  # the actions ListCommands allows the user
    missing_contexts: tuple[str, ...] | None = None  # None: not looked for
    probe_events: tuple[AmiEvent, ...] | None = None  # None: no probe
    probe_error: str | None = None  # the probe's Originate was refused


def login_check(settings: Settings, facts: AmiFacts) -> Check:
    ami = settings.ami
    where = f"{ami.username}@{ami.host}:{ami.port}"
    if facts.logged_in:
        return Check("AMI login", True, f"logged in as {where}")
    error = facts.error or f"no answer within {LOGIN_WAIT:g} s"
    if not ami.secret.get_secret_value():
        fix = "ami.secret is empty: set ami.secret_file or the ami_secret credential"
    elif error.startswith("login refused"):
        fix = (
            "the username or secret does not match the PBX: compare [ami] username and "
            f"the secret with the [{ami.username}] section of manager.conf {RELOAD_MANAGER}"
        )
    else:
        fix = (
            f"is Asterisk running with AMI on {ami.host}:{ami.port}? (manager.conf "
            "[general] enabled = yes, port, bindaddr; [ami] host and port here)"
        )
    return Check("AMI login", False, f"{error}: {fix}")


def rights_check(facts: AmiFacts) -> Check:
    missing = [action for action in ACTIONS if action not in facts.commands]
    if not missing:
        return Check("AMI rights", True, "may send " + ", ".join(ACTIONS))
    classes = sorted({ACTIONS[action] for action in missing})
    return Check(
        "AMI rights",
        False,
        f"the user may not send {', '.join(missing)}: its write= classes need "
        f"{','.join(classes)} (write = originate,call,reporting) {RELOAD_MANAGER}",
    )


def dialplan_check(facts: AmiFacts) -> Check:
    problem = dialplan_problem(facts.missing_contexts or ())
    if problem is None:
        return Check("dialplan", True, f"contexts {', '.join(REQUIRED_CONTEXTS)} loaded")
    return Check("dialplan", False, problem)


def event_checks(facts: AmiFacts, allowed: frozenset[str]) -> list[Check]:
    """Whether the call and user events arrive (read classes), and whether only the
    events callbackd uses arrive (the event filter), from the probe's events."""
    if facts.probe_error is not None:
        text = f"the probe call was refused ({facts.probe_error})"
        return [Check("AMI events", False, text), Check("AMI event filter", None, text)]
    seen = {name(event) or "" for event in facts.probe_events or ()}
    if not seen & (PROBE_EVENTS - {"UserEvent"}):
        return [
            Check(
                "AMI events",
                False,
                "no event of the probe call arrived: the user needs read = call,user "
                f"{RELOAD_MANAGER}",
            ),
            Check("AMI event filter", None, "no events to judge it by"),
        ]
    reading = Check("AMI events", True, "call and user events arrive")
    if "UserEvent" not in seen:
        reading = Check(
            "AMI events",
            False,
            "no UserEvent arrived: add 'user' to the user's read= classes (read = call,user) "
            f"{RELOAD_MANAGER}",
        )
    extra = sorted(seen - allowed)
    dropped = sorted((PROBE_EVENTS & allowed) - seen - {"UserEvent"})
    if extra:
        return [
            reading,
            Check(
                "AMI event filter",
                False,
                f"the user also receives {', '.join(extra)}, which callbackd does not use: "
                f"add the eventfilter lines of {MANAGER_SNIPPET} to its section, then "
                "'manager reload'",
            ),
        ]
    if dropped:
        return [
            reading,
            Check(
                "AMI event filter",
                False,
                f"{', '.join(dropped)} did not arrive: the event filter must let every event "
                f"of {MANAGER_SNIPPET} through",
            ),
        ]
    return [reading, Check("AMI event filter", True, "only the events callbackd uses arrive")]


def ami_checks(settings: Settings, facts: AmiFacts, allowed: frozenset[str]) -> list[Check]:
    login = login_check(settings, facts)
    if not login.ok:
        later = ("AMI rights", "dialplan", "AMI events", "AMI event filter")
        return [login, *(Check(n, None, "needs the AMI login") for n in later)]
    rights = rights_check(facts)
    dialplan = dialplan_check(facts)
    if facts.probe_events is None and facts.probe_error is None:
        reason = "needs the Originate right" if not rights.ok else "needs the dialplan"
        probe = [Check("AMI events", None, reason), Check("AMI event filter", None, reason)]
    else:
        probe = event_checks(facts, allowed)
    return [login, rights, dialplan, *probe]


def filtered_events(snippet: str) -> frozenset[str]:
    """The event names the shipped manager.conf snippet lets through."""
    return frozenset(re.findall(r"^eventfilter\(action\(include\),name\((\w+)\)\)", snippet, re.M))


# --- gathering the facts ------------------------------------------------------------


def gather_store(path: Path) -> StoreFacts:
    """Open the SQLite file without creating or migrating it, read its schema version
    and take (and give back) the write lock, as the daemon must be able to."""
    where = str(path)
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        return StoreFacts(where, exists=False, creatable=_writable_dir(parent))
    fix = "check the owner and mode of the file and its directory"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return StoreFacts(where, exists=True, error=f"cannot open it ({exc}): {fix}")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return StoreFacts(where, exists=True, error=f"not writable ({exc}): {fix}")
    finally:
        conn.close()
    return StoreFacts(where, exists=True, version=version)


def gather_shared_store(url: str) -> StoreFacts:
    """Connect to the shared PostgreSQL store, read its schema version and whether it
    takes writes (a primary, not a read-only standby); nothing is changed."""
    where = shown(url)
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            version = schema_version(conn)
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreFacts(where, exists=True, error=f"cannot connect ({reason})")
    if row and row[0]:
        return StoreFacts(
            where, exists=True, error="a read-only standby: point store.url at the primary"
        )
    return StoreFacts(where, exists=True, version=version)


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


class _Quiet:
    """The AMI client's logger: doctor prints its own lines, nothing else."""

    def debug(self, event: str, **kw: Any) -> None: ...
    def info(self, event: str, **kw: Any) -> None: ...
    def warning(self, event: str, **kw: Any) -> None: ...
    def error(self, event: str, **kw: Any) -> None: ...


def connection_settings(settings: Settings) -> ConnectionSettings:
    # As the daemon connects, but one try is the answer: no reconnect storm.
    return replace(daemon_connection(settings), reconnect_min=LOGIN_WAIT)


async def gather_ami(connection: ConnectionSettings) -> AmiFacts:
    client = AmiClient(connection, logger=_Quiet())
    await client.start()
    try:
        if not await client.wait_logged_in(LOGIN_WAIT):
            return AmiFacts(logged_in=False, error=client.last_error)
        try:
            frames = await client.action({"Action": "ListCommands"})
            missing = tuple(await missing_contexts(client))
        except AmiError as exc:  # the link went down between login and the checks
            return AmiFacts(logged_in=False, error=f"the AMI link was lost ({exc})")
        commands = frozenset(frames[0]) - {"Response", "ActionID"}
        facts = AmiFacts(logged_in=True, commands=commands, missing_contexts=missing)
        if "Originate" not in commands or missing:
            return facts
        try:
            events = await _probe(client)
        except AmiError as exc:
            return _with(facts, probe_error=str(exc))
        return _with(facts, probe_events=tuple(events))
    finally:
        await client.stop()


def _with(facts: AmiFacts, **changes: Any) -> AmiFacts:
    return AmiFacts(**{**facts.__dict__, **changes})


async def _probe(client: AmiClient) -> list[AmiEvent]:
    """The events of a call that rings nobody, up to its OriginateResponse."""
    probe_id = f"doctor-{secrets.token_hex(8)}"
    while not client.events.empty():  # what came before the probe is not its
        client.events.get_nowait()
    await client.originate(
        {
            "Channel": f"Local/rejected@{A_CONTEXT}",
            "Context": B_CONTEXT,
            "Exten": "s",
            "Priority": "1",
            "ChannelId": probe_id,
            "Timeout": "5000",
        }
    )
    events: list[AmiEvent] = []
    try:
        async with asyncio.timeout(PROBE_WAIT):
            while not _probe_over(events):
                event = await client.events.get()
                if not isinstance(event, ConnectionChange) and _of_probe(event, probe_id):
                    events.append(event)
    except TimeoutError:
        pass  # what arrived is what the checks judge
    return events


def _probe_over(events: list[AmiEvent]) -> bool:
    """The probe's Originate is answered and every channel it made has hung up: the
    OriginateResponse may come before the last DialEnd and Hangup, or after them."""
    made = {header(e, "Uniqueid") for e in events if name(e) == "Newchannel"}
    gone = {header(e, "Uniqueid") for e in events if name(e) == "Hangup"}
    answered = any(name(e) == "OriginateResponse" for e in events)
    return answered and bool(made) and made <= gone


def _of_probe(event: AmiEvent, probe_id: str) -> bool:
    linked = header(event, "Linkedid") or header(event, "DestLinkedid")
    return probe_id in (linked, header(event, "Uniqueid"))


# --- the command --------------------------------------------------------------------


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(check.ok is not True for check in self.checks)

    def lines(self) -> list[str]:
        return [check.line() for check in self.checks]


def shipped_snippet() -> str:
    return resources.files("config").joinpath("asterisk/manager_callbackd.conf").read_text()


async def diagnose(settings: Settings) -> Report:
    report = Report([tokens_check(settings.api.tokens)])
    store = settings.store
    if store.shared:
        facts = gather_shared_store(store.url.get_secret_value())
        latest = max(version for version, _ in shared_migrations())
    else:
        facts, latest = gather_store(store.path), max(v for v, _ in migrations())
    report.checks.append(store_check(facts, latest))
    ami = await gather_ami(connection_settings(settings))
    report.checks += ami_checks(settings, ami, filtered_events(shipped_snippet()))
    return report


def run(settings: Settings) -> int:
    """Print every check; 0 when all are ok, 1 otherwise."""
    report = asyncio.run(diagnose(settings))
    for line in report.lines():
        print(line, flush=True)
    return 1 if report.failed else 0
