"""The `callbackd` command: run, check-config, migrate, call, openapi.

Every flag has an environment twin (named in --help), so a systemd unit or a container
can configure the command without changing its arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import structlog

from config import ConfigError, Settings, load_settings
from config.warnings import config_warnings
from daemon.logsetup import configure_logging, secrets_of

DEFAULT_CONFIG = "/etc/callbackd/callbackd.toml"

DESCRIPTION = """\
Callback daemon for Asterisk: call A, then B, and bridge them.

commands:
  run           run the daemon (API, scheduler, call engine) until SIGTERM;
                SIGHUP reloads the config
  check-config  validate the config file and exit (0 = good, also with warnings;
                2 = bad, one line why)
  migrate       create or upgrade the store (the SQLite file, or the PostgreSQL of
                store.url), then exit (run also does this for SQLite)
  call          print the attempt timeline of a task id or call uuid from the store,
                read-only: works with the daemon stopped
  cluster       with store.url: `cluster status` lists the hosts sharing the store,
                their last heartbeat and calls; `cluster release HOST` vouches that
                no call of that gone host is still up
  doctor        check the tokens, the store, the AMI login and rights, the dialplan
                and the AMI event filter; one line per check (exit 1 = a check failed)
  openapi       print the OpenAPI document of the API
"""


def _env_flag(cmd: argparse.ArgumentParser, flag: str, env: str, help_text: str, **kw: str) -> None:
    """A flag whose default comes from `env`; --help names the variable."""
    default = os.environ.get(env, kw.pop("default", None))
    cmd.add_argument(
        flag,
        type=Path,
        default=None if default is None else Path(default),
        help=f"{help_text} (env {env}; default %(default)s)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbackd",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name != "openapi":
            _env_flag(
                cmd, "--config", "CALLBACKD_CONFIG", "TOML config file", default=DEFAULT_CONFIG
            )
        return cmd

    command("run", "Run the daemon until SIGTERM; SIGHUP reloads the config.")
    command(
        "check-config",
        "Validate the config file and exit: 0 when it is good (warnings, such as an "
        "empty AMI secret or no API tokens, are printed but do not fail it), 2 when not.",
    )
    command("migrate", "Create or upgrade the store to the current schema, then exit.")
    call = command(
        "call",
        "Print the attempt timeline of a task or a call from the store (read-only): "
        "each attempt's call record and its AMI events in order.",
    )
    call.add_argument("ident", metavar="CALL_UUID|TASK_ID", help="a call uuid or a task id")
    _env_flag(
        call,
        "--store",
        "CALLBACKD_STORE__PATH",
        "SQLite store file; without it the config's [store] path",
    )
    cluster = command(
        "cluster",
        "The hosts sharing the PostgreSQL store (store.url): `status` lists them with "
        "their last heartbeat (the database's clock), state and calls; `release HOST` "
        "tells the other hosts that no call of that gone host is still up, so its "
        "attempts are closed (needed when calls have no max_talk_time).",
    )
    cluster.add_argument("action", choices=("status", "release"))
    cluster.add_argument("host", nargs="?", metavar="HOST", help="the host to release")
    command(
        "doctor",
        "Check what a start needs, from callbackd's side: API tokens, the store, the AMI "
        "login, the AMI user's rights, the dialplan contexts and the events the user "
        "receives (with a probe call that rings nobody). One line per check; exit 0 when "
        "all are ok, 1 when one failed, 2 when the config does not load.",
    )
    command("openapi", "Print the OpenAPI document of the API as JSON.")
    return parser


def _load(path: Path) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def _fail(message: str) -> SystemExit:
    print(f"callbackd: {message}", file=sys.stderr)
    return SystemExit(1)


def _run(settings: Settings, config: Path) -> None:
    from callbackd.serve import serve
    from daemon.store.db import StoreError

    try:
        asyncio.run(serve(settings, config_path=config))
    except StoreError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:  # typically the listen address is taken
        raise _fail(f"cannot listen on {settings.api.listen}: {exc.strerror or exc}") from None


def _call(args: argparse.Namespace) -> None:
    from daemon.timeline import TimelineError, open_readonly, timeline

    store: Path = args.store or _load(args.config).store.path
    try:
        with closing(open_readonly(store)) as conn:
            lines = timeline(conn, args.ident)
    except TimelineError as exc:
        raise _fail(str(exc)) from None
    except sqlite3.Error as exc:
        raise _fail(f"{store}: {exc}") from None
    print("\n".join(lines))


def _migrate(settings: Settings) -> None:
    from daemon.store.db import Database, StoreError

    async def migrate_sqlite() -> None:
        db = await Database.open(settings.store.path)
        await db.close()

    try:
        if settings.store.shared:
            from daemon.store.pg.schema import migrate_store
            from daemon.store.pg.url import shown

            url = settings.store.url.get_secret_value()
            version = migrate_store(url)
            print(f"{shown(url)}: up to date (schema version {version})")
        else:
            asyncio.run(migrate_sqlite())
            print(f"{settings.store.path}: up to date")
    except StoreError as exc:
        raise _fail(str(exc)) from None


def _cluster(settings: Settings, action: str, host: str | None) -> None:
    from callbackd import cluster
    from daemon.store.db import StoreError

    try:
        if action == "status":
            print("\n".join(cluster.status(settings)))
        elif host is None:
            raise _fail("cluster release: name the HOST to release")
        else:
            print(cluster.release(settings, host))
    except StoreError as exc:
        raise _fail(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> None:
    try:
        _main(argv)
    except BrokenPipeError:
        # The reader went away (`callbackd call 42 | head`): nothing is left to say, and
        # the interpreter's own flush at exit must not fail again with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None


def _main(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "openapi":
        from api.app import ALL_ROUTES
        from api.openapi import build_openapi

        print(json.dumps(build_openapi(ALL_ROUTES), indent=2))
        return
    if args.command == "call":
        _call(args)
        return
    settings = _load(args.config)
    if args.command == "doctor":
        from callbackd.doctor import run

        raise SystemExit(run(settings))
    configure_logging(settings.log, secrets_of(settings))
    warnings = config_warnings(settings)
    if args.command == "check-config":
        # Warnings do not fail the check: the daemon would start with them.
        for warning in warnings:
            print(f"{args.config}: warning: {warning}", file=sys.stderr)
        counted = f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})"
        print(f"{args.config}: ok{counted if warnings else ''}")
    elif args.command == "migrate":
        _migrate(settings)
    elif args.command == "cluster":
        _cluster(settings, args.action, args.host)
    elif args.command == "run":
        for warning in warnings:
            structlog.get_logger("callbackd").warning("config warning", problem=warning)
        _run(settings, args.config)
