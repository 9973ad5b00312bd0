"""The one Originate that places an attempt (docs/call-flow.md), built as plain fields.

One A number: the Originate rings A's own channel and, once A answers, runs the
one-step `callbackd-dial` context that dials B. Several A numbers ringing together need
a Dial() of their own: the Originate then rings a Local channel into `callbackd-a`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ami.outcome import A_CONTEXT, A_SIDE_SUFFIX

B_CONTEXT = "callbackd-b"
DIAL_CONTEXT = "callbackd-dial"
REQUIRED_CONTEXTS = (DIAL_CONTEXT, A_CONTEXT, B_CONTEXT)
# Extra time the Originate of several A numbers waits beyond A's ring timeout, so that
# Dial() in the A context (which knows the per-number statuses) ends the ringing.
ORIGINATE_SLACK_S = 5


@dataclass(frozen=True)
class CallRequest:
    """Everything one attempt dials and shows; validated before it gets here."""

    call_uuid: str
    a_numbers: Sequence[str]
    b_number: str
    a_channel: str  # template with {number}
    b_channel: str
    a_ring_timeout: int
    b_ring_timeout: int
    a_caller_id_number: str = ""
    a_caller_id_name: str = ""
    b_caller_id_number: str = ""
    account_code: str = ""
    max_talk_time: int = 0
    variables: Mapping[str, str] = field(default_factory=dict)


def escape_variable(value: str) -> str:
    """Asterisk parses an Originate `Variable:` header like application arguments: it
    splits at commas and drops quotes and backslashes. Escaped, a value arrives as sent."""
    for special in ("\\", '"', ",", "(", ")"):
        value = value.replace(special, "\\" + special)
    return value


def channel(template: str, number: str) -> str:
    return template.replace("{number}", number)


def dial_string_of(channel_name: str) -> str:
    """What Asterisk reports as `DialString` for a channel: the part after `Tech/`."""
    return channel_name.split("/", 1)[1] if "/" in channel_name else channel_name


def a_dial_strings(request: CallRequest) -> dict[str, str]:
    """DialString -> A number, to tell which A number a dialled leg rings."""
    return {
        dial_string_of(channel(request.a_channel, number)): number for number in request.a_numbers
    }


def b_dial_data(request: CallRequest, b_caller_id_number: str) -> str:
    """Dial()'s arguments for B: its channel, ring time, the caller ID B is shown
    (`f(number)`: number only, no name) and the talk limit (`S(n)`)."""
    options = f"f({b_caller_id_number})" if b_caller_id_number else ""
    if request.max_talk_time:
        options += f"S({request.max_talk_time})"
    return f"{channel(request.b_channel, request.b_number)},{request.b_ring_timeout},{options}"


def _variable_lines(variables: Mapping[str, str], inherited: Mapping[str, str]) -> list[str]:
    # A leading "_" makes Asterisk copy a task variable to the channels dialled from
    # the one it is set on, so both legs carry it.
    lines = [f"{key}={escape_variable(value)}" for key, value in variables.items()]
    lines += [f"_{key}={escape_variable(value)}" for key, value in inherited.items()]
    return lines


def originate_fields(request: CallRequest) -> dict[str, str | list[str]]:
    """The Originate of the attempt: the direct shape for one A number, the Local shape
    for several (docs/call-flow.md)."""
    if len(request.a_numbers) != 1:
        return _local_fields(request)
    # Every value was validated at the API and in the config (numbers are digits,
    # `+ * #`; channel templates hold no separators), so Dial()'s data is built here
    # and checked by no dialplan step: the call costs Asterisk one step beyond Dial().
    b_caller_id = request.b_caller_id_number or request.a_numbers[0]
    fields: dict[str, str | list[str]] = {
        "Action": "Originate",
        "Channel": channel(request.a_channel, request.a_numbers[0]),
        "Context": DIAL_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "ChannelId": request.call_uuid,
        "Timeout": str(request.a_ring_timeout * 1000),
        "Async": "true",
        "Variable": _variable_lines(
            {"CBD_DIAL": b_dial_data(request, b_caller_id)}, request.variables
        ),
    }
    return _with_caller_id_and_account(fields, request)


def _with_caller_id_and_account(
    fields: dict[str, str | list[str]], request: CallRequest
) -> dict[str, str | list[str]]:
    if request.a_caller_id_number or request.a_caller_id_name:
        fields["CallerID"] = f'"{request.a_caller_id_name}" <{request.a_caller_id_number}>'
    if request.account_code:
        fields["Account"] = request.account_code
    return fields


def _local_fields(request: CallRequest) -> dict[str, str | list[str]]:
    a_dial = "&".join(channel(request.a_channel, n) for n in request.a_numbers)
    variables = {
        "CBD_CALL_UUID": request.call_uuid,
        "CBD_A_DIAL": a_dial,
        "CBD_A_TIMEOUT": str(request.a_ring_timeout),
        "CBD_A_CID_NUM": request.a_caller_id_number,
        "CBD_A_CID_NAME": request.a_caller_id_name,
        "CBD_B_DIAL": channel(request.b_channel, request.b_number),
        "CBD_B_TIMEOUT": str(request.b_ring_timeout),
        "CBD_B_CID_NUM": request.b_caller_id_number,
        "CBD_B_OPTS": f"S({request.max_talk_time})" if request.max_talk_time else "",
    }
    fields: dict[str, str | list[str]] = {
        "Action": "Originate",
        "Channel": f"Local/s@{A_CONTEXT}",
        "Context": B_CONTEXT,
        "Exten": "s",
        "Priority": "1",
        "ChannelId": request.call_uuid,
        "OtherChannelId": request.call_uuid + A_SIDE_SUFFIX,
        "Timeout": str((request.a_ring_timeout + ORIGINATE_SLACK_S) * 1000),
        "Async": "true",
        "Variable": _variable_lines(variables, request.variables),
    }
    return _with_caller_id_and_account(fields, request)
