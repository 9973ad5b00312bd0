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

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_TASKS_PER_REQUEST = 10_000
MAX_PAUSE = 864_000

NUMBER_RE = re.compile(r"\+?[0-9*#]{1,32}")
VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# Characters that could end an AMI header, split a dialplan argument or join channels.
FORBIDDEN_IN_TEXT = frozenset('\r\n/@&,;|\\"<>$')


class TaskStatus(StrEnum):
    SCHEDULED = "scheduled"
    EXECUTED = "executed"
    DELAYED = "delayed"
    DELAYED_CONCURRENT = "delayed_concurrent_task"
    DELAYED_INTERVAL = "delayed_interval"
    DELAYED_ASR = "delayed_asr"
    FINISHED = "finished"


class FinishResult(StrEnum):
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
_UTC_TEXT_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?")


def format_time(moment: datetime) -> str:
    """UTC text `YYYY-MM-DD HH:MM:SS` (TIME_FORMAT)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "seconds")


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
        raise ValueError("must be a string 'YYYY-MM-DD HH:MM[:SS]' (UTC) or ISO 8601")
    text = value.strip()
    if _UTC_TEXT_RE.fullmatch(text):
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError("is not a valid date and time") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("must be 'YYYY-MM-DD HH:MM[:SS]' (UTC) or ISO 8601 with offset") from None
    if parsed.tzinfo is None:
        raise ValueError("an ISO 8601 time needs an offset, e.g. +03:00 or Z")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-01:00 is past the last datetime in UTC
        raise ValueError("is out of range once converted to UTC") from None


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
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_PAUSE}),
]
# pydantic's HttpUrl rules (http/https, at most 2083 characters) on the Rust URL type:
# HttpUrl wraps each value in a Python validator, a cost paid for every task of a batch.
WebhookUrl = Annotated[Url, UrlConstraints(max_length=2083, allowed_schemes=["http", "https"])]
StartTime = Annotated[datetime | None, BeforeValidator(_start_time)]
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


class CallbackParams(_Strict):
    caller_id_name: CallerIdName | None = None
    caller_id_number: PhoneNumber | None = None
    extended_a_numbers: Annotated[list[PhoneNumber], Field(max_length=10)] = Field(
        default_factory=list
    )


class TaskInput(_Strict):
    """A callback task as a client submits it (SPEC §1.2)."""

    name: Annotated[PrintableText, Field(max_length=255)] = ""
    a_number: PhoneNumber
    b_number: PhoneNumber
    extension_id: StrictInt | None = None
    try_count: Annotated[StrictInt, Field(ge=1, le=50)] = 1
    try_again_pause: Pause = 60
    try_count_caller: Annotated[StrictInt, Field(ge=0, le=50)] = 0
    try_again_pause_caller: Pause | None = None
    url_before: WebhookUrl | None = None
    url_before_again: WebhookUrl | None = None
    url_success: WebhookUrl | None = None
    url_after: WebhookUrl | None = None
    start_time_utc: StartTime = None
    callback_params: CallbackParams = Field(default_factory=CallbackParams)
    variables: Annotated[
        dict[VariableName, VariableText],
        Field(max_length=50, json_schema_extra=_variables_schema),
    ] = Field(default_factory=dict)
    attempts_src_ani_numbers: AniList = Field(default_factory=list)
    attempts_dst_ani_numbers: AniList = Field(default_factory=list)

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
    """A task as the API returns it."""

    id: int
    scheduler_id: int
    name: str
    a_number: str
    b_number: str
    extension_id: int | None
    try_count: int
    try_again_pause: int
    try_count_caller: int
    try_again_pause_caller: int | None
    url_before: str | None
    url_before_again: str | None
    url_success: str | None
    url_after: str | None
    start_time_utc: str | None
    callback_params: CallbackParams
    variables: dict[str, str]
    attempts_src_ani_numbers: list[str]
    attempts_dst_ani_numbers: list[str]
    status: TaskStatus
    finish_result: FinishResult | None
    finish_comment: str
    cdr: str
    attempts_made: int
    next_attempt_utc: str | None
    create_date_utc: str


class QueueInput(_Strict):
    name: Annotated[PrintableText, Field(min_length=1, max_length=255)]
    comment: Annotated[str, Field(max_length=1000)] = ""
    status: Literal["on", "off"] = "off"
    concurrent_task_limit: Annotated[StrictInt, Field(ge=1, le=10_000)] = 10
    interval_id: StrictInt | None = Field(
        None, description="The client's time interval bounding when calls start; null = always"
    )


class QueueUpdate(_Strict):
    """PUT on a queue changes only the fields it names."""

    name: Annotated[PrintableText, Field(min_length=1, max_length=255)] | None = None
    comment: Annotated[str, Field(max_length=1000)] | None = None
    status: Literal["on", "off"] | None = None
    concurrent_task_limit: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    # A null in the body takes the queue off its interval; absent leaves it.
    interval_id: StrictInt | None = None


class QueueOutput(BaseModel):
    id: int
    name: str
    comment: str
    status: Literal["on", "off"]
    concurrent_task_limit: int
    create_date_utc: str
    task_count: int
    sched_task_count: int
    last_call_date: str | None
    interval_id: int | None = Field(description="The queue's time interval; null = always open")
    interval_open: bool = Field(description="Whether the queue's interval is open now")
    next_open_utc: str | None = Field(
        description="When the closed interval opens next (UTC); null while open, "
        "or when it does not open within 366 days"
    )


def _strict_text(pattern: str, kind: type[time] | type[date] | type[datetime], form: str) -> Any:
    """A BeforeValidator taking only the one text form the platform writes."""
    compiled = re.compile(pattern)

    def parse(value: Any) -> Any:
        if value is None or isinstance(value, kind):
            return value
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"must be '{form}'")
        try:
            return kind.fromisoformat(value)
        except ValueError:
            raise ValueError(f"is not a valid {form}") from None

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

    name: IntervalName | None = None
    timezone: TimeZoneName | None = None
    conditions: Conditions | None = None


class IntervalOutput(BaseModel):
    id: int
    name: str
    timezone: str
    conditions: list[IntervalCondition]
    create_date_utc: str
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


class CallRecord(BaseModel):
    """One attempt's call (SPEC §1.3)."""

    call_uuid: str
    task_id: int
    scheduler_id: int
    attempt: int
    state: Literal["originating", "in_call", "ended"]
    a_numbers: list[str]
    b_number: str
    answered_a_number: str | None
    a_caller_id_number: str
    a_caller_id_name: str
    b_caller_id_number: str
    start_time_gmt: str
    a_answer_time_gmt: str | None
    bridged_time_gmt: str | None
    end_time_gmt: str | None
    duration: int | None
    bridged_duration: int | None
    a_dial_status: str | None
    b_dial_status: str | None
    a_hangup_cause: int | None
    b_hangup_cause: int | None
    result: str | None
    result_comment: str
    events: list[dict[str, str]] | None = None
