"""The fast path of a bulk add (one pydantic-core pass over the request bytes) takes
exactly the batches that the strict JSON parser and TaskInput take, with the same values;
whatever it refuses is left to them to name."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.body import count_members
from api.errors import Problem
from api.tasks import _checked_batch, _fast_batch
from config import Settings
from daemon.models import TaskInput
from daemon.store.tasks import gc_paused

GOOD = {"a_number": "+74951230001", "b_number": "101"}

# Field values worth mixing: valid ones, edge cases and invalid ones of every kind.
VALUES: dict[str, list[Any]] = {
    "name": ["", "order 42", "n" * 255, "n" * 256, "a;b", "Zoë", "\u2028", None, 5],
    "a_number": ["+1", "*#0", "1" * 33, "١٢٣", "12 3", 1, ""],
    "b_number": ["101", "+", None],
    "extension_id": [None, 101, "101", True, 1.0],
    "try_count": [1, 50, 0, 51, "3", True, 2.0],
    "try_again_pause": [0, "120", " 45 ", "+5", "1.5", "1_0", 30.0, 30.5, True, "", 864_001],
    "try_count_caller": [0, 50, 51, None],
    "try_again_pause_caller": [None, "7", 864_000, -1],
    "url_after": [
        None,
        "https://Example.com",
        "http://h:80/a b",
        "ftp://x",
        "x",
        "http://" + "a" * 2100,
    ],
    "url_before": ["http://[::1]:8080", "https://x.example/?q=},{", 5],
    "start_time_utc": [None, "2099-01-02 03:04", "2099-01-02T03:04+03:00", "2030-01-02T03:04", 0],
    "callback_params": [
        {},
        {"caller_id_name": None},
        {"caller_id_name": "Sales", "extended_a_numbers": ["+15550000001"]},
        {"extended_a_numbers": ["+74951230001"]},
        {"extended_a_numbers": ["1", "1"]},
        {"extended_a_numbers": [str(i) for i in range(11)]},
        {"colour": "red"},
        None,
    ],
    "variables": [{}, {"A": "x" * 200}, {"A": "x" * 201}, {"1st": "x"}, {"A": "&"}, {"A": 5}],
    "attempts_src_ani_numbers": [[], ["1"] * 50, ["1"] * 51, ["x"]],
    "attempts_dst_ani_numbers": [["+2"], None],
    "unknown": [1],
}

TASKS = st.builds(
    lambda picked: GOOD | picked,
    st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in VALUES.items()}),
)


# Profile 101 exists, so the strict path judges extension_id by its type alone, as the
# fast path does.
WITH_PROFILE_101 = Settings(extensions={101: {}})


def _raw(tasks: list[dict[str, Any]], **dumps: Any) -> bytes:
    return json.dumps({"tasks": tasks}, **dumps).encode()


def _checked(raw: bytes) -> list[dict[str, Any]] | None:
    try:
        return _checked_batch(raw, WITH_PROFILE_101)
    except Problem:
        return None


@settings(max_examples=300, deadline=None)
@given(st.lists(TASKS, min_size=1, max_size=3))
def test_the_fast_path_takes_what_task_input_takes_with_the_same_values(
    tasks: list[dict[str, Any]],
) -> None:
    raw = _raw(tasks)

    assert _fast_batch(raw) == _checked(raw)


@pytest.mark.parametrize(
    "dumps",
    [{}, {"ensure_ascii": False}, {"indent": 2}, {"separators": (",", ":")}],
)
def test_the_fast_path_takes_every_common_layout(dumps: dict[str, Any]) -> None:
    tasks = [GOOD | {"name": "Zoë: 24-7", "url_after": 'https://x.example/?q="1"\\'}] * 3

    assert _fast_batch(_raw(tasks, **dumps)) is not None


def test_the_fast_path_leaves_repeated_keys_to_the_strict_parser() -> None:
    raw = b'{"tasks": [{"a_number": "1", "b_number": "2", "b_number" : "3"}]}'

    assert _fast_batch(raw) is None
    with pytest.raises(Problem) as caught:
        _checked_batch(raw, WITH_PROFILE_101)
    assert caught.value.status == 400


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=':"\\{}[], \u00e9\n'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=':"\\{}x', max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


def _members(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(map(_members, value.values()))
    if isinstance(value, list):
        return sum(map(_members, value))
    return 0


@given(JSON_VALUES, st.booleans(), st.sampled_from([None, 1]))
def test_count_members_counts_the_members_of_any_json_text(
    value: Any, ascii_only: bool, indent: int | None
) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()

    assert count_members(raw) == _members(value)


def test_count_members_counts_repeated_names() -> None:
    assert count_members(b'{"a": ":", "a" :"\\\\", "b": {"a\\"": 1}}') == 4


def test_every_task_rule_is_a_field_rule_the_fast_path_applies() -> None:
    # The fast path validates TaskInput's fields, not the model: a field or model
    # validator added to TaskInput must be mirrored in `_fast_batch` too.
    decorators = TaskInput.__pydantic_decorators__
    assert not decorators.field_validators
    assert set(decorators.model_validators) == {"_a_numbers_distinct"}


def test_collection_is_paused_while_any_batch_is_built_and_left_as_it_was() -> None:
    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()

    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
