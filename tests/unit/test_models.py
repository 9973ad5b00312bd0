"""The task and queue rules of daemon/models.py, as tables and properties."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from daemon.models import (
    FORBIDDEN_IN_TEXT,
    MAX_PAUSE,
    QueueInput,
    QueueUpdate,
    TaskInput,
    format_time,
    parse_time,
)

NUMBERS = st.from_regex(r"\+?[0-9*#]{1,32}", fullmatch=True)
BREAKOUT = st.sampled_from(sorted(FORBIDDEN_IN_TEXT | {"\x00", "\t", "\x1b", "\u2028"}))


def _task(**fields: Any) -> TaskInput:
    return TaskInput.model_validate({"a_number": "100", "b_number": "200", **fields})


def _error_fields(**fields: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _task(**fields)
    return [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]


@given(NUMBERS, NUMBERS)
def test_every_well_formed_number_is_accepted(a_number: str, b_number: str) -> None:
    task = TaskInput.model_validate({"a_number": a_number, "b_number": b_number})

    assert (task.a_number, task.b_number) == (a_number, b_number)


@given(NUMBERS, BREAKOUT, st.integers(min_value=0, max_value=32))
def test_a_number_with_any_other_character_is_rejected(number: str, bad: str, at: int) -> None:
    spoiled = number[:at] + bad + number[at:]

    assert _error_fields(a_number=spoiled) == ["a_number"]
    assert _error_fields(callback_params={"caller_id_number": spoiled}) == [
        "callback_params.caller_id_number"
    ]


@given(st.text(max_size=30), BREAKOUT, st.text(max_size=30))
def test_caller_id_name_with_a_breakout_character_is_rejected(
    head: str, bad: str, tail: str
) -> None:
    assert _error_fields(callback_params={"caller_id_name": head + bad + tail}) == [
        "callback_params.caller_id_name"
    ]


@given(st.text(max_size=200), BREAKOUT)
def test_variable_value_with_a_breakout_character_is_rejected(text: str, bad: str) -> None:
    # The model names the variable; the API reports it at `variables` (api/errors.py).
    assert _error_fields(variables={"v": bad + text[:199]}) == ["variables.v"]


@pytest.mark.parametrize(
    ("sent", "pause"),
    [(0, 0), ("0", 0), ("120", 120), (" 45 ", 45), (MAX_PAUSE, MAX_PAUSE), (30.0, 30)],
)
def test_try_again_pause_takes_an_int_or_a_numeric_string(sent: object, pause: int) -> None:
    assert _task(try_again_pause=sent).try_again_pause == pause


@pytest.mark.parametrize("sent", [True, False, -1, MAX_PAUSE + 1, "1.5", "", "ten", None, [1]])
def test_try_again_pause_rejects_everything_else(sent: object) -> None:
    assert _error_fields(try_again_pause=sent) == ["try_again_pause"]


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2030-01-02 03:04", datetime(2030, 1, 2, 3, 4, tzinfo=UTC)),
        ("2030-01-02 03:04:05", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (" 2030-01-02 03:04:05 ", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2030-01-02T03:04:05+03:00", datetime(2030, 1, 2, 0, 4, 5, tzinfo=UTC)),
        ("2030-01-01T23:30:00-01:00", datetime(2030, 1, 2, 0, 30, tzinfo=UTC)),
        ("2030-01-02T03:04:05Z", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (None, None),
    ],
)
def test_start_time_is_read_as_utc(sent: str | None, expected: datetime | None) -> None:
    assert _task(start_time_utc=sent).start_time_utc == expected


@pytest.mark.parametrize(
    "sent", ["2030-01-02T03:04:05", "2030-13-01 00:00", "02.01.2030 03:04", "", 1893456000]
)
def test_start_time_without_zone_or_in_another_shape_is_rejected(sent: object) -> None:
    assert _error_fields(start_time_utc=sent) == ["start_time_utc"]


def test_extended_a_numbers_must_differ_from_each_other_and_from_a() -> None:
    with pytest.raises(ValidationError, match="must all differ"):
        _task(a_number="5", callback_params={"extended_a_numbers": ["6", "5"]})
    task = _task(a_number="5", callback_params={"extended_a_numbers": ["6", "7"]})
    assert task.a_numbers() == ["5", "6", "7"]


def test_stored_params_omit_defaults_and_the_start_time() -> None:
    task = _task(try_count=3, start_time_utc="2030-01-02 03:04")

    assert task.stored_params() == '{"a_number":"100","b_number":"200","try_count":3}'


def test_queue_defaults_to_off_with_ten_concurrent_tasks() -> None:
    queue = QueueInput.model_validate({"name": "sales"})

    assert (queue.status, queue.concurrent_task_limit, queue.comment) == ("off", 10, "")


@pytest.mark.parametrize(
    "fields",
    [{}, {"name": ""}, {"name": "x" * 256}, {"name": "a", "status": "ON"}, {"name": "a", "x": 1}],
)
def test_queue_input_is_strict(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QueueInput.model_validate(fields)


def test_queue_update_names_only_what_changes() -> None:
    change = QueueUpdate.model_validate({"status": "on"})

    assert change.model_dump(exclude_none=True) == {"status": "on"}


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1)))
def test_time_text_round_trips(moment: datetime) -> None:
    exact = moment.replace(microsecond=0, tzinfo=UTC)

    assert parse_time(format_time(exact)) == exact
