"""The time forms the API reads, as one table: UTC text, ISO 8601 with an offset or Z,
and for filters a bare date; anything else is refused in plain words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.schemas import CallListQuery
from daemon.timetext import parse_utc_input

AT_0930_UTC = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01 09:30", AT_0930_UTC),
        ("2026-03-01 09:30:00", AT_0930_UTC),
        (" 2026-03-01 09:30:00 ", AT_0930_UTC),
        ("2026-03-01T09:30:00Z", AT_0930_UTC),
        ("2026-03-01T09:30Z", AT_0930_UTC),
        ("2026-03-01T12:30:00+03:00", AT_0930_UTC),
        ("2026-03-01T04:30:00-05:00", AT_0930_UTC),
        ("2026-03-01 12:30:00+03:00", AT_0930_UTC),
        ("2026-03-01T09:30:00.250Z", AT_0930_UTC.replace(microsecond=250_000)),
        ("2026-03-02T01:30:00+16:00", AT_0930_UTC),
    ],
)
def test_accepted_forms_name_the_same_moment(text: str, expected: datetime) -> None:
    assert parse_utc_input(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-03-01", "needs a time of day: 'YYYY-MM-DD HH:MM[:SS]' (UTC) or ISO 8601"),
        ("yesterday", "must be"),
        ("2026-03-01T09:30:00", "needs an offset"),
        ("2026-02-30 09:30", "is not a valid date and time"),
        ("9999-12-31T23:59:00-01:00", "out of range"),
        ("\uff12\uff10\uff12\uff16-03-01 09:30", "must be"),  # full-width digits
    ],
)
def test_refused_forms_say_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_utc_input(text)
    assert problem in str(caught.value)


def test_a_filter_also_takes_a_bare_date_as_its_utc_midnight() -> None:
    assert parse_utc_input("2026-03-01", bare_date=True) == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("since", "stored_form"),
    [
        ("2026-03-01", "2026-03-01 00:00:00"),
        ("2026-03-01 09:30", "2026-03-01 09:30:00"),
        ("2026-03-01T12:30:00+03:00", "2026-03-01 09:30:00"),
        ("2026-03-01T09:30:00Z", "2026-03-01 09:30:00"),
        # An unescaped '+' in a query string arrives as a space.
        ("2026-03-01T12:30:00 03:00", "2026-03-01 09:30:00"),
        ("2026-03-01T12:30 0300", "2026-03-01 09:30:00"),
    ],
)
def test_a_call_filter_compares_in_the_stored_utc_form(since: str, stored_form: str) -> None:
    query = CallListQuery.model_validate({"since": since, "until": since})
    assert (query.since, query.until) == (stored_form, stored_form)
