"""Request and response shapes of the API that are not domain models themselves."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from daemon.models import MAX_TASKS_PER_REQUEST, FinishResult, TaskInput, TaskOutput, TaskStatus


class TasksCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: Annotated[list[TaskInput], Field(min_length=1, max_length=MAX_TASKS_PER_REQUEST)]


class TasksCreated(BaseModel):
    tasks: list[TaskOutput]


class Paging(BaseModel):
    model_config = ConfigDict(extra="forbid")
    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=1000)] = 100

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


class TaskListQuery(Paging):
    status: list[TaskStatus] = Field(default_factory=list)
    finish_result: FinishResult | None = None
    name: Annotated[StrictStr, Field(max_length=255)] | None = None


TIME_FILTER = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?$"


class CallListQuery(Paging):
    task_id: Annotated[int, Field(ge=1)] | None = None
    # [0-9], not \d: the regex engine's \d also takes other scripts' digits.
    since: Annotated[str, Field(pattern=TIME_FILTER)] | None = None
    until: Annotated[str, Field(pattern=TIME_FILTER)] | None = None


class CallQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Literal["0", "1", "true", "false"] = "0"

    @property
    def with_events(self) -> bool:
        return self.events in ("1", "true")


class ValidationIssue(BaseModel):
    loc: str
    message: str
    field: str | None = None
    index: int | None = None


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ValidationIssue] | None = None


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    store: str
    ami: str
