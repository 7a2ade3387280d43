"""Large results: the host keeps rows as the server sent them, in runs of
16,384, and the package makes Python objects straight from their bytes,
in either format the server sends (binary, or text when the statement has
a column such as timestamptz). Both must give psycopg2's values, across
runs."""

from __future__ import annotations

import datetime
import math
from decimal import Decimal

#: 40,001 rows over three of the host's runs of rows, each type the package
#: reads directly, with nulls; `{extra}` adds a timestamptz column, which
#: makes the server send the whole result as text.
SQL = """
select i, (i % 1000)::int2 as small, i::bigint * 3000000007 as big, abs(i)::oid as o,
       'row ' || i as name, i::numeric / 100 as amount, i % 2 = 0 as even, i::float8 / 8 as f,
       date '2000-01-01' + i as day,
       timestamp '1999-12-31 23:59:59' + i * interval '1 minute 1 microsecond' as at,
       case when i % 7 = 0 then null else i end as maybe{extra}
from generate_series(-20000, 20000) i order by i
"""


def expected(i: int) -> tuple:
    return (
        i,
        int(math.fmod(i, 1000)),
        i * 3000000007,
        abs(i),
        f"row {i}",
        Decimal(i) / 100,
        i % 2 == 0,
        i / 8,
        datetime.date(2000, 1, 1) + datetime.timedelta(days=i),
        datetime.datetime(1999, 12, 31, 23, 59, 59) + datetime.timedelta(minutes=i, microseconds=i),
        None if i % 7 == 0 else i,
    )


def test_a_large_result_reads_the_same_in_either_format(hook) -> None:
    binary = hook.get_records(SQL.format(extra=""))
    text = hook.get_records(SQL.format(extra=", timestamptz '2024-01-01 00:00:00+00' as tz"))
    assert len(binary) == len(text) == 40001
    assert {row[-1] for row in text} == {datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)}
    assert [row[:-1] for row in text] == binary
    assert binary == [expected(i) for i in range(-20000, 20001)]
    assert [type(v) for v in binary[20001]] == [int, int, int, int, str, Decimal, bool, float] + [
        datetime.date,
        datetime.datetime,
        int,
    ]


def test_dates_past_pythons_years_read_as_psycopg2_reads_them(hook) -> None:
    """Infinity and years Python has not go the long way, in both formats."""
    sql = "select date 'infinity', date '-infinity', timestamp 'infinity', date '0001-01-01', timestamp '9999-12-31 23:59:59.999999'"
    want = (
        datetime.date.max,
        datetime.date.min,
        datetime.datetime.max,
        datetime.date(1, 1, 1),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999),
    )
    assert hook.get_first(sql) == want
    assert hook.get_first(sql + ", now()")[:-1] == want


def test_a_type_named_like_a_builtin_is_read_as_its_own(hook) -> None:
    """Cells are read by their column's type, not its name: an enum named
    int4 or interval (in another schema than PostgreSQL's) is its label, and
    an array of one a list of labels, not ints or timedeltas."""
    hook.run(
        'drop type if exists public."int4", public."interval"; '
        "create type public.\"int4\" as enum ('abcd'); create type public.\"interval\" as enum ('happy')",
        autocommit=True,
    )
    try:
        sql = "select 'abcd'::public.\"int4\", array['happy']::public.\"interval\"[]"
        assert hook.get_first(sql) == ("abcd", ["happy"])
        assert hook.get_first(sql + ", now()")[:2] == ("abcd", ["happy"])
    finally:
        hook.run('drop type public."int4", public."interval"', autocommit=True)
