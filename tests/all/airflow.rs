//! The same operations through Airflow's own `PostgresHook` (providers-postgres
//! on psycopg2, from the virtualenv scripts/setup makes) and through pghook,
//! on one throwaway database each test, compared value by value (issue #7).
//!
//! Results meet as the Python values psycopg2 returns ([`Py`]): Airflow's
//! arrive tagged by type, pghook's are mapped from `pghook::Value` with their
//! column's type name ([`Py::from_pghook`]). Airflow runs first; a test that
//! changes tables has it drop them again (or gives each side tables of its
//! own), so pghook starts from the same database.

use pghook::{Element, Fetch, HookArgs, InsertOptions, Param, Parameters, Records, RowShape, RunOptions, Value};
use pghook_tests::{Cluster, Py, airflow_hook, tenant};

/// Handlers and helpers every Airflow snippet may use.
const PRELUDE: &str = "import datetime, decimal, uuid\n\
                       from airflow.providers.common.sql.hooks.handlers import fetch_all_handler, fetch_one_handler\n\
                       def pgcode(call):\n    try:\n        call()\n    except Exception as e:\n        return e.pgcode\n\
                       def error(call):\n    try:\n        return call()\n    except Exception as e:\n        return type(e).__name__\n";

/// Both hooks on a new database `name`, its connection given `extras`.
struct Side {
    uri: String,
    hook: pghook::Hook,
    _root: tempfile::TempDir,
}

impl Side {
    fn new(name: &str, extras: &str) -> Side {
        let pg = Cluster::plain();
        let db = pg.create_database(name);
        let uri = pg.uri_db(&db, extras);
        let root = tempfile::tempdir().unwrap();
        let hook = tenant(root.path(), &[("c", &uri)]).hook(HookArgs::conn_id("c"));
        Side { uri, hook, _root: root }
    }

    /// The value of `snippet`'s last expression, run with Airflow's hook.
    fn airflow(&self, snippet: &str) -> Py {
        Py::from_tagged(&airflow_hook(&self.uri, &format!("{PRELUDE}{snippet}")))
    }
}

/// What get_records returns: a list of rows, each a tuple, or a dict with
/// realdictcursor (psycopg2's DictRow is a list, a namedtuple a tuple).
fn records(r: &Records) -> Py {
    let rows = Py::from_rows(&r.columns, &r.rows.to_values().unwrap());
    if r.shape != RowShape::RealDict {
        return rows;
    }
    let Py::List(rows) = rows else { unreachable!() };
    let dict = |row: Py| {
        let Py::List(values) = row else { unreachable!() };
        Py::Dict(r.columns.iter().map(|c| c.name.clone()).zip(values).collect())
    };
    Py::List(rows.into_iter().map(dict).collect())
}

/// What get_first returns: the first row, or None.
fn first(r: &Records) -> Py {
    match records(r) {
        Py::List(mut rows) if !rows.is_empty() => rows.remove(0),
        _ => Py::None,
    }
}

/// What fetch_all_handler returns for a run of one SQL string.
fn fetched(mut rowsets: Vec<pghook::Rowset>) -> Py {
    assert_eq!(rowsets.len(), 1, "one result for one string");
    let r = rowsets.pop().unwrap();
    Py::from_rows(&r.columns, &r.rows.to_values().unwrap())
}

fn sqlstate(e: pghook::Error) -> Py {
    Py::Str(e.sqlstate().unwrap_or_else(|| panic!("no SQLSTATE: {e}")).code().to_string())
}

fn fetch_all() -> RunOptions {
    RunOptions { fetch: Some(Fetch::All), ..Default::default() }
}

#[tokio::test]
async fn several_statements_in_one_string() {
    let side = Side::new("airflow_several", "");
    let airflow = side.airflow(
        r#"
out = [
    hook.get_records("create table m (a int, b text); insert into m values (1, 'x'), (2, null); select a, b from m order by a"),
    hook.get_records("insert into m values (%s, %s); select b, a from m order by a", parameters=[3, "100%"]),
    hook.run("insert into m values (%(a)s, 'y'); select count(*) from m", parameters={"a": 4}, handler=fetch_all_handler),
    hook.run("select a from m where a > 1 order by a; select b from m order by a", handler=fetch_all_handler),
    hook.get_first("select a from m order by a desc; select a from m order by a"),
]
hook.run("drop table m")
out
"#,
    );
    let hook = &side.hook;
    let sql = "create table m (a int, b text); insert into m values (1, 'x'), (2, null); select a, b from m order by a";
    let three = Parameters::Positional(vec![Param::Value(Value::Int(3)), Param::Value(Value::Text("100%".into()))]);
    let four = Parameters::Named(vec![("a".into(), Param::Value(Value::Int(4)))]);
    let mut pghook = vec![
        records(&hook.get_records(sql, None).await.unwrap()),
        records(
            &hook
                .get_records("insert into m values (%s, %s); select b, a from m order by a", Some(three))
                .await
                .unwrap(),
        ),
        fetched(
            hook.run(&["insert into m values (%(a)s, 'y'); select count(*) from m"], Some(four), fetch_all())
                .await
                .unwrap(),
        ),
        fetched(
            hook.run(&["select a from m where a > 1 order by a; select b from m order by a"], None, fetch_all())
                .await
                .unwrap(),
        ),
    ];
    pghook.push(first(
        &hook.get_first("select a from m order by a desc; select a from m order by a", None).await.unwrap(),
    ));
    let pghook = Py::List(pghook);
    assert_eq!(pghook, airflow);
}

#[tokio::test]
async fn autocommit_and_failures_leave_the_same_rows() {
    let side = Side::new("airflow_atomic", "");
    let airflow = side.airflow(
        r#"
hook.run("create table n (a int)")
count = lambda: hook.get_first("select count(*) from n")[0]
out = [
    pgcode(lambda: hook.run("insert into n values (1); insert into n values ('x')", autocommit=True)), count(),
    pgcode(lambda: hook.run(["insert into n values (2)", "insert into n values ('x')"], autocommit=True)), count(),
    pgcode(lambda: hook.run(["insert into n values (3)", "insert into n values ('x')"])), count(),
    pgcode(lambda: hook.run("insert into n values (4); select 1/0")), count(),
]
hook.run("drop table n")
out
"#,
    );
    let hook = &side.hook;
    hook.run(&["create table n (a int)"], None, RunOptions::default()).await.unwrap();
    let count = || async { first(&hook.get_first("select count(*) from n", None).await.unwrap()) };
    let autocommit = RunOptions { autocommit: Some(true), ..Default::default() };
    let mut pghook = Vec::new();
    for (sql, options) in [
        (&["insert into n values (1); insert into n values ('x')"][..], autocommit),
        (&["insert into n values (2)", "insert into n values ('x')"][..], autocommit),
        (&["insert into n values (3)", "insert into n values ('x')"][..], RunOptions::default()),
        (&["insert into n values (4); select 1/0"][..], RunOptions::default()),
    ] {
        pghook.push(sqlstate(hook.run(sql, None, options).await.unwrap_err()));
        let Py::List(mut row) = count().await else { unreachable!() };
        pghook.push(row.remove(0));
    }
    assert_eq!(Py::List(pghook), airflow);
    // A string is one transaction even with autocommit; a list is not.
    let (bad, zero) = (Py::Str("22P02".into()), Py::Str("22012".into()));
    let count = |n: i64| Py::Int(n.to_string());
    let expected = [bad.clone(), count(0), bad.clone(), count(1), bad, count(1), zero, count(1)];
    assert_eq!(airflow, Py::List(expected.to_vec()));
}

#[tokio::test]
async fn empty_parameters_leave_percent_alone() {
    let side = Side::new("airflow_empty_params", "");
    let airflow = side.airflow(
        r#"[
    hook.get_records("select '100%' as p, '%s' as s", parameters=[]),
    hook.get_records("select '100%' as p, '%(x)s' as s", parameters={}),
    hook.run("select '5 %'", parameters=[], handler=fetch_all_handler),
]"#,
    );
    let hook = &side.hook;
    let none = || Some(Parameters::Positional(vec![]));
    let pghook = Py::List(vec![
        records(&hook.get_records("select '100%' as p, '%s' as s", none()).await.unwrap()),
        records(&hook.get_records("select '100%' as p, '%(x)s' as s", Some(Parameters::Named(vec![]))).await.unwrap()),
        fetched(hook.run(&["select '5 %'"], none(), fetch_all()).await.unwrap()),
    ]);
    assert_eq!(pghook, airflow);
    assert_eq!(
        pghook,
        Py::List(vec![
            Py::List(vec![Py::List(vec![Py::Str("100%".into()), Py::Str("%s".into())])]),
            Py::List(vec![Py::List(vec![Py::Str("100%".into()), Py::Str("%(x)s".into())])]),
            Py::List(vec![Py::List(vec![Py::Str("5 %".into())])]),
        ])
    );
}

#[tokio::test]
async fn row_shapes_of_the_cursor_extra_and_get_first() {
    for cursor in ["", "dictcursor", "realdictcursor", "namedtuplecursor"] {
        let extras = if cursor.is_empty() { String::new() } else { format!("cursor={cursor}") };
        let side = Side::new(&format!("airflow_shape_{cursor}"), &extras);
        let sql = "select 1 as a, 'x' as b union all select 2, null order by a";
        let airflow = side.airflow(&format!(
            "[hook.get_records({sql:?}), hook.get_first({sql:?}), hook.get_first('select 1 where false')]"
        ));
        let hook = &side.hook;
        let pghook = Py::List(vec![
            records(&hook.get_records(sql, None).await.unwrap()),
            first(&hook.get_first(sql, None).await.unwrap()),
            first(&hook.get_first("select 1 where false", None).await.unwrap()),
        ]);
        assert_eq!(pghook, airflow, "cursor={cursor}");
    }
}

/// The connection's time zone, set as Airflow users set it: the `options` extra.
const KOLKATA: &str = "options=-c%20TimeZone%3DAsia%2FKolkata";

/// Select `expressions` in one statement through both hooks and describe
/// every column whose values differ.
async fn differences(side: &Side, expressions: &[&str]) -> Vec<String> {
    differences_with(side, expressions, "None", None).await
}

/// [`differences`] with parameters: `python`, the Python list Airflow's hook
/// gets, and `pghook`, the same values as pghook's.
async fn differences_with(side: &Side, expressions: &[&str], python: &str, pghook: Option<Parameters>) -> Vec<String> {
    let list: Vec<String> = expressions.iter().enumerate().map(|(i, e)| format!("{e} as c{i}")).collect();
    let sql = format!("select {}", list.join(", "));
    // A JSON string is a Python string literal.
    let airflow =
        side.airflow(&format!("hook.get_records({}, parameters={python})", serde_json::to_string(&sql).unwrap()));
    let Py::List(mut rows) = airflow else { panic!("Airflow's rows: {airflow:?}") };
    let Py::List(airflow) = rows.remove(0) else { panic!("Airflow's row") };
    let r = side.hook.get_records(&sql, pghook).await.unwrap();
    let mut differences = Vec::new();
    for (i, expression) in expressions.iter().enumerate() {
        let (value, type_name) = (&r.rows.to_values().unwrap()[0][i], &r.columns[i].type_name);
        let pghook = Py::from_pghook(value, type_name);
        if pghook != airflow[i] {
            differences.push(format!(
                "{expression} ({type_name}): pghook {value:?}, as Python {pghook:?}; Airflow {:?}",
                airflow[i]
            ));
        }
    }
    differences
}

async fn assert_same_values(name: &str, extras: &str, expressions: &[&str]) {
    let side = Side::new(name, extras);
    let differences = differences(&side, expressions).await;
    assert!(differences.is_empty(), "pghook and Airflow differ:\n{}", differences.join("\n"));
}

#[tokio::test]
async fn numbers() {
    assert_same_values(
        "airflow_numbers",
        "",
        &[
            "1::int2",
            "(-2147483648)::int4",
            "9223372036854775807::int8",
            "'4294967295'::oid",
            "0.1::float8",
            "1e300::float8",
            "'-0'::float8",
            "'NaN'::float8",
            "'-Infinity'::float8",
            "1.50::numeric",
            "'NaN'::numeric",
            "'Infinity'::numeric",
            "123456789012345678901234567890.000::numeric",
            "0.000001::numeric",
        ],
    )
    .await;
}

#[tokio::test]
async fn float4_at_its_own_precision() {
    assert_same_values("airflow_float4", "", &["0.1::float4", "1.5::float4", "3.4e38::float4", "'NaN'::float4"]).await;
}

#[tokio::test]
async fn text_bytes_and_booleans() {
    assert_same_values(
        "airflow_text",
        "",
        &[
            "'héllo'::text",
            "'a'::char(3)",
            "'x y'::varchar",
            "'pg_class'::name",
            "'\\x00ff10'::bytea",
            "''::bytea",
            "true",
            "false",
            "null::text",
            "null::int",
        ],
    )
    .await;
}

#[tokio::test]
async fn json_documents() {
    assert_same_values(
        "airflow_json",
        "",
        &[
            r#"'{"a": 123456789012345678901234567890, "b": [1.5, "x", null, true, -0]}'::jsonb"#,
            r#"'{"z": 1, "a": {"n": 2.50}}'::json"#,
            "'123456789012345678901234567890'::json",
            r#"'"text"'::jsonb"#,
            "'null'::json",
        ],
    )
    .await;
}

#[tokio::test]
async fn dates_and_times_in_the_session_time_zone() {
    assert_same_values(
        "airflow_times",
        KOLKATA,
        &[
            "'2024-02-29'::date",
            "'13:14:15.5'::time",
            "'00:00:00'::time",
            "'12:34:56.789+05:30'::timetz",
            "'2024-02-29 13:14:15.5'::timestamp",
            "'2024-01-01 00:00:00+00'::timestamptz",
            "'2024-06-01 12:00:00.123456+02'::timestamptz",
            "current_setting('TimeZone')",
        ],
    )
    .await;
}

#[tokio::test]
async fn intervals() {
    assert_same_values(
        "airflow_intervals",
        "",
        &[
            "'1 year 2 mons -3 days 04:05:06.7'::interval",
            "'-00:00:00.5'::interval",
            "'1 day'::interval",
            "'00:00:00'::interval",
            "'-1 days +02:00:00'::interval",
        ],
    )
    .await;
}

#[tokio::test]
async fn uuid_and_money() {
    assert_same_values(
        "airflow_uuid_money",
        "",
        &["'A0EEBC99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", "1.5::money", "(-12345.67)::money"],
    )
    .await;
}

#[tokio::test]
async fn arrays() {
    assert_same_values(
        "airflow_arrays",
        "",
        &[
            "array[1, null, 3]",
            "array['a', null, 'b c', '\"q\"']",
            "'{{1,2},{3,4}}'::int[]",
            "'{}'::int[]",
            "array[1.50, null]::numeric[]",
            "array[true, false]",
            "array[0.1::float8]",
            "array['2024-01-01'::date]",
            "array['\\x00ff'::bytea]",
            "array['NaN'::float8, 'Infinity', '-Infinity']",
            "array['NaN'::numeric, 'Infinity', 1.0]",
            "array[0.1::float4]",
        ],
    )
    .await;
}

#[tokio::test]
async fn arrays_of_timestamptz_in_the_session_time_zone() {
    assert_same_values("airflow_tz_arrays", KOLKATA, &["array['2024-01-01 00:00:00+00'::timestamptz, null]"]).await;
}

#[tokio::test]
async fn types_without_a_native_form_as_text() {
    assert_same_values(
        "airflow_text_types",
        "",
        &[
            "'12'::xid",
            "pg_typeof(1)",
            "'pg_class'::regclass",
            "point(1, 2)",
            "'a fat cat'::tsvector",
            "'10.0.0.1/8'::inet",
            "'08:00:2b:01:02:03'::macaddr",
            "'0/16B3748'::pg_lsn",
            "B'101'",
            "row(1, 'x y')",
        ],
    )
    .await;
}

/// psycopg2 reads the built-in ranges into its `Range` objects; pghook
/// returns the server's text, which says the same.
#[tokio::test]
async fn ranges() {
    assert_same_values(
        "airflow_ranges",
        "",
        &["'[1,2)'::int4range", "'(,5]'::int8range", "'empty'::int4range", "'[1.5,2.50]'::numrange"],
    )
    .await;
}

/// Where psycopg2 loses the server's value (README, "Differences from
/// Airflow"), pghook keeps the server's text: these are the values each gives.
#[tokio::test]
async fn where_psycopg2_loses_the_value_pghook_keeps_the_server_text() {
    let side = Side::new("airflow_lossy", "");
    let cases: &[(&str, Py, &str)] = &[
        ("'infinity'::timestamp", Py::DateTime("9999-12-31T23:59:59.999999".into()), "infinity"),
        ("'-infinity'::timestamptz", Py::DateTime("0001-01-01T00:00:00+00:00".into()), "-infinity"),
        ("'infinity'::date", Py::Date("9999-12-31".into()), "infinity"),
        ("'24:00:00'::time", Py::Time("00:00:00".into()), "24:00:00"),
        ("'0044-03-15 BC'::date", Py::Str("ValueError".into()), "0044-03-15 BC"),
        ("'10000-01-01'::date", Py::Str("ValueError".into()), "10000-01-01"),
        ("'1 year 1 mon'::interval", Py::TimeDelta(395, 0, 0), "1 year 1 mon"),
    ];
    let calls: Vec<String> =
        cases.iter().map(|(e, _, _)| format!("error(lambda: hook.get_first(\"select {e}\")[0])")).collect();
    let airflow = side.airflow(&format!("[{}]", calls.join(", ")));
    assert_eq!(airflow, Py::List(cases.iter().map(|(_, py, _)| py.clone()).collect()));
    for (expression, _, text) in cases {
        let r = side.hook.get_first(&format!("select {expression}"), None).await.unwrap();
        let got = match &r.rows.to_values().unwrap()[0][0] {
            // An interval keeps its months apart from its days, and its text.
            Value::Interval(i) => Value::Text(i.text.clone()),
            other => other.clone(),
        };
        assert_eq!(got, Value::Text(text.to_string()), "{expression}");
    }
    let r = side.hook.get_first("select '1 year 1 mon'::interval", None).await.unwrap();
    assert!(
        matches!(&r.rows.to_values().unwrap()[0][0], Value::Interval(i) if (i.months, i.days, i.microseconds) == (13, 0, 0))
    );
}

/// Parameters of the types psycopg2 adapts, each selected back with the type
/// the server gave it: the same values and the same types through both.
#[tokio::test]
async fn typed_parameters() {
    let side = Side::new("airflow_typed_params", KOLKATA);
    let cases: Vec<(&str, Param)> = vec![
        ("datetime.date(2024, 2, 29)", Param::Date("2024-02-29".into())),
        ("datetime.time(13, 14, 15, 500000)", Param::Time("13:14:15.5".into())),
        ("datetime.datetime(2024, 2, 29, 13, 14, 15)", Param::Timestamp("2024-02-29 13:14:15".into())),
        (
            "datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30)))",
            Param::Timestamptz("2024-01-01 00:00:00+05:30".into()),
        ),
        ("datetime.timedelta(days=1, hours=2)", Param::Interval("1 day 02:00:00".into())),
        ("decimal.Decimal('1.50')", Param::Value(Value::Numeric("1.50".into()))),
        ("b'\\x00\\\\\\'\\xff'", Param::Value(Value::Bytes(vec![0, 92, 39, 255]))),
        ("[1, 2, 3]", Param::Array(vec![Value::Int(1).into(), Value::Int(2).into(), Value::Int(3).into()])),
        ("['a', None]", Param::Array(vec![Value::Text("a".into()).into(), Value::Null.into()])),
        // Items are adapted as on their own, with their casts.
        (
            "[datetime.date(2024, 2, 29), datetime.date(2024, 3, 1)]",
            Param::Array(vec![Element::Date("2024-02-29".into()), Element::Date("2024-03-01".into())]),
        ),
        (
            "[datetime.datetime(2024, 2, 29, 13, 14, 15), None]",
            Param::Array(vec![Element::Timestamp("2024-02-29 13:14:15".into()), Value::Null.into()]),
        ),
        ("[datetime.timedelta(days=1)]", Param::Array(vec![Element::Interval("1 day".into())])),
        ("10000000000000000001", Param::Value(Value::Numeric("10000000000000000001".into()))),
        ("-1", Param::Value(Value::Int(-1))),
        ("True", Param::Value(Value::Boolean(true))),
        ("None", Param::Value(Value::Null)),
    ];
    let mut expressions = Vec::new();
    let mut python = Vec::new();
    let mut params = Vec::new();
    for (py, param) in cases {
        expressions.extend(["%s", "pg_typeof(%s)::text"]);
        python.extend([py, py]);
        params.extend([param.clone(), param]);
    }
    let python = format!("[{}]", python.join(", "));
    let differences = differences_with(&side, &expressions, &python, Some(Parameters::Positional(params))).await;
    assert!(differences.is_empty(), "pghook and Airflow differ:\n{}", differences.join("\n"));
    // A uuid.UUID psycopg2 adapts only after register_uuid(), which the hook
    // does not call; pghook's uuid parameter is a uuid (README, "Differences from Airflow").
    let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let airflow = side.airflow(&format!("error(lambda: hook.get_first('select %s', [uuid.UUID('{u}')]))"));
    assert_eq!(airflow, Py::Str("ProgrammingError".into()));
    let r = side.hook.get_first("select %s", Some(Parameters::Positional(vec![Param::Uuid(u.into())]))).await.unwrap();
    assert_eq!((&r.rows.to_values().unwrap()[0][0], r.columns[0].type_name.as_str()), (&Value::Text(u.into()), "uuid"));
}

/// A list for `= ANY(%s)`, a tuple for `IN %s`.
#[tokio::test]
async fn lists_and_tuples_as_parameters() {
    let side = Side::new("airflow_list_params", "");
    let list = Param::Array(vec![Value::Int(1).into(), Value::Int(2).into()]);
    let tuple = Param::Tuple(vec![Value::Text("y".into()).into(), Value::Text("x".into()).into()]);
    // Dates in both, as DAGs filter on them.
    let days = Param::Tuple(vec![Element::Date("2024-02-29".into()), Element::Date("2024-03-01".into())]);
    let differences = differences_with(
        &side,
        &["2 = any(%s)", "'x' in %s", "3 = any(%s)", "date '2024-03-01' in %s", "date '2024-03-02' in %s"],
        "[[1, 2], ('y', 'x'), [1, 2], (datetime.date(2024, 2, 29), datetime.date(2024, 3, 1)), \
         (datetime.date(2024, 2, 29), datetime.date(2024, 3, 1))]",
        Some(Parameters::Positional(vec![list.clone(), tuple, list, days.clone(), days])),
    )
    .await;
    assert!(differences.is_empty(), "pghook and Airflow differ:\n{}", differences.join("\n"));
}

/// psycopg2 sends a float as a bare literal (`0.1`), which PostgreSQL types
/// as numeric; so does pghook.
#[tokio::test]
async fn a_float_parameter_as_psycopg2_sends_it() {
    let side = Side::new("airflow_float_param", "");
    let differences = differences_with(
        &side,
        &["%s", "pg_typeof(%s)::text", "%s * 3"],
        "[0.1, 0.1, 0.1]",
        Some(Parameters::Positional(vec![Param::Value(Value::Float(0.1)); 3])),
    )
    .await;
    assert!(differences.is_empty(), "pghook and Airflow differ:\n{}", differences.join("\n"));
}

/// pghook's rows of `table`, as Airflow's get_records would return them.
async fn table(side: &Side, table: &str) -> Py {
    records(&side.hook.get_records(&format!("select * from {table} order by id"), None).await.unwrap())
}

/// The rows both hooks insert, in `target_fields` order (id, name, born,
/// amount): quotes, a backslash, NULLs, a date and a Decimal.
const PYTHON_ROWS: &str = r#"[
    (1, "it's", datetime.date(2024, 2, 29), decimal.Decimal("1.50")),
    (2, 'say "hi"', None, decimal.Decimal("-0.01")),
    (3, None, datetime.date(1999, 12, 31), None),
    (4, "back\\slash", datetime.date(2000, 1, 1), decimal.Decimal("12345678.90")),
    (5, "%s %(x)s", None, decimal.Decimal("0")),
]"#;

fn rows() -> Vec<Vec<Param>> {
    let row = |id: i64, name: Option<&str>, born: Option<&str>, amount: Option<&str>| {
        vec![
            Param::Value(Value::Int(id)),
            Param::Value(name.map_or(Value::Null, |n| Value::Text(n.into()))),
            born.map_or(Param::Value(Value::Null), |b| Param::Date(b.into())),
            Param::Value(amount.map_or(Value::Null, |a| Value::Numeric(a.into()))),
        ]
    };
    vec![
        row(1, Some("it's"), Some("2024-02-29"), Some("1.50")),
        row(2, Some("say \"hi\""), None, Some("-0.01")),
        row(3, None, Some("1999-12-31"), None),
        row(4, Some("back\\slash"), Some("2000-01-01"), Some("12345678.90")),
        row(5, Some("%s %(x)s"), None, Some("0")),
    ]
}

const CREATE_PEOPLE: &str = "(id int primary key, name text, born date, amount numeric(12, 2))";

fn fields() -> Option<Vec<String>> {
    Some(["id", "name", "born", "amount"].map(String::from).to_vec())
}

fn every_two() -> InsertOptions {
    InsertOptions { target_fields: fields(), commit_every: Some(2), ..Default::default() }
}

#[tokio::test]
async fn insert_rows_gives_the_same_table() {
    let side = Side::new("airflow_insert_rows", "");
    let airflow = side.airflow(&format!(
        r#"
rows = {PYTHON_ROWS}
fields = ["id", "name", "born", "amount"]
hook.run("create table a {CREATE_PEOPLE}; create table a_fast {CREATE_PEOPLE}")
hook.insert_rows("a", rows, target_fields=fields, commit_every=2)
hook.insert_rows("a_fast", rows, target_fields=fields, commit_every=2, fast_executemany=True)
[hook.get_records("select * from a order by id"), hook.get_records("select * from a_fast order by id")]
"#
    ));
    let hook = &side.hook;
    hook.run(
        &[&format!("create table p {CREATE_PEOPLE}; create table p_fast {CREATE_PEOPLE}")],
        None,
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(hook.insert_rows("p", rows(), every_two()).await.unwrap(), 5);
    let fast = InsertOptions { fast: true, ..every_two() };
    assert_eq!(hook.insert_rows("p_fast", rows(), fast).await.unwrap(), 5);
    let pghook = Py::List(vec![table(&side, "p").await, table(&side, "p_fast").await]);
    assert_eq!(pghook, airflow);
    let Py::List(tables) = &pghook else { unreachable!() };
    assert_eq!(tables[0], tables[1], "fast gives the same table");
    // The Airflow side's table, read through pghook, is pghook's too.
    assert_eq!(table(&side, "a").await, tables[0]);
}

/// A row of a table `(id int primary key, name text)`.
fn id_name(id: i64, name: &str) -> Vec<Param> {
    vec![Param::Value(Value::Int(id)), Param::Value(Value::Text(name.into()))]
}

fn id_and_name() -> Option<Vec<String>> {
    Some(vec!["id".into(), "name".into()])
}

#[tokio::test]
async fn insert_rows_keeps_the_batches_before_a_failing_one() {
    let side = Side::new("airflow_insert_fail", "");
    // The second batch (ids 1, 5, 6) repeats a key in its first row: the
    // first batch stays, nothing after, and the error is that row's (not
    // the aborted transaction's of the rows after it).
    let python_rows = "[(1, 'a'), (2, 'b'), (3, 'c'), (1, 'again'), (5, 'e'), (6, 'f')]";
    let airflow = side.airflow(&format!(
        r#"
out = []
for fast in [False, True]:
    hook.run("drop table if exists a; create table a (id int primary key, name text)")
    out.append(pgcode(lambda: hook.insert_rows("a", {python_rows}, target_fields=["id", "name"], commit_every=3, fast_executemany=fast)))
    out.append(hook.get_records("select * from a order by id"))
hook.run("drop table a")
out
"#
    ));
    let hook = &side.hook;
    let mut pghook = Vec::new();
    for fast in [false, true] {
        hook.run(
            &["drop table if exists a; create table a (id int primary key, name text)"],
            None,
            RunOptions::default(),
        )
        .await
        .unwrap();
        let rows = vec![
            id_name(1, "a"),
            id_name(2, "b"),
            id_name(3, "c"),
            id_name(1, "again"),
            id_name(5, "e"),
            id_name(6, "f"),
        ];
        let options = InsertOptions { target_fields: id_and_name(), commit_every: Some(3), fast, ..Default::default() };
        pghook.push(sqlstate(hook.insert_rows("a", rows, options).await.unwrap_err()));
        pghook.push(table(&side, "a").await);
    }
    assert_eq!(Py::List(pghook), airflow);
    let Py::List(airflow) = airflow else { unreachable!() };
    assert_eq!(airflow[0], Py::Str("23505".into()));
}

#[tokio::test]
async fn insert_rows_replace_upserts_on_the_replace_index() {
    let side = Side::new("airflow_insert_replace", "");
    let airflow = side.airflow(&format!(
        r#"
rows = {PYTHON_ROWS}
fields = ["id", "name", "born", "amount"]
hook.run("create table a {CREATE_PEOPLE}")
hook.insert_rows("a", rows[:3], target_fields=fields, commit_every=2)
changed = [(2, "two", datetime.date(2020, 2, 2), None), (3, None, None, decimal.Decimal("3.00"))] + rows[3:]
hook.insert_rows("a", changed, target_fields=fields, commit_every=2, replace=True, replace_index=["id"])
[hook.get_records("select * from a order by id")]
"#
    ));
    let hook = &side.hook;
    hook.run(&[&format!("create table p {CREATE_PEOPLE}")], None, RunOptions::default()).await.unwrap();
    let mut rows = rows();
    hook.insert_rows("p", rows[..3].to_vec(), every_two()).await.unwrap();
    let changed = |id: i64, name: Value, born: Param, amount: Value| {
        vec![Param::Value(Value::Int(id)), Param::Value(name), born, Param::Value(amount)]
    };
    let mut upserts = vec![
        changed(2, Value::Text("two".into()), Param::Date("2020-02-02".into()), Value::Null),
        changed(3, Value::Null, Param::Value(Value::Null), Value::Numeric("3.00".into())),
    ];
    upserts.extend(rows.drain(3..));
    let replace = InsertOptions { replace: true, replace_index: Some(vec!["id".into()]), ..every_two() };
    assert_eq!(hook.insert_rows("p", upserts, replace).await.unwrap(), 4);
    assert_eq!(Py::List(vec![table(&side, "p").await]), airflow);
}

/// README, "Differences from Airflow": without `replace_index` Airflow looks
/// the primary key up only for a table named with its schema, and raises
/// ValueError otherwise; pghook upserts on the primary key either way.
#[tokio::test]
async fn insert_rows_replace_without_a_replace_index() {
    let side = Side::new("airflow_insert_replace_pk", "");
    let airflow = side.airflow(
        r#"
hook.run("create table a (id int primary key, name text); insert into a values (1, 'a')")
out = [
    error(lambda: hook.insert_rows("a", [(1, "b")], target_fields=["id", "name"], replace=True)),
    hook.get_records("select * from a"),
    error(lambda: hook.insert_rows("public.a", [(1, "c")], target_fields=["id", "name"], replace=True)),
    hook.get_records("select * from a"),
]
hook.run("drop table a")
out
"#,
    );
    let one = |name: &str| Py::List(vec![Py::List(vec![Py::Int("1".into()), Py::Str(name.into())])]);
    assert_eq!(airflow, Py::List(vec![Py::Str("ValueError".into()), one("a"), Py::None, one("c")]));
    let hook = &side.hook;
    hook.run(
        &["create table a (id int primary key, name text); insert into a values (1, 'a')"],
        None,
        RunOptions::default(),
    )
    .await
    .unwrap();
    for (table_name, name) in [("a", "b"), ("public.a", "c")] {
        let options = InsertOptions { target_fields: id_and_name(), replace: true, ..Default::default() };
        assert_eq!(hook.insert_rows(table_name, vec![id_name(1, name)], options).await.unwrap(), 1);
        assert_eq!(table(&side, "a").await, one(name), "{table_name}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(readme.contains("| `insert_rows(replace=True)` without `replace_index` |"), "README lists the difference");
}

#[tokio::test]
async fn get_table_primary_key_in_key_order() {
    let side = Side::new("airflow_primary_key", "");
    let setup = r#"create table k (b int, a int, c int, primary key (a, b));
create table nokey (x int);
create schema s; create table s.k2 (id text primary key, v int);
create table "Mixed" ("Id" int primary key)"#;
    let airflow = side.airflow(&format!(
        r#"
hook.run({setup:?})
out = [
    hook.get_table_primary_key("k"),
    hook.get_table_primary_key("nokey"),
    hook.get_table_primary_key("k2", "s"),
    hook.get_table_primary_key("k2"),
    hook.get_table_primary_key("Mixed"),
    hook.get_table_primary_key("missing"),
]
hook.run('drop table k, nokey, s.k2, "Mixed"; drop schema s')
out
"#
    ));
    let hook = &side.hook;
    hook.run(&[setup], None, RunOptions::default()).await.unwrap();
    let mut pghook = Vec::new();
    for (table, schema) in
        [("k", None), ("nokey", None), ("k2", Some("s")), ("k2", None), ("Mixed", None), ("missing", None)]
    {
        let key = hook.get_table_primary_key(table, schema).await.unwrap();
        pghook.push(key.map_or(Py::None, |k| Py::List(k.into_iter().map(Py::Str).collect())));
    }
    assert_eq!(Py::List(pghook), airflow);
    let Py::List(airflow) = airflow else { unreachable!() };
    assert_eq!(airflow[0], Py::List(vec![Py::Str("a".into()), Py::Str("b".into())]));
}

/// What Airflow's handler makes of one statement's result: None for a
/// statement without a result, else the first row (or None) or every row.
fn handled(rowset: pghook::Rowset, fetch: Fetch) -> Py {
    if rowset.columns.is_empty() {
        return Py::None;
    }
    let Py::List(mut rows) = Py::from_rows(&rowset.columns, &rowset.rows.to_values().unwrap()) else { unreachable!() };
    match fetch {
        Fetch::One if rows.is_empty() => Py::None,
        Fetch::One => rows.remove(0),
        _ => Py::List(rows),
    }
}

/// Each result of a run handled by `fetch`, as Airflow's list.
fn each_handled(rowsets: Vec<pghook::Rowset>, fetch: Fetch) -> Py {
    Py::List(rowsets.into_iter().map(|r| handled(r, fetch)).collect())
}

#[tokio::test]
async fn run_with_handlers_return_last_and_split_statements() {
    let side = Side::new("airflow_run_handlers", "");
    let airflow = side.airflow(
        r#"
hook.run("create table r (a int); insert into r values (1), (2)")
out = [
    hook.run("select a from r order by a", handler=fetch_one_handler),
    hook.run("select a from r where false", handler=fetch_one_handler),
    hook.run("select a from r order by a", handler=fetch_all_handler),
    hook.run("insert into r values (3)", handler=fetch_all_handler),
    hook.run(["insert into r values (4)", "select a from r order by a", "select count(*) from r"], handler=fetch_all_handler, return_last=False),
    hook.run(["select 1 where false", "select a from r order by a desc"], handler=fetch_one_handler, return_last=False),
    hook.run("select 1; insert into r values (5); select a from r order by a", handler=fetch_all_handler, split_statements=True),
    hook.run("select 1; delete from r where a = 5; select a from r order by a", handler=fetch_all_handler, split_statements=True, return_last=False),
    hook.run("select 2; select a from r order by a", handler=fetch_one_handler, split_statements=True, return_last=False),
]
hook.run("drop table r")
out
"#,
    );
    let hook = &side.hook;
    hook.run(&["create table r (a int); insert into r values (1), (2)"], None, RunOptions::default()).await.unwrap();
    let last = |fetch: Fetch| RunOptions { fetch: Some(fetch), ..Default::default() };
    let each = |fetch: Fetch| RunOptions { fetch: Some(fetch), return_last: Some(false), ..Default::default() };
    let split = |options: RunOptions| RunOptions { split_statements: Some(true), ..options };
    let one = |mut rowsets: Vec<pghook::Rowset>, fetch| {
        assert_eq!(rowsets.len(), 1, "the last result");
        handled(rowsets.pop().unwrap(), fetch)
    };
    let (f1, fa) = (Fetch::One, Fetch::All);
    let pghook = Py::List(vec![
        one(hook.run(&["select a from r order by a"], None, last(f1)).await.unwrap(), f1),
        one(hook.run(&["select a from r where false"], None, last(f1)).await.unwrap(), f1),
        one(hook.run(&["select a from r order by a"], None, last(fa)).await.unwrap(), fa),
        one(hook.run(&["insert into r values (3)"], None, last(fa)).await.unwrap(), fa),
        each_handled(
            hook.run(
                &["insert into r values (4)", "select a from r order by a", "select count(*) from r"],
                None,
                each(fa),
            )
            .await
            .unwrap(),
            fa,
        ),
        each_handled(
            hook.run(&["select 1 where false", "select a from r order by a desc"], None, each(f1)).await.unwrap(),
            f1,
        ),
        one(
            hook.run("select 1; insert into r values (5); select a from r order by a", None, split(last(fa)))
                .await
                .unwrap(),
            fa,
        ),
        each_handled(
            hook.run("select 1; delete from r where a = 5; select a from r order by a", None, split(each(fa)))
                .await
                .unwrap(),
            fa,
        ),
        each_handled(hook.run("select 2; select a from r order by a", None, split(each(f1))).await.unwrap(), f1),
    ]);
    assert_eq!(pghook, airflow);
}

/// Airflow returns every statement's result for a list of SQL strings
/// whatever `return_last` says (it applies to one string only); so does
/// pghook, whose `run` tells a string from a list.
#[tokio::test]
async fn run_of_a_list_returns_every_result_by_default() {
    let side = Side::new("airflow_run_list", "");
    let airflow = side.airflow(r#"hook.run(["select 1", "select 2"], handler=fetch_all_handler)"#);
    let pghook = each_handled(side.hook.run(&["select 1", "select 2"], None, fetch_all()).await.unwrap(), Fetch::All);
    assert_eq!(pghook, airflow);
}

/// Airflow's `fast_executemany` (psycopg2's execute_values) and pghook's
/// `fast` both send a batch as one multi-row INSERT: with `replace`, a batch
/// holding one key twice fails on both, and the batch before it stays.
#[tokio::test]
async fn insert_rows_fast_replace_refuses_a_key_twice_in_a_batch() {
    let side = Side::new("airflow_insert_fast_twice", "");
    let airflow = side.airflow(
        r#"
hook.run("create table a (id int primary key, name text)")
rows = [(1, "a"), (2, "b"), (3, "c"), (3, "d")]
out = [
    pgcode(lambda: hook.insert_rows("a", rows, target_fields=["id", "name"], commit_every=2, replace=True, replace_index=["id"], fast_executemany=True)),
    hook.get_records("select * from a order by id"),
]
hook.run("drop table a")
out
"#,
    );
    let hook = &side.hook;
    hook.run(&["create table a (id int primary key, name text)"], None, RunOptions::default()).await.unwrap();
    let options = InsertOptions {
        replace: true,
        replace_index: Some(vec!["id".into()]),
        fast: true,
        ..InsertOptions { target_fields: id_and_name(), ..every_two() }
    };
    let rows = vec![id_name(1, "a"), id_name(2, "b"), id_name(3, "c"), id_name(3, "d")];
    let pghook =
        Py::List(vec![sqlstate(hook.insert_rows("a", rows, options).await.unwrap_err()), table(&side, "a").await]);
    assert_eq!(pghook, airflow);
    let Py::List(airflow) = airflow else { unreachable!() };
    assert_eq!(airflow[0], Py::Str("21000".into()));
}

/// `client_encoding=LATIN1`: psycopg2 decodes results to the same strings,
/// and Airflow opens COPY files as text in Python's locale encoding
/// (UTF-8 here; psycopg2 decodes and re-encodes), so bulk_dump and
/// copy_expert write the same UTF-8 bytes as pghook's UTF8 session and
/// bulk_load reads the same UTF-8 file; a LATIN1 file fails on both. Where
/// they differ (README): `SHOW client_encoding`, and a character LATIN1
/// lacks, which fails the query through psycopg2 and comes back through pghook.
#[tokio::test]
async fn client_encoding_latin1_keeps_results_and_files() {
    let side = Side::new("airflow_latin1", "client_encoding=LATIN1");
    let dir = side._root.path();
    let rows = "(1, 'café'), (2, 'Straße'), (3, 'ÿ and a tab\t')";
    let load = "1\tcaf\u{e9}\n2\tStra\u{df}e\n";
    std::fs::write(dir.join("load.tsv"), load).unwrap();
    let latin1: Vec<u8> = load.chars().map(|c| u8::try_from(u32::from(c)).unwrap()).collect();
    std::fs::write(dir.join("latin1.tsv"), latin1).unwrap();
    let airflow = side.airflow(&format!(
        r#"
hook.run("create table t (id int, name text); insert into t values {rows}; create table l (id int, name text)")
hook.bulk_dump("t", "{dir}/airflow.tsv")
hook.copy_expert("COPY (select * from t order by id) TO STDOUT WITH CSV HEADER", "{dir}/airflow.csv")
hook.bulk_load("l", "{dir}/load.tsv")
out = [
    hook.get_records("select * from t order by id"),
    hook.get_records("select * from l order by id"),
    error(lambda: hook.bulk_load("l", "{dir}/latin1.tsv")),
    hook.get_first("show client_encoding"),
    pgcode(lambda: hook.get_records("select chr(8364)")),
]
hook.run("drop table t; drop table l")
out
"#,
        dir = dir.display()
    ));
    let hook = &side.hook;
    let setup =
        format!("create table t (id int, name text); insert into t values {rows}; create table l (id int, name text)");
    hook.run(setup.as_str(), None, RunOptions::default()).await.unwrap();
    hook.bulk_dump("t", "pghook.tsv").await.unwrap();
    hook.copy_expert("COPY (select * from t order by id) TO STDOUT WITH CSV HEADER", "pghook.csv").await.unwrap();
    hook.bulk_load("l", "load.tsv").await.unwrap();
    let latin1 = hook.bulk_load("l", "latin1.tsv").await.unwrap_err();
    assert_eq!(latin1.sqlstate().map(|s| s.code()), Some("22021"), "{latin1}");
    let show = hook.get_first("show client_encoding", None).await.unwrap();
    let euro = hook.get_first("select chr(8364)", None).await.unwrap();
    let Py::List(mut airflow) = airflow else { unreachable!() };
    // Where they differ: the session's encoding, and a character LATIN1 lacks.
    assert_eq!(airflow.pop(), Some(Py::Str("22P05".into())));
    assert_eq!(first(&euro), Py::List(vec![Py::Str("€".into())]));
    assert_eq!(airflow.pop(), Some(Py::List(vec![Py::Str("LATIN1".into())])));
    assert_eq!(first(&show), Py::List(vec![Py::Str("UTF8".into())]));
    // The same rows, and a LATIN1 file loads nothing on either side.
    assert_eq!(airflow.pop(), Some(Py::Str("QueryCanceled".into())));
    assert_eq!(Py::List(vec![table(&side, "t").await, table(&side, "l").await]), Py::List(airflow));
    for file in ["tsv", "csv"] {
        let ours = std::fs::read(dir.join(format!("pghook.{file}"))).unwrap();
        assert_eq!(ours, std::fs::read(dir.join(format!("airflow.{file}"))).unwrap(), "{file}");
        assert!(String::from_utf8(ours).unwrap().contains("café"), "{file}");
    }
}
