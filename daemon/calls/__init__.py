"""The call engine: places each attempt through AMI and follows its call by the events
to the outcome they show. `engine.CallEngine` puts the concerns together, one module
each: placing (`placing`), when Originates may be sent (`gate`), routing events to
their calls (`routing`), closing an attempt (`ending`), checking calls against
Asterisk (`reconcile`), and the store writes of calls and their events (`writes`)."""

from daemon.calls.engine import CallEngine
from daemon.calls.listener import AttemptListener, AttemptListeners, NoListener

__all__ = ["AttemptListener", "AttemptListeners", "CallEngine", "NoListener"]
