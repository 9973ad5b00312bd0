"""The store URL as something safe to show: its password is a secret (store.url_file or
the store_url credential) and never reaches a log line or an error message."""

from __future__ import annotations

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def password_of(url: str) -> str:
    """The password the URL carries ('' for none, or for a URL that does not parse)."""
    try:
        return str(conninfo_to_dict(url).get("password") or "")
    except ProgrammingError:
        return ""


def shown(url: str) -> str:
    """The URL's host, port, database and user, for logs and messages; no password."""
    try:
        parts = conninfo_to_dict(url)
    except ProgrammingError:
        return "(a store.url that does not parse)"
    parts.pop("password", None)
    return make_conninfo("", **{k: v for k, v in parts.items() if v is not None})
