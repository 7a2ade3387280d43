//! Every type PostgreSQL ships, selected through the hook on a real server:
//! each value, NULL and an array of each comes back, and none panics the
//! host. Dates and times, and every type without a form of its own, come
//! back as the exact text the server prints for them.

use std::collections::BTreeMap;
use std::sync::Arc;

use pghook::Value;
use pghook_tests::Cluster;
use tokio::task::JoinSet;

/// Literals tried on every type; the server says which each type accepts.
const COMMON: &[&str] = &["", "0", "-1", "1", "{}", "t", "abc", "NaN", "infinity", "-infinity"];

/// More literals per `pg_type.typcategory`, with each category's extremes.
fn candidates(category: &str) -> Vec<&'static str> {
    let specific: &[&str] = match category {
        "B" => &["f", "yes", "off"],
        "N" => &[
            "42",
            "-32768",
            "32767",
            "-2147483648",
            "2147483647",
            "4294967295",
            "-9223372036854775808",
            "9223372036854775807",
            "1.5",
            "-0",
            "12.340",
            "1e308",
            "-1e-307",
            "3.4e38",
            "1e-130",
            "Infinity",
            "-Infinity",
            "-92233720368547758.08",
            "92233720368547758.07",
            "pg_class",
            "int4",
            "now",
            "=",
            "+(integer,integer)",
            "abs(integer)",
            "english",
            "simple",
            "postgres",
            "pg_catalog",
            "C",
        ],
        "D" => &[
            "epoch",
            "allballs",
            "2000-01-01",
            "1999-12-31 23:59:59.999999",
            "2024-02-29 13:14:15.5",
            "2024-02-29 13:14:15.5+05:30",
            "294276-12-31 23:59:59.999999",
            "294276-12-31 23:59:59.999999+00",
            "4713-01-01 BC",
            "4714-11-24 00:00:00 BC",
            "4714-11-24 00:00:00+00 BC",
            "0044-03-15 12:00:00.5 BC",
            "0001-01-01 BC",
            "0001-01-01",
            "10000-01-01",
            "300000-01-01",
            "5874897-12-31",
            "00:00:00",
            "24:00:00",
            "23:59:59.999999",
            "24:00:00+15:59",
            "00:00:00-15:59:59",
            "12:34:56.789+05:30",
        ],
        "T" => &[
            "1 day 02:00:00",
            "1 year 2 mons -3 days 04:05:06.7",
            "-1 year 1 day -00:00:00.000001",
            "-00:00:00.5",
            "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807",
            "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807",
        ],
        "S" => &["héllo", "a", "é", "YES", "NO", "x'); drop table t; --", "  padded  "],
        "U" => &[
            "null",
            "{\"a\": [1, 2.5, null]}",
            "\"text\"",
            "[]",
            "$.a",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "08:00:2b:01:02:03",
            "08:00:2b:01:02:03:04:05",
            "0/0",
            "FFFFFFFF/FFFFFFFF",
            "(0,1)",
            "10:20:10,14,15",
            "a & b",
            "a fat cat",
            "'a':1A",
            "\\x00ff",
            "<a>x</a>",
            "=/postgres",
            "postgres=arwdDxt/postgres",
            "4294967295",
            "18446744073709551615",
        ],
        "G" => &["(1,2)", "((0,0),(1,1))", "<(0,0),1>", "{1,2,3}", "[(0,0),(1,1)]", "((0,0),(1,1),(1,0))"],
        "I" => &[
            "10.0.0.1/8",
            "10.0.0.0/8",
            "255.255.255.255",
            "0.0.0.0/0",
            "2001:db8::1",
            "2001:db8::/32",
            "::ffff:1.2.3.4",
        ],
        "R" => &[
            "empty",
            "[1,2)",
            "(,)",
            "[-infinity,infinity]",
            "[2000-01-01,5874897-12-31]",
            "[4713-01-01 BC,294276-12-31 23:59:59.999999]",
            "{[1,2)}",
            "{(,)}",
            "{[1,2), [3,4)}",
            "{[4713-01-01 BC,infinity)}",
        ],
        "V" => &["101", "B0"],
        "E" => &["happy", "sad"],
        "C" => &["()", "(1,2000-01-01)", "(1,\"4713-01-01 BC\")"],
        "A" => &["1 2", "0"],
        _ => &["é", "a"],
    };
    COMMON.iter().chain(specific).copied().collect()
}

/// Types whose text the hook must reproduce exactly, by their base type.
const TEMPORAL: &[&str] = &[
    "date",
    "timestamp without time zone",
    "timestamp with time zone",
    "time without time zone",
    "time with time zone",
    "interval",
];

/// One selectable type: its name as SQL accepts it in a cast.
#[derive(Debug)]
struct SqlType {
    name: String,
    array: Option<String>,
    category: String,
    base: String,
}

/// Every type of pg_catalog, information_schema and the test's own schema
/// but pseudo-types, and arrays, which come as arrays of each type.
async fn every_type(client: &tokio_postgres::Client) -> Vec<SqlType> {
    let sql = "select t.oid::regtype::text, nullif(t.typarray, 0)::regtype::text, t.typcategory::text, \
                      coalesce(nullif(t.typbasetype, 0), t.oid)::regtype::text \
               from pg_type t join pg_namespace n on n.oid = t.typnamespace \
               where n.nspname in ('pg_catalog', 'information_schema', 'public') and t.typtype <> 'p' \
                 and not exists (select 1 from pg_type e where e.typarray = t.oid) \
               order by t.oid";
    client
        .query(sql, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|row| SqlType { name: row.get(0), array: row.get(1), category: row.get(2), base: row.get(3) })
        .collect()
}

/// The candidates `ty` accepts, each with the server's own text for it.
async fn accepted(client: &Arc<tokio_postgres::Client>, ty: &SqlType) -> Vec<(&'static str, String)> {
    let Ok(statement) = client.prepare(&format!("select ($1::text::{})::text", ty.name)).await else {
        return Vec::new();
    };
    // Pipelined on one connection: a rejected literal fails only its query.
    let mut queries = JoinSet::new();
    for (i, candidate) in candidates(&ty.category).into_iter().enumerate() {
        let (client, statement) = (client.clone(), statement.clone());
        queries.spawn(async move {
            let row = client.query_one(&statement, &[&candidate]).await.ok()?;
            Some((i, candidate, row.get::<_, String>(0)))
        });
    }
    let mut found: Vec<_> = queries.join_all().await.into_iter().flatten().collect();
    found.sort();
    found.into_iter().map(|(_, candidate, text)| (candidate, text)).collect()
}

fn literal(value: &str, ty: &str) -> String {
    format!("'{}'::text::{ty}", value.replace('\'', "''"))
}

/// One query: NULL, each accepted value, an array of them all with a NULL,
/// and an empty array.
fn query(ty: &SqlType, values: &[(&str, String)]) -> String {
    let mut columns = vec![format!("null::{} as \"null\"", ty.name)];
    columns.extend(values.iter().enumerate().map(|(i, (v, _))| format!("{} as v{i}", literal(v, &ty.name))));
    if let Some(array) = &ty.array {
        let items = std::iter::once("null".to_string()).chain(values.iter().map(|(v, _)| literal(v, &ty.name)));
        columns.push(format!("array[{}]::{array} as items", items.collect::<Vec<_>>().join(", ")));
        columns.push(format!("'{{}}'::{array} as empty"));
    }
    format!("select {}", columns.join(", "))
}

/// What is wrong with the hook's answer for `ty`, if anything. A type that
/// comes back as text (dates and times, and every type without a form of
/// its own, read in the text format) must be the server's own text, in
/// arrays too.
fn check(ty: &SqlType, values: &[(&str, String)], outcome: Result<pghook::Records, pghook::Error>) -> Option<String> {
    let records = match outcome {
        Err(e) => return Some(format!("{:?}: {e}", e.kind())),
        Ok(records) => records,
    };
    let rows = records.rows.to_values().unwrap();
    let [row] = rows.as_slice() else { return Some(format!("{} rows", rows.len())) };
    if row[0] != Value::Null {
        return Some(format!("NULL came back as {:?}", row[0]));
    }
    // A cast to text is the output function but for these: padding trimmed, a mask shown.
    let cast_is_output = !["character", "inet", "cidr"].contains(&ty.base.as_str());
    let as_text = cast_is_output && row[1..=values.len()].iter().all(|v| matches!(v, Value::Text(_)));
    if !(as_text || TEMPORAL.contains(&ty.base.as_str())) {
        return None;
    }
    // An interval's parts are checked against its text where it is decoded;
    // here its text against the server's.
    let texts: Vec<Value> = row[1..=values.len()]
        .iter()
        .map(|v| match v {
            Value::Interval(i) => Value::Text(i.text.clone()),
            other => other.clone(),
        })
        .collect();
    let expected: Vec<Value> = values.iter().map(|(_, text)| Value::Text(text.clone())).collect();
    if texts != expected {
        return Some(format!("got {:?}, the server prints {:?}", &row[1..=values.len()], expected));
    }
    if ty.array.is_some() {
        let items = std::iter::once(serde_json::Value::Null).chain(values.iter().map(|(_, t)| t.clone().into()));
        let expected = Value::Json(serde_json::Value::Array(items.collect()).to_string());
        let got = &row[values.len() + 1..];
        if got != [expected.clone(), Value::Json("[]".into())] {
            return Some(format!("arrays: got {got:?}, expected {expected:?} and []"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_type_comes_back() {
    let started = std::time::Instant::now();
    let pg = Cluster::plain();
    let db = pg.create_database("types_all");
    // Both sessions see the same zone, so a literal without one is the same instant.
    pg.psql(&format!("ALTER DATABASE {db} SET TimeZone = 'UTC'; ALTER DATABASE {db} SET DateStyle = 'ISO'"));
    let root = tempfile::tempdir().unwrap();
    // The Unix socket trusts the superuser: no password hashing per call.
    let uri = format!("postgres://postgres@{}:{}/{db}", pg.socket_dir.to_string_lossy().replace('/', "%2F"), pg.port);
    let hook = pghook_tests::tenant(root.path(), &[("c", &uri)]).hook(pghook::HookArgs::conn_id("c"));
    let client = Arc::new(hook.get_conn().await.unwrap());
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';
             CREATE TYPE mood AS ENUM ('happy', 'sad');
             CREATE DOMAIN far_date AS date;
             CREATE DOMAIN stamp AS timestamptz(2);
             CREATE TYPE pair AS (n int, d date);",
        )
        .await
        .unwrap();
    let types = every_type(&client).await;
    let count = types.len();
    assert!(count > 250, "only {count} types");
    let mut failures = BTreeMap::new();
    let mut calls = JoinSet::new();
    for ty in types {
        let values = accepted(&client, &ty).await;
        let sql = query(&ty, &values);
        let hook = hook.clone();
        // Its own task: a panic in the host fails this type, not the run.
        calls.spawn(async move {
            let outcome = tokio::spawn(async move { hook.get_records(&sql, None).await }).await;
            (ty, values, outcome)
        });
        while calls.len() >= 2 {
            let (ty, values, outcome) = calls.join_next().await.unwrap().unwrap();
            judge(ty, values, outcome, &mut failures);
        }
    }
    while let Some(joined) = calls.join_next().await {
        let (ty, values, outcome) = joined.unwrap();
        judge(ty, values, outcome, &mut failures);
    }
    eprintln!("{} types in {:?}", count, started.elapsed());
    assert!(failures.is_empty(), "{failures:#?}");
}

fn judge(
    ty: SqlType,
    values: Vec<(&str, String)>,
    outcome: Result<Result<pghook::Records, pghook::Error>, tokio::task::JoinError>,
    failures: &mut BTreeMap<String, String>,
) {
    let problem = match outcome {
        Err(panicked) => Some(format!("the host panicked: {panicked}")),
        Ok(outcome) => check(&ty, &values, outcome),
    };
    if let Some(problem) = problem {
        failures.insert(ty.name, problem);
    }
}
