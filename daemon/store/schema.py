"""The schema version rule both stores follow: a store whose schema is newer than this
callbackd's migrations was upgraded by a newer callbackd, whose rows this one might
misread or overwrite, so it refuses to run on it."""

from __future__ import annotations


def refusal(found: int, known: int, store: str) -> str | None:
    """Why this callbackd must not run on a store at schema version `found` when its
    newest migration is `known`; None when it may."""
    if found <= known:
        return None
    return (
        f"{store} has schema version {found}, newer than this callbackd knows ({known}):"
        " upgrade callbackd on this host"
    )
