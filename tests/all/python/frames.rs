//! `PostgresHook.get_df`: pandas and polars DataFrames built from Arrow,
//! compared with Airflow's `get_df` (pandas.read_sql through SQLAlchemy on
//! psycopg2, polars.read_database on psycopg2) dtype by dtype and value by
//! value; pghook's deliberate differences asserted on their own.

use pghook_tests::Cluster;
use pghook_tests::airflow::{Compared, python_hook};

use super::assert_drop_in;

/// Airflow's pandas path goes through SQLAlchemy, whose default PostgreSQL
/// driver is psycopg 3 from SQLAlchemy 2.1: this extra keeps it on psycopg2
/// (pghook ignores it, as Airflow's psycopg2 connection does).
const ON_PSYCOPG2: &str = "sqlalchemy_scheme=postgresql%2Bpsycopg2&options=-c%20TimeZone%3DAsia%2FKolkata";

/// `frame(df)`: a DataFrame as plain values: its index, then each column's
/// name, dtype by name and values; `error(call)`: the exception's type and message.
const FRAMES: &str = r#"
def frame(df):
    if type(df).__module__.startswith("polars"):
        return [[name, str(dtype), df[name].to_list()] for name, dtype in df.schema.items()]
    return [[list(df.index.names), df.index.tolist()]] + [[str(name), str(df[name].dtype), df[name].tolist()] for name in df.columns]
def error(call):
    try:
        call()
    except Exception as e:
        return [type(e).__name__, str(e)]
"#;

/// Types both libraries agree on, with and without nulls (a NULL turns
/// pandas' int64 to float64 and its bool to object, in both hooks).
const COMMON: &str = r#"select * from (values
 (1::int2, 2::int4, 9223372036854775807::int8, 1.5::float4, 0.1::float8, 'NaN'::float8, 1.50::numeric, -12.345::numeric(10,3),
  'héllo'::text, 'a'::char(3), 'v'::varchar, true, '\x00ff'::bytea, '2024-02-29'::date, '13:14:15.5'::time,
  '2024-02-29 13:14:15.5'::timestamp, '2024-06-01 12:00:00.123456+02'::timestamptz, '1 year 2 mons -3 days 04:05:06.7'::interval, 7::oid),
 (null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, '2024-01-01 00:00:00+00'::timestamptz, null, null)
) t(i2, i4, i8, f4, f8, nan, num, num3, txt, ch, vc, b, ba, d, tm, ts, tstz, iv, o)"#;

/// The same without nulls, where pandas keeps int64 and bool.
const NOT_NULL: &str = "select 1::int4 as i, -5::int8 as l, false as b, 0.5::float8 as f, 'x'::text as t, \
    '1999-12-31 23:59:59.999999'::timestamp as ts, '-00:00:00.5'::interval as iv order by 1";

#[test]
fn data_frames_as_airflows_get_df() {
    assert_drop_in(
        "py_df",
        ON_PSYCOPG2,
        &format!(
            r#"{FRAMES}
common = r"""{COMMON}"""
[frame(hook.get_df(common)), frame(hook.get_df(common, df_type="polars").drop("ba")),
 frame(hook.get_df("{NOT_NULL}")), frame(hook.get_df("{NOT_NULL}", df_type="polars")),
 frame(hook.get_df(["select 1 as a", "select 2 as b"])),
 frame(hook.get_df("select %(a)s::int + 1 as a", {{"a": 1}})),
 frame(hook.get_df("select 'NaN'::numeric as n union all select 123456789012345678901234567890.12345678901")),
 error(lambda: hook.get_df("select 1", df_type="arrow"))]
"#
        ),
    );
}

#[test]
fn read_sql_and_read_database_keywords() {
    assert_drop_in(
        "py_df_kwargs",
        ON_PSYCOPG2,
        &format!(
            r#"import polars as pl
{FRAMES}
nullable = "select * from (values (1, 1.5::numeric, 'a', true, 0.5::float8, '2024-01-01 10:00+01'::timestamptz), \
    (null, null, null, null, null, null)) t(i, n, s, b, f, tz)"
sql = "select g as id, g * 1.5::numeric as n, '2024-01-0' || g as day, g * 86400 as epoch from generate_series(1, 5) g"
[frame(hook.get_df(sql, index_col="id")),
 frame(hook.get_df(sql, index_col=["id", "day"], coerce_float=False)),
 frame(hook.get_df(sql, parse_dates=["day", "epoch"])),
 frame(hook.get_df(sql, parse_dates={{"day": "%Y-%m-%d"}}, dtype={{"id": "int32"}})),
 [frame(part) for part in hook.get_df(sql, chunksize=2)],
 frame(hook.get_df(sql, dtype_backend="numpy_nullable")),
 frame(hook.get_df(nullable, dtype_backend="numpy_nullable")), frame(hook.get_df(nullable, dtype_backend="pyarrow")),
 frame(hook.get_df(sql, df_type="polars", schema_overrides={{"id": pl.Int32}})),
 error(lambda: hook.get_df(sql, df_type="polars", iter_batches=True)),
 error(lambda: hook.get_df(sql, no_such_keyword=1))]
"#
        ),
    );
}

/// What pghook does differently, on purpose (README, Python): every column
/// typed by the server (so an empty or all-NULL column keeps its type),
/// json, arrays, uuid and timetz as text, bytea as Arrow binary (polars'
/// Binary, not Object), a numeric's values at the column's scale (text
/// past Decimal128, NaN say), dates
/// kept as dates with `dtype_backend`, the connection's session settings
/// (here its time zone) applied, parameters and batches in both libraries;
/// infinity as psycopg2's `date.max`/`datetime.max`, and a date Python
/// cannot hold failing in pandas as with psycopg2.
#[test]
fn data_frames_where_pghook_differs() {
    let pg = Cluster::plain();
    let db = pg.create_database("py_df_differs");
    let snippet = format!(
        r#"import polars as pl
from datetime import date, datetime
from zoneinfo import ZoneInfo
from decimal import Decimal
from pandas import NA, Timestamp
nan = float("nan")
utc = ZoneInfo("UTC")
{FRAMES}
sql = r"""select '{{"a": [1, 2.5]}}'::jsonb as js, array[1, null] as arr, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u,
    '12:34:56+05:30'::timetz as ttz, '\x00ff'::bytea as ba, '2.25'::money as m, null::int as none,
    'infinity'::date as inf, 'infinity'::timestamptz as tinf, '2024-01-01 10:00'::timestamptz as local"""
bc = "select '0044-03-15 BC'::date as bc"
empty = "select 1::int2 as a, 'x'::text as b where false"
dates = "select '2024-01-01'::date as d union all select null"
got = [frame(hook.get_df(sql)), frame(hook.get_df(sql, df_type="polars")),
 frame(hook.get_df(bc, df_type="polars").select(pl.col("bc").cast(pl.Int32))), error(lambda: hook.get_df(bc)),
 frame(hook.get_df("select 1.5::numeric as n union all select 1.25", coerce_float=False)),
 frame(hook.get_df("select 'NaN'::numeric as n union all select 1", df_type="polars")),
 frame(hook.get_df(empty)), frame(hook.get_df(empty, df_type="polars")),
 [frame(part) for part in hook.get_df(empty, chunksize=2)],
 frame(hook.get_df(dates, dtype_backend="numpy_nullable")), frame(hook.get_df(dates, dtype_backend="pyarrow")),
 [frame(part) for part in hook.get_df("select generate_series(1, 3) as a", df_type="polars", iter_batches=True, batch_size=2)],
 frame(hook.get_df("select %s::int as a", [1])), frame(hook.get_df("select %(a)s::int as a", {{"a": 1}}, df_type="polars"))]
text = ["js", "str", ['{{"a": [1, 2.5]}}']], ["arr", "str", ["[1,null]"]], ["u", "str", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]], \
    ["ttz", "str", ["12:34:56+05:30"]]
expected = [
 [[[None], [0]], *text, ["ba", "object", [b"\x00\xff"]], ["m", "str", ["$2.25"]], ["none", "float64", [nan]],
  ["inf", "object", [date(9999, 12, 31)]], ["tinf", "datetime64[us, UTC]", [Timestamp("9999-12-31 23:59:59.999999+0000", tz="UTC")]],
  ["local", "datetime64[us, UTC]", [Timestamp("2024-01-01 04:30:00+0000", tz="UTC")]]],
 [*[[name, "String", values] for name, _, values in text], ["ba", "Binary", [b"\x00\xff"]], ["m", "String", ["$2.25"]],
  ["none", "Int64", [None]], ["inf", "Date", [date(9999, 12, 31)]],
  ["tinf", "Datetime(time_unit='us', time_zone='UTC')", [datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc)]],
  ["local", "Datetime(time_unit='us', time_zone='UTC')", [datetime(2024, 1, 1, 4, 30, tzinfo=utc)]]],
 [["bc", "Int32", [-735160]]], ["ValueError", "year -43 is out of range"],
 [[[None], [0, 1]], ["n", "object", [Decimal("1.50"), Decimal("1.25")]]],
 [["n", "String", ["NaN", "1"]]],
 [[[None], []], ["a", "int64", []], ["b", "str", []]], [["a", "Int64", []], ["b", "String", []]],
 [[[[None], []], ["a", "int64", []], ["b", "str", []]]],
 [[[None], [0, 1]], ["d", "object", [date(2024, 1, 1), None]]],
 [[[None], [0, 1]], ["d", "date32[day][pyarrow]", [date(2024, 1, 1), NA]]],
 [[["a", "Int64", [1, 2]]], [["a", "Int64", [3]]]],
 [[[None], [0]], ["a", "int64", [1]]], [["a", "Int64", [1]]]]
repr(got) == repr(expected) or repr(got)
"#
    );
    let got = python_hook(Compared::Pghook, &pg.uri_db(&db, "options=-c%20TimeZone%3DAsia%2FKolkata"), &snippet);
    assert_eq!(got, serde_json::json!({"bool": true}), "pghook's get_df gave {got}");
}

/// Without the library (or pyarrow for pandas), an ImportError (and a
/// pghook.Error) that names what to install; Airflow raises its
/// AirflowOptionalProviderFeatureException.
#[test]
fn get_df_names_the_missing_library() {
    let pg = Cluster::plain();
    let db = pg.create_database("py_df_missing");
    let snippet = r#"
import sys, pghook
def missing(df_type, hidden):
    saved = sys.modules.get(hidden)
    sys.modules[hidden] = None  # import fails as if not installed
    try:
        hook.get_df("select 1", df_type=df_type)
    except ImportError as e:
        return [isinstance(e, pghook.MissingDependencyError) and isinstance(e, pghook.Error), e.kind, e.name, str(e)]
    finally:
        if saved is None:
            del sys.modules[hidden]
        else:
            sys.modules[hidden] = saved
[missing("pandas", "pandas"), missing("pandas", "pyarrow"), missing("polars", "polars")]
"#;
    let got = python_hook(Compared::Pghook, &pg.uri_db(&db, ""), snippet);
    let expected = serde_json::json!([
        [{"bool": true}, {"str": "dependency"}, {"str": "pandas"}, {"str": "pandas library not installed, run: pip install pandas pyarrow"}],
        [{"bool": true}, {"str": "dependency"}, {"str": "pyarrow"}, {"str": "pyarrow library not installed (pghook builds pandas DataFrames from Arrow), run: pip install pyarrow"}],
        [{"bool": true}, {"str": "dependency"}, {"str": "polars"}, {"str": "polars library not installed, run: pip install polars"}],
    ]);
    assert_eq!(got, expected, "{got:#}");
}
