"""The times the API reads: `YYYY-MM-DD HH:MM[:SS]` in UTC, or ISO 8601 with an offset
(`2026-03-01T09:30:00+03:00`, `2026-03-01T06:30:00Z`); a time filter also takes a bare
date. One parser for bodies and query parameters, so every time accepts the same forms.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

# [0-9], not \d: \d also matches other scripts' digits.
_UTC_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}(:[0-9]{2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FORMS = "'YYYY-MM-DD HH:MM[:SS]' (UTC) or ISO 8601 with an offset"


def parse_utc_input(text: str, *, bare_date: bool = False) -> datetime:
    """The moment `text` names, in UTC. `bare_date` also takes `YYYY-MM-DD` (its
    midnight, UTC). Raises ValueError with the words an API answer shows."""
    text = text.strip()
    # isoformat/fromisoformat are C fast paths; strptime costs several times more, and
    # this runs for every task of a 10,000-task POST.
    if _UTC_TEXT.fullmatch(text) or (bare_date and _DATE.fullmatch(text)):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError("is not a valid date and time") from None
    if _DATE.fullmatch(text):
        raise ValueError(f"needs a time of day: {FORMS}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        forms = f"'YYYY-MM-DD', {FORMS}" if bare_date else FORMS
        raise ValueError(f"must be {forms}") from None
    if parsed.tzinfo is None:
        raise ValueError("an ISO 8601 time needs an offset, e.g. +03:00 or Z")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is past the last datetime in UTC
        raise ValueError("is out of range once converted to UTC") from None
