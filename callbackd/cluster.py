"""`callbackd cluster status` and `callbackd cluster release HOST`: the hosts that share
the PostgreSQL store, as the database sees them, and the operator's word that a gone
host's calls are over (needed only when calls have no talk limit)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from config import Settings
from daemon.store.db import StoreError
from daemon.store.pg import cluster
from daemon.store.pg.connection import Conn, connect

HEADER = ("HOST", "LAST HEARTBEAT (UTC)", "SILENT", "STATE", "CALLS", "SCHEMA")


def status_lines(rows: Sequence[cluster.HostStatus], host_timeout: float) -> list[str]:
    """The hosts as a table of aligned columns; a host silent past host_timeout is gone."""
    table = [HEADER] + [
        (
            h.host_id,
            h.last_heartbeat.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            f"{h.silent_for:.0f} s",
            "gone" if h.silent_for > host_timeout else "alive",
            str(h.calls),
            str(h.schema_version),
        )
        for h in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]


def _connect(settings: Settings) -> Conn:
    if not settings.store.shared:
        raise StoreError("cluster: there is no cluster without store.url (the shared store)")
    return connect(settings.store.url.get_secret_value())


def status(settings: Settings) -> list[str]:
    with _connect(settings) as conn:
        rows = cluster.hosts(conn)
    if not rows:
        return ["no host has joined this store yet"]
    return status_lines(rows, settings.cluster.host_timeout)


def release(settings: Settings, host_id: str) -> str:
    """Release a gone host; StoreError when it is not gone (or unknown): releasing a
    live host would let its calls be closed while they go on."""
    with _connect(settings) as conn:
        if cluster.release(conn, host_id, settings.cluster.host_timeout):
            return f"{host_id}: released; its calls are closed at the next recovery"
        known = {h.host_id: h for h in cluster.hosts(conn)}
    if host_id not in known:
        raise StoreError(f"cluster release: no host {host_id!r} in this store")
    raise StoreError(
        f"cluster release: {host_id} is alive (heard from {known[host_id].silent_for:.0f} s ago);"
        " only a host silent for cluster.host_timeout can be released"
    )
