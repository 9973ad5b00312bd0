"""The `callbackd` command: run, check-config, migrate, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from config import ConfigError, Settings, load_settings
from daemon.logsetup import configure_logging

DEFAULT_CONFIG = "/etc/callbackd/callbackd.toml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callbackd",
        description="Callback daemon for Asterisk: call A, then B, and bridge them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "--config",
            type=Path,
            default=Path(os.environ.get("CALLBACKD_CONFIG", DEFAULT_CONFIG)),
            help="TOML config file (env CALLBACKD_CONFIG; default %(default)s)",
        )
        return cmd

    with_config("run", "Run the daemon: API, scheduler and call engine, until SIGTERM.")
    with_config("check-config", "Validate the config file and exit: 0 when it is good.")
    with_config("migrate", "Create or upgrade the SQLite store, then exit.")
    sub.add_parser("openapi", help="Print the OpenAPI document of the API.")
    return parser


def _load(path: Path) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "openapi":
        from api.app import ALL_ROUTES
        from api.openapi import build_openapi

        print(json.dumps(build_openapi(ALL_ROUTES), indent=2))
        return
    settings = _load(args.config)
    configure_logging(settings.log)
    if args.command == "check-config":
        print(f"{args.config}: ok")
    elif args.command == "migrate":
        from daemon.store.db import Database

        async def migrate() -> None:
            db = await Database.open(settings.store.path)
            await db.close()

        asyncio.run(migrate())
        print(f"{settings.store.path}: up to date")
    elif args.command == "run":
        from daemon.runner import serve

        asyncio.run(serve(settings))
