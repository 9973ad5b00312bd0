"""Request and response shapes of the API that are not domain models themselves."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, WithJsonSchema

from daemon.models import (
    MAX_TASKS_PER_REQUEST,
    FinishResult,
    TaskInput,
    TaskOutput,
    TaskStatus,
    format_time,
)
from daemon.timetext import FORMS, parse_utc_input


class TasksCreate(BaseModel):
    """A bulk add: every task valid, or none stored."""

    model_config = ConfigDict(extra="forbid")
    tasks: Annotated[
        list[TaskInput],
        Field(
            min_length=1,
            max_length=MAX_TASKS_PER_REQUEST,
            description="1-10000 tasks; one invalid task refuses them all (422).",
        ),
    ]


class TasksCreated(BaseModel):
    """The tasks a bulk add stored."""

    tasks: Annotated[list[TaskOutput], Field(description="Every task created, in request order.")]


class Paging(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: Annotated[
        int, Field(ge=1, le=1_000_000, description="The page to return, counted from 1.")
    ] = 1
    per_page: Annotated[int, Field(ge=1, le=1000, description="Items per page, 1-1000.")] = 100

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


# A part of a phone number to search for.
NUMBER_SEARCH = Annotated[str, Field(pattern=r"^\+?[0-9*#]{1,32}$")]


class TaskListQuery(Paging):
    status: list[TaskStatus] = Field(
        default_factory=list,
        description="Only tasks in these statuses; repeat the parameter for several.",
    )
    finish_result: Annotated[
        FinishResult | None, Field(description="Only finished tasks with this result.")
    ] = None
    name: Annotated[
        Annotated[StrictStr, Field(max_length=255)] | None,
        Field(description="Only tasks with exactly this name."),
    ] = None
    number: Annotated[
        NUMBER_SEARCH | None,
        Field(description="Only tasks whose A, extended A or B number contains this."),
    ] = None


# A query string turns an unescaped '+' into a space: `?since=2026-03-01T09:30+03:00`
# arrives as "2026-03-01T09:30 03:00". A space before a trailing offset was a '+'.
_PLUS_AS_SPACE = re.compile(r"(T[0-9:.]+) ([0-9]{2}(?::?[0-9]{2})?)$")


def _time_filter(value: Any) -> str:
    """A filter's time in the form the store compares: UTC `YYYY-MM-DD HH:MM:SS`."""
    if not isinstance(value, str):
        raise ValueError(f"must be 'YYYY-MM-DD', {FORMS}")
    text = _PLUS_AS_SPACE.sub(r"\1+\2", value.strip())
    return format_time(parse_utc_input(text, bare_date=True))


TimeFilter = Annotated[
    str,
    BeforeValidator(_time_filter),
    WithJsonSchema(
        {
            "type": "string",
            "examples": ["2026-03-01", "2026-03-01 09:30", "2026-03-01T09:30:00+03:00"],
        }
    ),
]
TIME_FILTER_FORMS = f"'YYYY-MM-DD' or {FORMS}"


class CallListQuery(Paging):
    task_id: Annotated[
        Annotated[int, Field(ge=1)] | None, Field(description="Only the calls of this task.")
    ] = None
    # [0-9], not \d: the regex engine's \d also takes other scripts' digits.
    since: Annotated[
        TimeFilter | None,
        Field(description=f"Calls started at or after this time: {TIME_FILTER_FORMS}."),
    ] = None
    until: Annotated[
        TimeFilter | None,
        Field(description=f"Calls started before this time: {TIME_FILTER_FORMS}."),
    ] = None
    state: Annotated[
        Literal["live", "ended"] | None,
        Field(description="live: only calls in progress; ended: only calls that ended."),
    ] = None
    number: Annotated[
        NUMBER_SEARCH | None,
        Field(description="Only calls whose dialled A or B number contains this."),
    ] = None


class CallQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Literal["0", "1", "true", "false"] = Field(
        "0", description="1 or true: add the call's AMI events, in arrival order."
    )

    @property
    def with_events(self) -> bool:
        return self.events in ("1", "true")


class ValidationIssue(BaseModel):
    """One field that failed validation."""

    loc: str = Field(description="Where the value is, e.g. tasks[3].a_number.")
    message: str = Field(description="What is wrong with it, in plain words.")
    field: str | None = Field(None, description="The field's name, e.g. a_number.")
    index: int | None = Field(None, description="In a bulk add, the task's index (from 0).")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: the body of every error."""

    type: str = Field(
        description="A URI naming the kind of problem, e.g. "
        "https://callbackd.dev/problems/unprocessable-entity (an identifier, not a page)."
    )
    title: str = Field(description="The HTTP status phrase, e.g. Unprocessable Entity.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, in plain words.")
    errors: list[ValidationIssue] | None = Field(
        None, description="For a 422: every field that failed (the first 1000)."
    )


class Health(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = Field(description="Always ok.")


class AsrGuardReport(BaseModel):
    """One extension profile's answer-rate guard."""

    tripped: bool = Field(description="True while the guard holds the profile's due tasks")
    attempts: int = Field(description="Attempts that reached the network in the window")
    answered: int = Field(description="Of those, attempts in which an A number answered")
    ratio: float | None = Field(description="answered / attempts; null for an empty window")
    min_ratio: float = Field(description="Below this the guard trips")
    min_attempts: int = Field(description="Attempts the window needs before it may trip")


class Readiness(BaseModel):
    """Whether the daemon can take work; 503 names the part that cannot."""

    ready: bool = Field(description="true when the store and AMI are both ok.")
    store: str = Field(description="ok, or why the store is not writable.")
    ami: str = Field(
        description="ok, or why no call can be placed (not logged in, dialplan missing, "
        "Originate not permitted, ...)."
    )
    asr_guard: dict[str, AsrGuardReport] = Field(
        default_factory=dict,
        description="Each extension profile whose answer-rate guard is on, by extension "
        "id ('default' = the default profile); a tripped guard does not make the daemon "
        "unready.",
    )
