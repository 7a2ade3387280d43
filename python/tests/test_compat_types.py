"""Every type PostgreSQL ships, selected through Airflow's own PostgresHook
(psycopg2) and through pghook.PostgresHook in this process on one database:
the Python values must be the same, type and value, but for the deliberate
differences README lists (each encoded below, with the reason).

The types are read from pg_type (base types, enums, domains, composites,
ranges and multiranges, and an array of each), and the values each accepts
are found on the server from a list of candidate literals per type
category, as tests/all/types.rs does for the Rust side.
"""

from __future__ import annotations

import datetime
import json
import math
from decimal import Decimal
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import pytest

from conftest import CONN_ID

#: A session time zone with offsets in seconds before 1941 (LMT +05:53:28):
#: timestamptz values come aware in it through both hooks.
SESSION_OPTIONS = "options=-c%20TimeZone%3DAsia%2FKolkata%20-c%20DateStyle%3DISO%20-c%20IntervalStyle%3Dpostgres"

#: The schema of the test's own types (an enum, domains, a composite).
SCHEMA = "compat_types"

#: Literals tried on every type; the server says which each type accepts.
COMMON = ["", "0", "-1", "1", "{}", "t", "abc", "NaN", "infinity", "-infinity"]

#: More literals per pg_type.typcategory, with each category's extremes.
CANDIDATES: Dict[str, List[str]] = {
    "B": ["f", "yes", "off"],
    "N": [
        "42", "-32768", "32767", "-2147483648", "2147483647", "4294967295", "-9223372036854775808",
        "9223372036854775807", "1.5", "-0", "12.340", "1e308", "-1e-307", "3.4e38", "1e-130", "Infinity",
        "-Infinity", "-92233720368547758.08", "92233720368547758.07", "pg_class", "int4", "now", "=",
        "+(integer,integer)", "abs(integer)", "english", "simple", "pg_catalog", "C",
    ],
    "D": [
        "epoch", "allballs", "2000-01-01", "1999-12-31 23:59:59.999999", "2024-02-29 13:14:15.5",
        "2024-02-29 13:14:15.5+05:30", "1900-06-01 12:00:00+00", "294276-12-31 23:59:59.999999",
        "4713-01-01 BC", "0044-03-15 12:00:00.5 BC", "0001-01-01", "9999-12-31 23:59:59.999999",
        "10000-01-01", "5874897-12-31", "00:00:00", "24:00:00", "23:59:59.999999", "24:00:00+15:59",
        "00:00:00-15:59:59", "12:34:56.789+05:30",
    ],
    "T": [
        "1 day 02:00:00", "1 year 2 mons -3 days 04:05:06.7", "-1 year 1 day -00:00:00.000001", "-00:00:00.5",
        "2000000 years", "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807",
    ],
    "S": ["héllo", "a", "é", "YES", "NO", "x'); drop table t; --", "  padded  ", 'q"uo\\te'],
    "U": [
        "null", '{"a": [1, 2.5, null], "b": 123456789012345678901234567890}', '"text"', "[]", "$.a",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "08:00:2b:01:02:03", "08:00:2b:01:02:03:04:05", "0/0",
        "FFFFFFFF/FFFFFFFF", "(0,1)", "10:20:10,14,15", "a & b", "a fat cat", "'a':1A", "\\x00ff", "<a>x</a>",
        "=/postgres", "4294967295", "18446744073709551615",
    ],
    "G": ["(1,2)", "((0,0),(1,1))", "<(0,0),1>", "{1,2,3}", "[(0,0),(1,1)]", "((0,0),(1,1),(1,0))"],
    "I": ["10.0.0.1/8", "10.0.0.0/8", "255.255.255.255", "0.0.0.0/0", "2001:db8::1", "2001:db8::/32"],
    "R": [
        "empty", "[1,2)", "(,)", "[-infinity,infinity]", "[1.5,2.50]", "[2000-01-01,2001-01-01)",
        "[2000-01-01 10:00,2000-01-02)", "[4713-01-01 BC,294276-12-31 23:59:59.999999]", "{[1,2)}", "{(,)}",
        "{[1,2), [3,4)}", "{}",
    ],
    "V": ["101", "B0"],
    "E": ["happy", "sad"],
    "C": ["()", "(1,2000-01-01)", '(,"4713-01-01 BC")'],
    "A": ["1 2", "0"],
}
OTHER = ["é", "a"]

#: Types per query: a few batched queries keep the module fast; a batch one
#: hook fails is split until the failing values stand alone.
BATCH = 20


class SqlType(NamedTuple):
    """One selectable type and the literals it accepts, with the server's
    text of each."""

    name: str
    array: Optional[str]
    category: str
    base: str
    values: List[Tuple[str, str]]


class Cell(NamedTuple):
    """One selected expression and what it is of."""

    sql: str
    type: SqlType
    what: str  # "null", "value", "array" or "empty array"
    text: Optional[str]  # the server's text of a value


@pytest.fixture(scope="module")
def hooks(uri: str, airflow_installed: None) -> Tuple[Any, Any]:
    """(Airflow's PostgresHook on psycopg2, pghook's), on one connection id
    to the suite's database, the session in a time zone east of UTC."""
    import logging

    import airflow.providers.postgres.hooks.postgres as postgres

    import pghook

    # With psycopg 3 installed too, the provider would pick it; pghook matches psycopg2.
    postgres.USE_PSYCOPG3 = False
    session_uri = uri + ("&" if "?" in uri else "?") + SESSION_OPTIONS
    with pytest.MonkeyPatch.context() as env:
        env.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", session_uri)
        # Airflow logs every statement: these are long.
        logging.getLogger("airflow.task.hooks").setLevel(logging.WARNING)
        airflow = postgres.PostgresHook(postgres_conn_id=CONN_ID)
        ours = pghook.PostgresHook(postgres_conn_id=CONN_ID)
        yield airflow, ours


def accepted_types(hook: Any) -> List[SqlType]:
    """Every type of pg_catalog, information_schema and the test's schema
    but pseudo-types, each with the candidates it accepts (found on the
    server, each in a subtransaction of its own)."""
    hook.run(
        f"""
        drop schema if exists {SCHEMA} cascade;
        create schema {SCHEMA};
        create type {SCHEMA}.mood as enum ('happy', 'sad');
        create domain {SCHEMA}.far_date as date;
        create domain {SCHEMA}.stamp as timestamptz(2);
        create type {SCHEMA}.pair as (n int, d date);
        create function {SCHEMA}.accepted(ty regtype, candidates text[]) returns text[] language plpgsql as $$
        declare
            candidate text;
            printed text;
            found text[] := '{{}}';
        begin
            foreach candidate in array candidates loop
                begin
                    execute format('select (%L::text::%s)::text', candidate, ty) into printed;
                    found := found || array[candidate, printed];
                exception when others then
                end;
            end loop;
            return found;
        end $$;
        """
    )
    candidates = {category: COMMON + specific for category, specific in CANDIDATES.items()}
    rows = hook.get_records(
        f"""
        select t.oid::regtype::text, nullif(t.typarray, 0)::regtype::text, t.typcategory::text,
               coalesce(nullif(t.typbasetype, 0), t.oid)::regtype::text,
               {SCHEMA}.accepted(t.oid::regtype, coalesce(
                   array(select jsonb_array_elements_text(%(candidates)s::jsonb -> t.typcategory::text)),
                   %(other)s))
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname in ('pg_catalog', 'information_schema', %(schema)s) and t.typtype <> 'p'
          and not exists (select 1 from pg_type e where e.typarray = t.oid)
        order by t.oid
        """,
        {"candidates": json.dumps(candidates), "other": COMMON + OTHER, "schema": SCHEMA},
    )
    return [
        SqlType(name, array, category, base, list(zip(found[::2], found[1::2])))
        for name, array, category, base, found in rows
    ]


def literal(value: str, ty: str) -> str:
    return "'{}'::text::{}".format(value.replace("'", "''"), ty)


def cells(ty: SqlType) -> List[Cell]:
    """NULL, each accepted value, an array of them all with a NULL, and an
    empty array."""
    out = [Cell(f"null::{ty.name}", ty, "null", None)]
    out += [Cell(literal(value, ty.name), ty, "value", text) for value, text in ty.values]
    if ty.array:
        items = ", ".join(["null"] + [literal(value, ty.name) for value, _ in ty.values])
        out.append(Cell(f"array[{items}]::{ty.array}", ty, "array", None))
        out.append(Cell(f"'{{}}'::{ty.array}", ty, "empty array", None))
    return out


def select(hook: Any, batch: List[Cell]) -> List[Tuple[Cell, str, Any]]:
    """Each cell's value through `hook` as ("ok", value), or ("error",
    exception) for the cells whose query failed when alone."""
    sql = "select " + ", ".join(f"{cell.sql} as c{i}" for i, cell in enumerate(batch))
    try:
        row = hook.get_first(sql)
    except Exception as e:
        if len(batch) == 1:
            return [(batch[0], "error", e)]
        half = len(batch) // 2
        return select(hook, batch[:half]) + select(hook, batch[half:])
    return [(cell, "ok", value) for cell, value in zip(batch, row)]


def same(a: Any, b: Any) -> bool:
    """The same Python value: the same type and value, floats and decimals
    by their repr (NaN equals NaN, 1.50 is not 1.5), times with their offset."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (float, Decimal)):
        return repr(a) == repr(b)
    if isinstance(a, (datetime.datetime, datetime.time)):
        return a == b and a.utcoffset() == b.utcoffset()
    return a == b


def as_pghook_gives_bytea(value: Any) -> Any:
    """Airflow's value with its memoryviews as bytes: pghook gives bytea as
    bytes, psycopg2 a memoryview of the same bytes (README)."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list):
        return [as_pghook_gives_bytea(v) for v in value]
    return value


def fails_to_read(error: BaseException) -> bool:
    """psycopg2 could not make a Python value of what the server sent (a
    year Python has not, an interval past a timedelta, an oidvector in an
    array): its own ValueError, OverflowError or DataError ("unable to
    parse date" in an array), not an error of the server's."""
    from psycopg2 import DataError

    return type(error) in (ValueError, OverflowError) or (type(error) is DataError and error.pgcode is None)


def deliberate(cell: Cell, airflow: Tuple[str, Any], ours: Any, elements: List[Any]) -> Optional[str]:
    """Why pghook's value `ours` may differ from Airflow's, if it differs as
    README says it does; `elements` are pghook's values of the type's
    accepted literals, which an array of them must hold."""
    from psycopg2.extras import Range

    kind, theirs = airflow
    if kind == "error":
        if not fails_to_read(theirs):
            return None
        # Where psycopg2 fails, pghook keeps the value: the server's text
        # (a BC date, a year after 9999), a timedelta (an interval of more
        # hours than psycopg2 reads), or the array of such values.
        if cell.what == "value":
            kept = ours == cell.text or (cell.type.base == "interval" and isinstance(ours, datetime.timedelta))
            return "psycopg2 fails" if kept else None
        return "psycopg2 fails on an element" if same(ours, [None] + elements) else None
    if isinstance(theirs, Range) and ours == cell.text:
        return "a range is the server's text"
    if cell.what in ("array", "empty array") and isinstance(theirs, str) and isinstance(ours, list):
        # psycopg2 reads arrays of the types it knows (numbers, text, dates
        # and times, bytea, json, ranges...) into lists, and gives the text
        # of any other (uuid[], money[], point[], composites...): pghook
        # gives lists of every array.
        expected = [None] + elements if cell.what == "array" else []
        if same(ours, expected):
            return "psycopg2 gives the array's text"
        # An array of a domain: the converters go by the type's name,
        # which does not say the domain's base, so its elements are the
        # server's text (a date domain's array holds date strings).
        texts = [None] + [text for _, text in cell.type.values]
        if cell.type.base != cell.type.name and same(ours, texts):
            return "psycopg2 gives the text of an array of a domain"
        return None
    if isinstance(theirs, list) and isinstance(ours, list) and len(theirs) == len(ours):
        # An array of ranges: each element as above.
        if all(isinstance(t, Range) for t in theirs[1:]) and ours[1:] == [text for _, text in cell.type.values]:
            return "the ranges of an array are the server's text"
    return None


def test_every_shipped_type_gives_the_same_python_value(hooks: Tuple[Any, Any]) -> None:
    airflow, ours = hooks
    types = accepted_types(ours)
    assert len(types) > 250, f"only {len(types)} types"
    every = [cell for ty in types for cell in cells(ty)]
    batches = [every[i : i + BATCH] for i in range(0, len(every), BATCH)]
    results = []
    for batch in batches:
        results += zip(select(airflow, batch), select(ours, batch))
    # pghook's value of each accepted literal, in order, per type.
    elements: Dict[str, List[Any]] = {}
    for (cell, _, _), (_, kind, value) in results:
        if cell.what == "value":
            elements.setdefault(cell.type.name, []).append(value if kind == "ok" else None)
    differences = []
    for (cell, a_kind, a), (_, o_kind, o) in results:
        if a_kind == "ok":
            a = as_pghook_gives_bytea(a)
        if o_kind == "ok" and a_kind == "ok" and same(a, o):
            continue
        if o_kind == "ok" and deliberate(cell, (a_kind, a), o, elements.get(cell.type.name, [])):
            continue
        differences.append(f"{cell.type.name} {cell.what} {cell.sql[:200]}: Airflow {a_kind} {a!r}, pghook {o_kind} {o!r}")
    assert not differences, f"{len(differences)} differences:\n" + "\n".join(differences)
