"""Connections to the shared store: dict rows (read by column name, as the SQLite
store's rows are), a bounded connect, and a failure told as StoreError naming the
store without its password."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from daemon.store.db import StoreError
from daemon.store.pg.url import shown

Conn = psycopg.Connection[DictRow]
CONNECT_TIMEOUT_S = 10


def reason(exc: psycopg.Error) -> str:
    """The first line of a driver error (libpq's messages never hold the password)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, **kwargs: Any) -> Conn:
    try:
        return psycopg.connect(
            url, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S, **kwargs
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot open the store {shown(url)}: {reason(exc)}") from None
