"""Parameters adapted as psycopg2 adapts them, items of lists and tuples
included (Airflow's own hook is compared in tests/all/airflow.rs)."""

from __future__ import annotations

import datetime
import uuid

import pytest


def test_lists_and_tuples_of_typed_items(hook) -> None:
    days = [datetime.date(2024, 2, 29), datetime.date(2024, 3, 1)]
    assert hook.get_first("select %s = any(%s), %s in %s", [days[1], days, days[0], tuple(days)]) == (True, True)
    stamps = (datetime.datetime(2024, 2, 29, 13, 14, 15), datetime.datetime(2024, 3, 1))
    assert hook.get_first("select pg_typeof(%s)::text, %s", [list(stamps), list(stamps)]) == (
        "timestamp without time zone[]",
        list(stamps),
    )
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert hook.get_first("select pg_typeof(%s)::text", [ids]) == ("uuid[]",)
    assert hook.get_first("select %s", [(datetime.timedelta(days=1, seconds=1),)]) == (datetime.timedelta(days=1, seconds=1),)


def test_a_list_inside_a_list_is_refused(hook) -> None:
    with pytest.raises(TypeError, match="cannot hold another"):
        hook.get_first("select %s", [[[1, 2], [3, 4]]])
