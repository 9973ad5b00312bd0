"""AMI events as the rest of callbackd sees them: plain dicts, in arrival order.

An event keeps the header names exactly as Asterisk sent them. A header that Asterisk
repeated (``ChanVariable``, ``Output``) holds all its values joined by ``"\\n"``; values
never contain a newline on the wire, so nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

AmiEvent = dict[str, str]


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """Queued among the events whenever the AMI login state changes.

    After ``logged_in=False`` events may have been missed; after the next
    ``logged_in=True`` the consumer should reconcile (e.g. ``CoreShowChannels``).
    """

    logged_in: bool
    reason: str


def header(ev: AmiEvent, key: str, default: str = "") -> str:
    """The value of header ``key``, matched case-insensitively.

    Asterisk is not consistent across events (``Uniqueid`` vs ``UniqueID``).
    """
    value = ev.get(key)
    if value is not None:
        return value
    wanted = key.lower()
    size = len(wanted)
    for k, v in ev.items():
        # Only a name of the same length can match: most are passed over without
        # lower(), which matters because the tracker asks for absent headers often.
        if len(k) == size and k.lower() == wanted:
            return v
    return default


def name(ev: AmiEvent) -> str | None:
    """The event name (``Newchannel``, ``Hangup``, ...), or None for a response."""
    return ev.get("Event")


def uniqueid(ev: AmiEvent) -> str:
    return header(ev, "Uniqueid")


def linkedid(ev: AmiEvent) -> str:
    return header(ev, "Linkedid")


def action_id(ev: AmiEvent) -> str:
    return header(ev, "ActionID")
