"""Whether callbackd's two dialplan contexts are loaded on the PBX (asked with
ShowDialPlan), and the one line that tells an operator how to load them. The call
engine asks at every login; `callbackd doctor` asks on demand."""

from __future__ import annotations

from collections.abc import Sequence

from ami.client import AmiActionError, AmiClient
from ami.originate import REQUIRED_CONTEXTS


async def missing_contexts(ami: AmiClient) -> list[str]:
    """The contexts of REQUIRED_CONTEXTS that Asterisk does not have. A lost link
    raises (AmiNotConnected, AmiConnectionLost): it says nothing about the dialplan."""
    missing = []
    for context in REQUIRED_CONTEXTS:
        try:
            await ami.action({"Action": "ShowDialPlan", "Context": context})
        except AmiActionError:  # "Did not find context ..."
            missing.append(context)
    return missing


def dialplan_problem(missing: Sequence[str]) -> str | None:
    """What to do about the missing contexts; None when none is missing."""
    if not missing:
        return None
    return (
        f"dialplan context(s) {', '.join(missing)} not loaded on the PBX: include "
        "config/asterisk/extensions_callbackd.conf and run 'dialplan reload'"
    )
