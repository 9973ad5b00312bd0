"""Domain models: what a queue and a callback task are, and the rules their fields obey.

The API validates request bodies with these same models, so a rule lives in one place.
Numbers and caller IDs end up inside AMI headers and dialplan arguments: anything that
could break out of them is rejected here, never cleaned.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from enum import StrEnum
from types import GenericAlias
from typing import Annotated, Any, Literal, NotRequired, Required, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetPydanticSchema,
    PlainSerializer,
    StrictInt,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
    with_config,
)
from pydantic.networks import UrlConstraints
from pydantic_core import InitErrorDetails, PydanticCustomError, Url, core_schema
from typing_extensions import TypedDict

from daemon.timetext import FORMS, parse_utc_input

MAX_TASKS_PER_REQUEST = 10_000
MAX_PAUSE = 864_000

NUMBER_RE = re.compile(r"\+?[0-9*#]{1,32}")
VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Characters that could end an AMI header, split a dialplan argument or join channels.
FORBIDDEN_IN_TEXT = frozenset('\r\n/@&,;|\\"<>$')


class TaskStatus(StrEnum):
    """Where a task is in its lifecycle (docs/lifecycle.md): `scheduled` waits for its
    start time; `executed` is in a call attempt; `delayed` waits out the pause before
    the next attempt; `delayed_concurrent_task` is due but a concurrency limit (queue,
    extension profile or PBX) is full; `delayed_interval` is due but its queue's
    interval is closed; `delayed_asr` is due but its extension profile's ASR guard
    holds it; `finished` is done (see `finish_result`)."""

    SCHEDULED = "scheduled"
    EXECUTED = "executed"
    DELAYED = "delayed"
    DELAYED_CONCURRENT = "delayed_concurrent_task"
    DELAYED_INTERVAL = "delayed_interval"
    DELAYED_ASR = "delayed_asr"
    FINISHED = "finished"


class FinishResult(StrEnum):
    """How a finished task ended: `success` (A and B were connected) or `failed`."""

    SUCCESS = "success"
    FAILED = "failed"


WAITING_STATUSES = (
    TaskStatus.SCHEDULED,
    TaskStatus.DELAYED,
    TaskStatus.DELAYED_CONCURRENT,
    TaskStatus.DELAYED_INTERVAL,
    TaskStatus.DELAYED_ASR,
)


# isoformat/fromisoformat are C fast paths; strftime/strptime cost several times more,
# and these run for every task of a 10,000-task POST.


def format_time(moment: datetime) -> str:
    """UTC text `YYYY-MM-DD HH:MM:SS`, as every time in the API and the store."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")


def format_event_time(moment: datetime) -> str:
    """UTC text `YYYY-MM-DD HH:MM:SS.mmm`: when an AMI event was received. Milliseconds,
    because a call's events come many to the second."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "milliseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def unsafe_text_problem(value: str) -> str:
    """Why a text is not SafeText, in the words the API has always used for variables."""
    if not value.isprintable():
        return "must not contain control characters"
    bad = sorted(set(value) & FORBIDDEN_IN_TEXT)
    if bad:
        return f"must not contain {' '.join(repr(ch) for ch in bad)}"
    return PATTERN_MESSAGES[VALIDATED_SAFE_TEXT]


def _pause_schema(_source: Any, _handler: Any) -> core_schema.CoreSchema:
    """Seconds as an int or a string of ASCII digits (the hosted API allows both), never
    a bool; a whole float counts as its int. A union in pydantic-core: as a Python
    validator it was called for every task of a batch. Other scripts' digits are
    refused, though int() would read them."""
    seconds = core_schema.int_schema(ge=0, le=MAX_PAUSE)
    return core_schema.union_schema(
        [
            core_schema.int_schema(strict=True, ge=0, le=MAX_PAUSE),
            core_schema.chain_schema([core_schema.float_schema(strict=True), seconds]),
            core_schema.chain_schema([core_schema.str_schema(pattern=r"^\s*[0-9]+\s*$"), seconds]),
        ],
        mode="left_to_right",
        custom_error_type="pause",
        custom_error_message=f"must be 0-{MAX_PAUSE} seconds, as an integer or a string of digits",
    )


def _start_time(value: Any) -> Any:
    """`YYYY-MM-DD HH:MM[:SS]` in UTC, or ISO 8601 with an offset; stored in UTC."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string {FORMS}")
    return parse_utc_input(value)


# The same rules as JSON Schema patterns, so the OpenAPI document states them in a
# syntax every JSON Schema tool reads; VALIDATED_SAFE_TEXT below is what validation runs.
_CONTROL_CHARACTERS = "\\x00-\\x1f\\x7f-\\x9f"
_REFUSED_IN_TEXT = _CONTROL_CHARACTERS + "".join(
    f"\\u{ord(ch):04x}" for ch in sorted(FORBIDDEN_IN_TEXT)
)
NUMBER_PATTERN = f"^{NUMBER_RE.pattern}$"
SAFE_TEXT_PATTERN = f"^[^{_REFUSED_IN_TEXT}]*$"
_SAFE_TEXT_SCHEMA = Field(json_schema_extra={"pattern": SAFE_TEXT_PATTERN})
PRINTABLE_TEXT_PATTERN = f"^[^{_CONTROL_CHARACTERS}]*$"
_PRINTABLE_TEXT_SCHEMA = Field(json_schema_extra={"pattern": PRINTABLE_TEXT_PATTERN})

# What validation really runs, in pydantic-core's Rust regex engine (a Python validator
# per field made a 10,000-task POST several times slower). "Printable" is what
# str.isprintable() accepts: letters, marks, numbers, punctuation, symbols and space.
VALIDATED_SAFE_TEXT = (
    r"^[[\p{L}\p{M}\p{N}\p{P}\p{S} ]--["
    + "".join("\\\\" if ch == "\\" else ch for ch in sorted(FORBIDDEN_IN_TEXT - {"\r", "\n"}))
    + r"]]*$"
)
# Names of tasks and queues never reach Asterisk: any printable text, "&" and "/" too.
VALIDATED_PRINTABLE_TEXT = r"^[\p{L}\p{M}\p{N}\p{P}\p{S} ]*$"
VARIABLE_NAME_PATTERN = f"^{VARIABLE_NAME_RE.pattern}$"
MAX_VARIABLE_TEXT = 200
# The messages a client sees when one of these patterns is not matched.
PATTERN_MESSAGES = {
    NUMBER_PATTERN: "must be '+' (optional) then 1-32 of the characters 0-9 * #",
    VARIABLE_NAME_PATTERN: "must match [A-Za-z_][A-Za-z0-9_]{0,63}",
    VALIDATED_SAFE_TEXT: "must be printable text without control characters or any of "
    + " ".join(sorted(FORBIDDEN_IN_TEXT - {"\r", "\n"})),
    VALIDATED_PRINTABLE_TEXT: "must be printable text without control characters",
}
PhoneNumber = Annotated[str, Field(pattern=NUMBER_PATTERN)]
SafeText = Annotated[str, Field(pattern=VALIDATED_SAFE_TEXT), _SAFE_TEXT_SCHEMA]
PrintableText = Annotated[str, Field(pattern=VALIDATED_PRINTABLE_TEXT), _PRINTABLE_TEXT_SCHEMA]
CallerIdName = Annotated[SafeText, Field(max_length=80)]
Pause = Annotated[
    int,
    GetPydanticSchema(_pause_schema),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_PAUSE},
                {"type": "string", "pattern": "^[0-9]{1,6}$"},
            ]
        },
        mode="validation",
    ),
]
# pydantic's HttpUrl rules (http/https, at most 2083 characters) on the Rust URL type:
# HttpUrl wraps each value in a Python validator, a cost paid for every task of a batch.
WebhookUrl = Annotated[Url, UrlConstraints(max_length=2083, allowed_schemes=["http", "https"])]
# What the API accepts as a start time, stated exactly for the OpenAPI document (the
# validator takes more of ISO 8601; these are the forms it promises).
UTC_TEXT_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}(:[0-9]{2})?$"
ISO_WITH_OFFSET_PATTERN = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?"
    "(Z|[+-][0-9]{2}:[0-9]{2})$"
)
# How every time in a response is written.
UTC_TIME_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
StartTime = Annotated[
    datetime | None,
    BeforeValidator(_start_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": UTC_TEXT_PATTERN},
                {"type": "string", "pattern": ISO_WITH_OFFSET_PATTERN},
                {"type": "null"},
            ]
        },
        mode="validation",
    ),
]
UtcTime = Annotated[str, WithJsonSchema({"type": "string", "pattern": UTC_TIME_PATTERN})]
AniList = Annotated[list[PhoneNumber], Field(max_length=50)]
VariableName = Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN)]
VariableText = Annotated[SafeText, Field(max_length=MAX_VARIABLE_TEXT)]


def _variables_schema(schema: dict[str, Any]) -> None:
    """Every name must match (propertyNames), not only the names that match
    (patternProperties), which is how pydantic would state a pattern on dict keys."""
    schema.pop("patternProperties", None)
    schema["propertyNames"] = {"pattern": VARIABLE_NAME_PATTERN}
    schema["additionalProperties"] = {
        "type": "string",
        "maxLength": MAX_VARIABLE_TEXT,
        "pattern": SAFE_TEXT_PATTERN,
    }


A_NUMBERS_REPEATED = "a_number and extended_a_numbers must all differ"


def a_numbers_differ(a_number: str, extended: list[str]) -> bool:
    return not extended or (a_number not in extended and len(set(extended)) == len(extended))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# What each task field means, said once for the input and the output models.
TASK_FIELD_DOCS = {
    "name": "Free text for the client's own use, up to 255 printable characters; "
    "it never reaches the PBX.",
    "a_number": "The number called first: '+' (optional) then 1-32 of 0-9 * #.",
    "b_number": "The number called once an A number answered; then A and B are bridged.",
    "extension_id": "The extension profile of the config to call with (account code, "
    "caller ID, channel templates, its own concurrency cap); null = the default "
    "profile. An id the config does not have is a 422.",
    "try_count": "Attempts in total, 1-50.",
    "try_again_pause": "Seconds from a failed attempt's end to the next attempt, "
    "0-864000, as an integer or a string of digits.",
    "try_count_caller": "0 = off, else a separate budget (1-50) of attempts in which no "
    "A number answered: once it is used up the task finishes even with try_count left.",
    "try_again_pause_caller": "The pause (0-864000 s) after an attempt in which no A "
    "number answered; null = try_again_pause.",
    "url_before": "POSTed once, before the first attempt (webhook event `before`).",
    "url_before_again": "POSTed before each later attempt (event `before_again`).",
    "url_success": "POSTed when A and B are connected (event `success`).",
    "url_after": "POSTed when the task finishes, with its result (event `after`).",
    "start_time_utc": "When the task may start: 'YYYY-MM-DD HH:MM[:SS]' in UTC, or ISO "
    "8601 with an offset ('2026-05-01T09:00:00+03:00', 'Z' for UTC). Absent, null or in "
    "the past: as soon as possible.",
    "callback_params": "Caller ID shown to A and the extra A numbers rung with a_number.",
    "variables": "Up to 50 channel variables set on both call legs: names "
    "[A-Za-z_][A-Za-z0-9_]{0,63}, values up to 200 characters.",
    "attempts_src_ani_numbers": "The caller ID number shown to A on attempt 1, 2, ...; "
    "the last entry repeats. Up to 50.",
    "attempts_dst_ani_numbers": "The caller ID number shown to B on attempt 1, 2, ...; "
    "the last entry repeats. Without it B sees the profile's caller_id_number, else the "
    "A number that answered. Up to 50.",
}


def _doc(name: str) -> Any:
    return Field(description=TASK_FIELD_DOCS[name])


class CallbackParams(_Strict):
    """How A is called: the caller ID A's phone shows, and more A numbers."""

    caller_id_name: Annotated[
        CallerIdName | None,
        Field(description="The caller ID name A's phone shows, up to 80 characters."),
    ] = None
    caller_id_number: Annotated[
        PhoneNumber | None,
        Field(
            description="The caller ID number A's phone shows (attempts_src_ani_numbers "
            "wins over it)."
        ),
    ] = None
    extended_a_numbers: Annotated[
        list[PhoneNumber],
        Field(
            max_length=10,
            description="Up to 10 more A numbers, rung together with a_number; the first "
            "to answer is connected to B and the others stop ringing.",
        ),
    ] = Field(default_factory=list)


class TaskInput(_Strict):
    """A callback task as a client submits it."""

    name: Annotated[PrintableText, Field(max_length=255), _doc("name")] = ""
    a_number: Annotated[PhoneNumber, _doc("a_number")]
    b_number: Annotated[PhoneNumber, _doc("b_number")]
    extension_id: Annotated[StrictInt | None, _doc("extension_id")] = None
    try_count: Annotated[StrictInt, Field(ge=1, le=50), _doc("try_count")] = 1
    try_again_pause: Annotated[Pause, _doc("try_again_pause")] = 60
    try_count_caller: Annotated[StrictInt, Field(ge=0, le=50), _doc("try_count_caller")] = 0
    try_again_pause_caller: Annotated[Pause | None, _doc("try_again_pause_caller")] = None
    url_before: Annotated[WebhookUrl | None, _doc("url_before")] = None
    url_before_again: Annotated[WebhookUrl | None, _doc("url_before_again")] = None
    url_success: Annotated[WebhookUrl | None, _doc("url_success")] = None
    url_after: Annotated[WebhookUrl | None, _doc("url_after")] = None
    start_time_utc: Annotated[StartTime, _doc("start_time_utc")] = None
    callback_params: Annotated[CallbackParams, _doc("callback_params")] = Field(
        default_factory=CallbackParams
    )
    variables: Annotated[
        dict[VariableName, VariableText],
        Field(max_length=50, json_schema_extra=_variables_schema),
        _doc("variables"),
    ] = Field(default_factory=dict)
    attempts_src_ani_numbers: Annotated[AniList, _doc("attempts_src_ani_numbers")] = Field(
        default_factory=list
    )
    attempts_dst_ani_numbers: Annotated[AniList, _doc("attempts_dst_ani_numbers")] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _a_numbers_distinct(self) -> TaskInput:
        if not a_numbers_differ(self.a_number, self.callback_params.extended_a_numbers):
            raise ValueError(A_NUMBERS_REPEATED)
        return self

    def a_numbers(self) -> list[str]:
        return [self.a_number, *self.callback_params.extended_a_numbers]

    def stored_params(self) -> str:
        """The JSON kept in the store; `start_time_utc` travels in its own column."""
        return self.model_dump_json(exclude={"start_time_utc"}, exclude_defaults=True)


def _fields_dict(model: type[BaseModel]) -> Any:
    """A TypedDict with the fields and field rules of `model`, nested models included.
    It validates to plain dicts that hold only the fields given: no model instance, no
    defaults filled in. Model validators are not carried over (see TASK_BATCH)."""
    fields = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.rebuild_annotation()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            annotation = _fields_dict(info.annotation)
        fields[name] = Required[annotation] if info.is_required() else NotRequired[annotation]
    typed_dict = cast(Any, TypedDict)(f"{model.__name__}Fields", fields)
    return with_config(model.model_config)(typed_dict)


# A bulk add validated in one pass of pydantic-core, from the request bytes to dicts of
# the given fields: a TaskInput per task costs more than the whole rest of the request.
# It applies every field rule of TaskInput; the one rule across fields,
# `a_numbers_differ`, is for the caller to check.
TaskFields = _fields_dict(TaskInput)
TASK_BATCH: TypeAdapter[dict[str, list[dict[str, Any]]]] = TypeAdapter(
    with_config(ConfigDict(extra="forbid"))(
        cast(Any, TypedDict)(
            "TaskBatch",
            {
                "tasks": Annotated[
                    GenericAlias(list, TaskFields),
                    Field(min_length=1, max_length=MAX_TASKS_PER_REQUEST),
                ]
            },
        )
    )
)


class TaskOutput(BaseModel):
    """A task as the API returns it: its input fields and where it stands."""

    id: Annotated[int, Field(description="The task's id, never given twice.")]
    scheduler_id: Annotated[int, Field(description="The id of the task's queue.")]
    name: Annotated[str, _doc("name")]
    a_number: Annotated[str, _doc("a_number")]
    b_number: Annotated[str, _doc("b_number")]
    extension_id: Annotated[int | None, _doc("extension_id")]
    try_count: Annotated[int, _doc("try_count")]
    try_again_pause: Annotated[int, _doc("try_again_pause")]
    try_count_caller: Annotated[int, _doc("try_count_caller")]
    try_again_pause_caller: Annotated[int | None, _doc("try_again_pause_caller")]
    url_before: Annotated[str | None, _doc("url_before")]
    url_before_again: Annotated[str | None, _doc("url_before_again")]
    url_success: Annotated[str | None, _doc("url_success")]
    url_after: Annotated[str | None, _doc("url_after")]
    start_time_utc: Annotated[
        UtcTime | None,
        Field(description="The start time asked for, in UTC; null = as soon as possible."),
    ]
    callback_params: Annotated[CallbackParams, _doc("callback_params")]
    variables: Annotated[dict[str, str], _doc("variables")]
    attempts_src_ani_numbers: Annotated[list[str], _doc("attempts_src_ani_numbers")]
    attempts_dst_ani_numbers: Annotated[list[str], _doc("attempts_dst_ani_numbers")]
    status: Annotated[TaskStatus, Field(description="Where the task is in its lifecycle.")]
    finish_result: Annotated[
        FinishResult | None,
        Field(description="`success` or `failed` once finished; null until then."),
    ]
    finish_comment: Annotated[
        str,
        Field(
            description="Why the task finished, in plain words ('A and B connected', "
            "'A busy', 'B did not answer', 'cancelled', ...); before that, the last "
            "attempt's reason, or why a held task waits (calling hours, ASR guard)."
        ),
    ]
    cdr: Annotated[
        str,
        Field(
            description="The call_uuid of the latest attempt's call (its call history "
            "record); empty before the first call."
        ),
    ]
    attempts_made: Annotated[int, Field(description="Attempts used so far.")]
    next_attempt_utc: Annotated[
        UtcTime | None,
        Field(
            description="When the task may start its next attempt (or when a closed "
            "interval opens); null while in a call, while the ASR guard holds it, and "
            "once finished."
        ),
    ]
    create_date_utc: Annotated[UtcTime, Field(description="When the task was added.")]


_QUEUE_NAME = "The queue's name, 1-255 printable characters."
_QUEUE_COMMENT = "Free text, up to 1000 characters."
_QUEUE_STATUS = "`on` starts due tasks; `off` (the default) starts nothing new, calls "
"in progress finish."
_QUEUE_LIMIT = "At most this many of the queue's tasks in a call at once, 1-10000."


class QueueInput(_Strict):
    """A queue as a client creates it."""

    name: Annotated[PrintableText, Field(min_length=1, max_length=255, description=_QUEUE_NAME)]
    comment: Annotated[str, Field(max_length=1000, description=_QUEUE_COMMENT)] = ""
    status: Annotated[Literal["on", "off"], Field(description=_QUEUE_STATUS)] = "off"
    concurrent_task_limit: Annotated[
        StrictInt, Field(ge=1, le=10_000, description=_QUEUE_LIMIT)
    ] = 10
    interval_id: Annotated[
        StrictInt | None,
        Field(
            description="The client's time interval that bounds when the queue starts calls; "
            "null = always open."
        ),
    ] = None


class QueueUpdate(_Strict):
    """PUT on a queue changes only the fields it names."""

    name: Annotated[
        Annotated[PrintableText, Field(min_length=1, max_length=255)] | None,
        Field(description=_QUEUE_NAME),
    ] = None
    comment: Annotated[
        Annotated[str, Field(max_length=1000)] | None, Field(description=_QUEUE_COMMENT)
    ] = None
    status: Annotated[Literal["on", "off"] | None, Field(description=_QUEUE_STATUS)] = None
    concurrent_task_limit: Annotated[
        Annotated[StrictInt, Field(ge=1, le=10_000)] | None, Field(description=_QUEUE_LIMIT)
    ] = None
    interval_id: Annotated[
        StrictInt | None,
        Field(description="A null takes the queue off its interval; absent leaves it."),
    ] = None


class QueueOutput(BaseModel):
    """A queue with its counters."""

    id: Annotated[int, Field(description="The queue's id (the scheduler_id of its tasks).")]
    name: Annotated[str, Field(description=_QUEUE_NAME)]
    comment: Annotated[str, Field(description=_QUEUE_COMMENT)]
    status: Annotated[Literal["on", "off"], Field(description=_QUEUE_STATUS)]
    concurrent_task_limit: Annotated[int, Field(description=_QUEUE_LIMIT)]
    create_date_utc: Annotated[UtcTime, Field(description="When the queue was created.")]
    task_count: Annotated[int, Field(description="Tasks in the queue, finished ones included.")]
    sched_task_count: Annotated[int, Field(description="Tasks not finished yet.")]
    last_call_date: Annotated[
        UtcTime | None,
        Field(description="When the queue's latest call started; null before the first."),
    ]
    interval_id: Annotated[
        int | None, Field(description="The queue's time interval; null = always open.")
    ]
    interval_open: bool = Field(description="Whether the queue's interval is open now.")
    next_open_utc: Annotated[
        UtcTime | None,
        Field(
            description="When the closed interval opens next (UTC); null while open, "
            "or when it does not open within 366 days."
        ),
    ]


def _strict_text(pattern: str, kind: type[time] | type[date] | type[datetime], form: str) -> Any:
    """A BeforeValidator taking only the one text form the platform writes."""
    compiled = re.compile(pattern)

    def parse(value: Any) -> Any:
        if value is None or isinstance(value, kind):
            return value
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"must be '{form}'")
        try:
            parsed = kind.fromisoformat(value)
        except ValueError:
            raise ValueError(f"is not a valid {form}") from None
        # Far from the ends of the calendar: zone and day arithmetic stays in range.
        if not isinstance(parsed, time) and not 1970 <= parsed.year <= 9998:
            raise ValueError("must be in the years 1970 to 9998")
        return parsed

    return BeforeValidator(parse)


_DATETIME_SERIALIZER = PlainSerializer(lambda v: v.isoformat(" "), return_type=str)
LocalTime = Annotated[
    time,
    _strict_text(r"\d\d:\d\d:\d\d", time, "hh:mm:ss"),
    WithJsonSchema({"type": "string", "pattern": r"^\d\d:\d\d:\d\d$"}),
]
LocalDate = Annotated[
    date,
    _strict_text(r"\d{4}-\d\d-\d\d", date, "YYYY-MM-DD"),
    WithJsonSchema({"type": "string", "pattern": r"^\d{4}-\d\d-\d\d$"}),
]
LocalDateTime = Annotated[
    datetime,
    _strict_text(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", datetime, "YYYY-MM-DD HH:MM:SS"),
    _DATETIME_SERIALIZER,
    WithJsonSchema({"type": "string", "pattern": r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"}),
]
DayOfWeek = Annotated[StrictInt, Field(ge=1, le=7)]
DayOfMonth = Annotated[StrictInt, Field(ge=1, le=31)]
# Fields that come together: given one, the others are required.
CONDITION_GROUPS = (
    ("start_dow", "end_dow"),
    ("start_mday", "end_mday"),
    ("start_time", "end_time"),
    ("start_datetime", "end_datetime"),
    ("sched_active_days", "sched_skip_days", "sched_start_date"),
)


def _field_error(field: str, message: str, value: Any) -> ValidationError:
    """An error placed on one field from a rule across fields, so a 422 names it."""
    error = PydanticCustomError("condition", message)
    return ValidationError.from_exception_data(
        "IntervalCondition", [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


class IntervalCondition(_Strict):
    """One condition of an interval: its fields combine with AND; local times are in the
    interval's time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_dow: DayOfWeek | None = Field(
        None, description="First day of the week, 1 = Sunday ... 7 = Saturday"
    )
    end_dow: DayOfWeek | None = Field(
        None, description="Last day of the week (inclusive); before start_dow it wraps around"
    )
    start_mday: DayOfMonth | None = Field(None, description="First day of the month, 1-31")
    end_mday: DayOfMonth | None = Field(
        None, description="Last day of the month (inclusive); before start_mday it wraps around"
    )
    month: Annotated[StrictInt, Field(ge=1, le=12)] | None = Field(
        None, description="Month, 1 = January ... 12 = December"
    )
    start_time: LocalTime | None = Field(None, description="Opens at this local time, hh:mm:ss")
    end_time: LocalTime | None = Field(
        None, description="Open through this local second, hh:mm:ss; later than start_time"
    )
    start_datetime: LocalDateTime | None = Field(
        None,
        description="Local 'YYYY-MM-DD HH:MM:SS' from which the condition is open; "
        "with end_datetime it overrides every other field of the condition",
    )
    end_datetime: LocalDateTime | None = Field(
        None, description="Local 'YYYY-MM-DD HH:MM:SS' through which the condition is open"
    )
    sched_active_days: Annotated[StrictInt, Field(ge=1, le=366)] | None = Field(
        None, description="Shift pattern: this many days on ..."
    )
    sched_skip_days: Annotated[StrictInt, Field(ge=0, le=366)] | None = Field(
        None, description="... then this many days off, repeated ..."
    )
    sched_start_date: LocalDate | None = Field(
        None, description="... counted from this local date, YYYY-MM-DD (off before it)"
    )

    @model_validator(mode="after")
    def _pairs(self) -> IntervalCondition:
        for group in CONDITION_GROUPS:
            given = [name for name in group if getattr(self, name) is not None]
            if given and len(given) < len(group):
                missing = next(name for name in group if getattr(self, name) is None)
                raise _field_error(missing, f"required with {given[0]}", None)
        if self.start_time and self.end_time and self.start_time >= self.end_time:
            raise _field_error(
                "end_time",
                "must be later than start_time (write a window over midnight as two conditions)",
                self.end_time.isoformat(),
            )
        if self.start_datetime and self.end_datetime and self.start_datetime > self.end_datetime:
            raise _field_error(
                "end_datetime", "must not be before start_datetime", str(self.end_datetime)
            )
        return self


def _known_zone(name: str) -> str:
    from daemon.intervals import known_zones

    if name not in known_zones():
        raise ValueError("is not an IANA time zone name (such as Europe/Moscow)")
    return name


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64),
    AfterValidator(_known_zone),
]
IntervalName = Annotated[PrintableText, Field(min_length=1, max_length=255)]
Conditions = Annotated[list[IntervalCondition], Field(max_length=100)]


class IntervalInput(_Strict):
    """A time interval: when the queues that use it may start calls."""

    name: IntervalName = Field(description="1-255 characters")
    timezone: TimeZoneName = Field(
        description="IANA time zone of the conditions' local times, e.g. Europe/Moscow"
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Open when any condition matches; no conditions = always open (at most 100)",
    )


class IntervalUpdate(_Strict):
    """PUT on an interval changes only the fields it names."""

    name: IntervalName | None = Field(None, description="1-255 characters")
    timezone: TimeZoneName | None = Field(
        None, description="IANA time zone of the conditions' local times, e.g. Europe/Moscow"
    )
    conditions: Conditions | None = Field(
        None,
        description="Open when any condition matches; no conditions = always open (at most 100)",
    )


class IntervalOutput(BaseModel):
    """A time interval with whether it is open now."""

    id: int = Field(description="The interval's id (a queue's interval_id).")
    name: str = Field(description="1-255 characters")
    timezone: str = Field(description="IANA time zone of the conditions' local times")
    conditions: list[IntervalCondition] = Field(
        description="Open when any condition matches; no conditions = always open"
    )
    create_date_utc: UtcTime = Field(description="When the interval was created.")
    is_open: bool = Field(description="Whether the interval is open now")
    next_open_utc: str | None = Field(
        description="When a closed interval opens next (UTC); null while open, "
        "or when it does not open within 366 days"
    )


class CallPlan(BaseModel):
    """What an attempt dials and shows, fixed before the Originate is sent."""

    a_numbers: list[str]
    b_number: str
    a_caller_id_number: str = ""
    a_caller_id_name: str = ""
    b_caller_id_number: str = ""
    account_code: str = ""
    interval_zone: str | None = None
    interval_zone_reason: str | None = None


class AttemptSummary(BaseModel):
    """One attempt's call, as the call history and the webhooks tell it."""

    call_uuid: Annotated[
        str,
        Field(
            description="The attempt's id, sent as the Originate's ChannelId, so every "
            "Asterisk channel of the call carries it in Uniqueid/Linkedid."
        ),
    ]
    task_id: Annotated[int, Field(description="The task the attempt belongs to.")]
    scheduler_id: Annotated[int, Field(description="The task's queue.")]
    attempt: Annotated[int, Field(description="1 for the task's first attempt, 2, ...")]
    state: Annotated[
        Literal["originating", "in_call", "ended"],
        Field(
            description="`originating` until Asterisk answered the Originate, `in_call` "
            "while the call is up, `ended` once it is over."
        ),
    ]
    a_numbers: Annotated[
        list[str], Field(description="The A numbers rung together, a_number first.")
    ]
    b_number: Annotated[str, Field(description="The B number.")]
    answered_a_number: Annotated[
        str | None, Field(description="The A number that answered; null if none did.")
    ]
    a_caller_id_number: Annotated[
        str, Field(description="The caller ID number sent to A; empty = none.")
    ]
    a_caller_id_name: Annotated[
        str, Field(description="The caller ID name sent to A; empty = none.")
    ]
    b_caller_id_number: Annotated[
        str,
        Field(description="The caller ID number sent to B; empty = the A number that answered."),
    ]
    start_time_gmt: Annotated[UtcTime, Field(description="When the attempt started (UTC).")]
    a_answer_time_gmt: Annotated[
        UtcTime | None, Field(description="When an A number answered; null if none did.")
    ]
    bridged_time_gmt: Annotated[
        UtcTime | None,
        Field(description="When A and B were connected; null if they were not."),
    ]
    end_time_gmt: Annotated[
        UtcTime | None, Field(description="When the call ended; null while it goes on.")
    ]
    duration: Annotated[
        int | None, Field(description="Seconds from start to end; null while it goes on.")
    ]
    bridged_duration: Annotated[
        int | None,
        Field(description="Seconds A and B talked; null if they were not connected."),
    ]
    a_dial_status: Annotated[
        str | None,
        Field(
            description="Asterisk's DialStatus of the A leg (ANSWER, BUSY, NOANSWER, "
            "CONGESTION, CHANUNAVAIL, CANCEL, ...); null before it is known."
        ),
    ]
    b_dial_status: Annotated[
        str | None,
        Field(description="Asterisk's DialStatus of the B leg; null if B was not dialled."),
    ]
    a_hangup_cause: Annotated[
        int | None,
        Field(description="The Q.850 hangup cause of the A leg (16 normal, 17 busy, ...)."),
    ]
    b_hangup_cause: Annotated[int | None, Field(description="The Q.850 hangup cause of the B leg.")]
    result: Annotated[
        str | None,
        Field(
            description="The attempt's outcome: success, a_busy, a_no_answer, "
            "a_congestion, a_unavailable, a_invalid, a_rejected, b_busy, b_no_answer, "
            "b_congestion, b_unavailable, b_invalid, b_rejected, a_hung_up_before_b, "
            "rejected, interrupted or cancelled; null while the call goes on "
            "(docs/call-outcomes.md)."
        ),
    ]
    result_comment: Annotated[
        str, Field(description="The outcome in plain words, as finish_comment says it.")
    ]
    pbx_refusal: Annotated[
        str | None,
        Field(
            description="What Asterisk answered to the attempt's Originate when it refused "
            'it, in its own words (e.g. "Extension does not exist."); null otherwise.'
        ),
    ] = None
    cancel_time_gmt: Annotated[
        UtcTime | None,
        Field(
            description="When the task was cancelled while this attempt's call was up "
            "(the call was then hung up); null otherwise."
        ),
    ] = None
    interval_zone: Annotated[
        str | None,
        Field(description="The time zone the queue's calling hours were read in; null: none."),
    ] = None
    interval_zone_reason: Annotated[
        str | None,
        Field(
            description="Why that zone: the interval's own, or the A number's "
            "(calls.interval_zone = destination) and why it could not be used."
        ),
    ] = None


class CallRecord(AttemptSummary):
    """One attempt's call; with `?events=1` also the AMI events that decided it."""

    events: Annotated[
        list[dict[str, str]] | None,
        Field(
            description="With ?events=1: the AMI events of the call in arrival order, "
            "each as its header names and values; null without it."
        ),
    ] = None
    events_received_at: Annotated[
        list[str] | None,
        Field(
            description="With ?events=1: when callbackd received each of `events`, in "
            "the same order, UTC 'YYYY-MM-DD HH:MM:SS.mmm' (whole seconds for events "
            "stored before callbackd kept milliseconds); null without it."
        ),
    ] = None


WebhookEventName = Literal["before", "before_again", "success", "after"]


class WebhookBody(BaseModel):
    """The JSON body of every webhook POST (docs/webhooks.md)."""

    event: Annotated[
        WebhookEventName,
        Field(
            description="`before` (before the first attempt), `before_again` (before each "
            "later attempt), `success` (A and B connected), `after` (the task finished)."
        ),
    ]
    task: Annotated[TaskOutput, Field(description="The task as it was when the event happened.")]
    attempt: Annotated[
        AttemptSummary | None,
        Field(
            description="The attempt the event is about, as it was then; null for an "
            "`after` of a task cancelled before any call."
        ),
    ]
