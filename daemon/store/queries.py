"""Loads the named SQL statements of queries.sql, so SQL stays in one file."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME_RE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse_named_queries(text: str) -> dict[str, str]:
    parts = _NAME_RE.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@cache
def queries() -> dict[str, str]:
    return parse_named_queries(resources.files(__package__).joinpath("queries.sql").read_text())


def q(name: str) -> str:
    """The SQL of one named query; KeyError names a query that does not exist."""
    return queries()[name]


def migrations(package: str = __package__) -> list[tuple[int, str]]:
    """(version, script) of every migration of a store's package (the SQLite store's by
    default), in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)
