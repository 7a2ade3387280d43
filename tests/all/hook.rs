//! The hook methods against a real PostgreSQL server.

use pghook::{ErrorKind, Fetch, HookArgs, InsertOptions, Param, Parameters, RowShape, RunOptions, Value};
use pghook_tests::{Cluster, tenant};

fn args(conn_id: &str) -> HookArgs {
    HookArgs::conn_id(conn_id)
}

/// A new database `name`, and a hook on it whose file root is a new directory.
fn fresh_database(pg: &Cluster, name: &str) -> (tempfile::TempDir, pghook::Hook) {
    let db = pg.create_database(name);
    let root = tempfile::tempdir().unwrap();
    let hook = tenant(root.path(), &[("c", &pg.uri_db(&db, ""))]).hook(args("c"));
    (root, hook)
}

#[tokio::test]
async fn test_connection_and_wrong_password() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let bad = format!("postgres://postgres:wrong@127.0.0.1:{}/postgres", pg.port);
    let t = tenant(root.path(), &[("good", &pg.uri("")), ("bad", &bad)]);
    assert_eq!(t.hook(args("good")).test_connection().await.unwrap(), "Connection successfully tested");
    let e = t.hook(args("bad")).test_connection().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("28P01"));
    assert!(e.message().contains("password authentication failed"), "{e}");
    assert!(!e.message().contains("wrong"), "the password leaked: {e}");
}

#[tokio::test]
async fn unix_socket_connection() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let dir = pg.socket_dir.to_string_lossy().replace('/', "%2F");
    let uri = format!("postgres://postgres@{dir}:{}/postgres", pg.port);
    let t = tenant(root.path(), &[("sock", &uri)]);
    let r = t.hook(args("sock")).get_first("select current_user", None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Text("postgres".into()));
    // No host at all: libpq's default local server, whose socket directory
    // the host's policy names.
    let no_host = format!(r#"{{"login": "postgres", "port": {}, "schema": "postgres"}}"#, pg.port);
    let policy = pghook::Policy::new(root.path())
        .with_default_socket_dir(&pg.socket_dir)
        .allow_socket_dir(&pg.socket_dir)
        .with_connections(pghook::MapConnections::new().with("local", no_host));
    let r = pghook_tests::runtime().tenant(policy).hook(args("local")).get_first("select 1", None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Int(1));
}

#[tokio::test]
async fn run_statements_parameters_and_transactions() {
    let pg = Cluster::plain();
    let (_root, hook) = fresh_database(pg, "hook_run");
    let split = RunOptions { split_statements: Some(true), ..Default::default() };
    hook.run(&["create table t (id int primary key, name text); insert into t values (1, 'one')"], None, split)
        .await
        .unwrap();
    // Parameters are quoted as psycopg2 would: injection stays data.
    let evil = Value::Text("x'); drop table t; --".into());
    hook.run(
        &["insert into t values (%s, %s)"],
        Some(Parameters::values([Value::Int(2), evil.clone()])),
        RunOptions::default(),
    )
    .await
    .unwrap();
    let named = Parameters::Named(vec![("id".into(), Value::Int(2).into())]);
    let r = hook.get_first("select name from t where id = %(id)s", Some(named)).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![evil]]);
    // A failing statement rolls the whole run back.
    let e = hook
        .run(&["insert into t values (3, 'three')", "insert into t values (1, 'dup')"], None, RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!((e.kind(), e.sqlstate().map(|s| s.code())), (ErrorKind::Database, Some("23505")));
    let count = hook.get_first("select count(*) from t", None).await.unwrap();
    assert_eq!(count.rows.to_values().unwrap()[0][0], Value::Int(2));
    // With autocommit the first statement stays.
    let _ = hook
        .run(
            &["insert into t values (3, 'three')", "insert into t values (1, 'dup')"],
            None,
            RunOptions { autocommit: Some(true), ..Default::default() },
        )
        .await
        .unwrap_err();
    let count = hook.get_first("select count(*) from t", None).await.unwrap();
    assert_eq!(count.rows.to_values().unwrap()[0][0], Value::Int(3));
    // Results of every statement, fetched.
    let all = hook
        .run(
            &["select 1 as a", "select 2 as b union all select 3"],
            None,
            RunOptions { return_last: Some(false), fetch: Some(Fetch::All), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].rows.to_values().unwrap(), vec![vec![Value::Int(2)], vec![Value::Int(3)]]);
    assert_eq!(all[1].columns[0].name, "b");
    // What each fetch keeps of a result the host holds: the rows asked
    // for, the columns and the server's row count whatever it keeps.
    let five = "select generate_series(1, 5) as n";
    for (fetch, kept) in [(Fetch::None, 0), (Fetch::One, 1), (Fetch::All, 5)] {
        let r = hook.run(five, None, RunOptions { fetch: Some(fetch), ..Default::default() }).await.unwrap();
        assert_eq!((r[0].rows.len(), r[0].row_count, r[0].columns[0].name.as_str()), (kept, 5, "n"), "{fetch:?}");
    }
    assert_eq!(hook.get_first(five, None).await.unwrap().rows.to_values().unwrap(), vec![vec![Value::Int(1)]]);
    let e = hook.run(&[] as &[&str], None, RunOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    // Empty parameters are none, as in the hook: `%` is not special.
    let r = hook.get_records("select '100%' as p", Some(Parameters::Positional(vec![]))).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Text("100%".into())]]);
    let e = hook.get_records("select %s", Some(Parameters::values([Value::Int(1), Value::Int(2)]))).await;
    assert!(e.unwrap_err().message().contains("placeholders"));
}

#[tokio::test]
async fn several_statements_in_one_string_run_whole() {
    let pg = Cluster::plain();
    let (_root, hook) = fresh_database(pg, "hook_several");
    // As psycopg2 sends such a string: every statement runs, the last one's rows come back.
    let r = hook
        .get_records("create table m (a int); insert into m values (1), (2); select a from m order by a", None)
        .await
        .unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Int(1)], vec![Value::Int(2)]]);
    assert_eq!(r.columns[0].name, "a");
    let three = Parameters::values([Value::Int(3)]);
    let r = hook.get_first("insert into m values (%s); select count(*) from m", Some(three)).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Int(3)]]);
    let count = || async {
        hook.get_first("select count(*) from m", None).await.unwrap().rows.to_values().unwrap()[0][0].clone()
    };
    // With autocommit such a string is still one transaction, as the server runs it.
    let autocommit = RunOptions { autocommit: Some(true), ..Default::default() };
    let e = hook.run(&["insert into m values (10); insert into m values ('x')"], None, autocommit).await;
    assert_eq!(e.unwrap_err().sqlstate().map(|s| s.code()), Some("22P02"));
    assert_eq!(count().await, Value::Int(3));
    hook.run(&["insert into m values (20); insert into m values (21)"], None, autocommit).await.unwrap();
    assert_eq!(count().await, Value::Int(5));
    // Without autocommit, one transaction around every string.
    let e = hook.run(&["insert into m values (30)", "insert into m values (31); select 1/0"], None, Default::default());
    assert_eq!(e.await.unwrap_err().sqlstate().map(|s| s.code()), Some("22012"));
    assert_eq!(count().await, Value::Int(5));
    // A semicolon inside a quoted body does not split.
    hook.run(&["create function f() returns int language sql as $$ select 7; $$"], None, autocommit).await.unwrap();
    let r = hook.get_first("select f(); -- a trailing comment", None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Int(7)]]);
}

#[tokio::test]
async fn records_decode_types_and_shapes() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let dict = pg.uri("cursor=realdictcursor");
    let t = tenant(root.path(), &[("tuple", &pg.uri("")), ("dict", &dict)]);
    let sql = "select true as b, 42::int2 as s, 7::int8 as l, 1.5::float8 as f, 12.340::numeric as n, \
               'héllo'::text as t, '\\x00ff'::bytea as by, '{\"a\": [1, 2]}'::jsonb as j, \
               '2024-02-29 13:14:15.5'::timestamp as ts, '2024-02-29'::date as d, \
               'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as u, '1 day 02:00:00'::interval as i, \
               '10.0.0.1/8'::inet as ip, array[1, null, 3] as arr, null::text as nothing";
    let r = t.hook(args("tuple")).get_records(sql, None).await.unwrap();
    assert_eq!(r.shape, RowShape::Tuple);
    let row = &r.rows.to_values().unwrap()[0];
    assert_eq!(
        row,
        &vec![
            Value::Boolean(true),
            Value::Int(42),
            Value::Int(7),
            Value::Float(1.5),
            Value::Numeric("12.340".into()),
            Value::Text("héllo".into()),
            Value::Bytes(vec![0, 255]),
            Value::Json("{\"a\": [1, 2]}".into()),
            Value::Text("2024-02-29 13:14:15.5".into()),
            Value::Text("2024-02-29".into()),
            Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Value::Interval(pghook::Interval {
                months: 0,
                days: 1,
                microseconds: 7_200_000_000,
                text: "1 day 02:00:00".into()
            }),
            Value::Text("10.0.0.1/8".into()),
            Value::Json("[1,null,3]".into()),
            Value::Null,
        ]
    );
    assert_eq!(r.columns[4].type_name, "numeric");
    let r = t.hook(args("dict")).get_records("select 1 as one", None).await.unwrap();
    assert_eq!(r.shape, RowShape::RealDict);
    // A type without a form of its own comes back as the server prints it.
    let r = t.hook(args("tuple")).get_records("select point(1, 2) as p", None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Text("(1,2)".into())]]);
    let none = t.hook(args("tuple")).get_first("select 1 where false", None).await.unwrap();
    assert!(none.rows.is_empty());
}

#[tokio::test]
async fn values_as_the_session_prints_them() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let kolkata = pg.uri("options=-c%20TimeZone%3DAsia%2FKolkata%20-c%20lc_monetary%3DC");
    let t = tenant(root.path(), &[("c", &kolkata)]);
    // timestamptz in the session's time zone with its offset, float4 at its
    // own precision, money as printed: what psycopg2 reads, in arrays too.
    let sql = "select '2024-01-01 00:00:00+00'::timestamptz as at, 0.1::float4 as f4, 'NaN'::float4 as nan,                12.5::money as m, array['2024-01-01 00:00:00+00'::timestamptz] as ats, array[0.1::float4] as f4s";
    let r = t.hook(args("c")).get_records(sql, None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Text("2024-01-01 05:30:00+05:30".into()));
    assert_eq!(r.rows.to_values().unwrap()[0][1], Value::Float(0.1));
    assert!(matches!(r.rows.to_values().unwrap()[0][2], Value::Float(f) if f.is_nan()));
    assert_eq!(r.rows.to_values().unwrap()[0][3], Value::Text("$12.50".into()));
    assert_eq!(r.rows.to_values().unwrap()[0][4], Value::Json("[\"2024-01-01 05:30:00+05:30\"]".into()));
    assert_eq!(r.rows.to_values().unwrap()[0][5], Value::Json("[0.1]".into()));
    // json in arrays keeps every digit; NaN and the infinities read alike for float and numeric.
    let sql = concat!(
        r#"select array['{"n": 123456789012345678901234567890}'::jsonb] as js, "#,
        "array['NaN'::float8, 'Infinity'::float8, '-Infinity'::float8] as fs, ",
        "array['NaN'::numeric, 'Infinity'::numeric] as ns"
    );
    let r = t.hook(args("c")).get_records(sql, None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Json(r#"[{"n": 123456789012345678901234567890}]"#.into()));
    assert_eq!(r.rows.to_values().unwrap()[0][1], Value::Json(r#"["NaN","Infinity","-Infinity"]"#.into()));
    assert_eq!(r.rows.to_values().unwrap()[0][2], Value::Json(r#"["NaN","Infinity"]"#.into()));
}

#[tokio::test]
async fn bulk_load_and_dump_round_trip() {
    let pg = Cluster::plain();
    let (root, hook) = fresh_database(pg, "hook_bulk");
    hook.run(
        &["create schema \"Sales\"; create table \"Sales\".\"Order Lines\" (id int, note text)"],
        None,
        RunOptions { split_statements: Some(true), ..Default::default() },
    )
    .await
    .unwrap();
    let input: String = (0..5000).map(|i| format!("{i}\tnote {i}\\twith tab\n")).collect();
    std::fs::write(root.path().join("in.tsv"), &input).unwrap();
    let table = "\"Sales\".\"Order Lines\" (id, note)";
    assert_eq!(hook.bulk_load(table, "in.tsv").await.unwrap(), 5000);
    assert_eq!(
        hook.bulk_dump("\"Sales\".\"Order Lines\"", "out/../out.tsv").await.unwrap_err().kind(),
        ErrorKind::Denied
    );
    assert_eq!(hook.bulk_dump("\"Sales\".\"Order Lines\"", "out.tsv").await.unwrap(), 5000);
    assert_eq!(std::fs::read_to_string(root.path().join("out.tsv")).unwrap(), input);
    // Unquoted names fold to lower case, as PostgreSQL does.
    let e = hook.bulk_dump("Sales.Order", "x.tsv").await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("3F000"), "{e}");
    let e = hook.bulk_load("t; drop table x", "in.tsv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().starts_with("invalid table name"), "{e}");
}

#[tokio::test]
async fn failures_leave_no_half_files_and_no_rows() {
    let pg = Cluster::plain();
    let (root, hook) = fresh_database(pg, "hook_atomic");
    hook.run(&["create table n (id int not null)"], None, RunOptions::default()).await.unwrap();
    // Row 3000 is bad: the whole load is refused.
    let input: String = (0..5000).map(|i| if i == 3000 { "oops\n".to_string() } else { format!("{i}\n") }).collect();
    std::fs::write(root.path().join("bad.tsv"), input).unwrap();
    let e = hook.bulk_load("n", "bad.tsv").await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("22P02"), "{e}");
    assert_eq!(
        hook.get_first("select count(*) from n", None).await.unwrap().rows.to_values().unwrap()[0][0],
        Value::Int(0)
    );
    // A dump that fails midway (division by zero at row 4000) leaves no file,
    // and an existing file keeps its old content.
    std::fs::write(root.path().join("keep.tsv"), "old\n").unwrap();
    let sql = "COPY (select 1 / (4000 - g) from generate_series(1, 5000) g) TO STDOUT";
    let e = hook.copy_expert(sql, "keep.tsv").await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("22012"), "{e}");
    assert_eq!(std::fs::read_to_string(root.path().join("keep.tsv")).unwrap(), "old\n");
    let e = hook.copy_expert(sql, "new.tsv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Database);
    let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "left behind: {names:?}");
}

#[tokio::test]
async fn copy_expert_directions_and_airflow_quirk() {
    let pg = Cluster::plain();
    let (root, hook) = fresh_database(pg, "hook_copy");
    hook.run(&["create table c (a int, b text)"], None, RunOptions::default()).await.unwrap();
    std::fs::write(root.path().join("in.csv"), "1,\"x, y\"\n2,z\n").unwrap();
    let loaded = hook.copy_expert("COPY c FROM STDIN WITH (FORMAT csv)", "in.csv").await.unwrap();
    assert!(loaded.loaded);
    assert_eq!(loaded.rows, 2);
    let dumped =
        hook.copy_expert("COPY (select * from c order by a) TO STDOUT WITH CSV HEADER", "out.csv").await.unwrap();
    assert!(!dumped.loaded);
    assert_eq!(std::fs::read_to_string(root.path().join("out.csv")).unwrap(), "a,b\n1,\"x, y\"\n2,z\n");
    // COPY FROM a missing file: Airflow creates it empty and loads nothing.
    let missing = hook.copy_expert("COPY c FROM STDIN", "missing.tsv").await.unwrap();
    assert_eq!(missing.rows, 0);
    assert_eq!(std::fs::metadata(root.path().join("missing.tsv")).unwrap().len(), 0);
    // Server-side files and programs are refused before reaching the server.
    for sql in ["COPY c FROM '/etc/passwd'", "COPY c TO PROGRAM 'true'", "SELECT 1"] {
        let e = hook.copy_expert(sql, "x").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{sql}");
    }
    let e = hook.copy_expert("COPY c FROM STDIN", "/etc/passwd").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
}

#[tokio::test]
async fn get_uri_get_conn_and_database_override() {
    let pg = Cluster::plain();
    let db = pg.create_database("hook_other");
    let root = tempfile::tempdir().unwrap();
    let uri = pg.uri("sqlalchemy_query=x");
    let json = format!(
        r#"{{"conn_type": "postgres", "host": "127.0.0.1", "port": {}, "login": "postgres", "password": "s3cret pw/:@", "schema": "postgres", "extra": {{"sqlalchemy_query": {{"sslmode": "disable"}}}}}}"#,
        pg.port
    );
    let t = tenant(root.path(), &[("c", &uri), ("j", &json)]);
    let e = t.hook(args("c")).get_uri().await.unwrap_err();
    assert!(e.message().contains("sqlalchemy_query"), "{e}");
    assert_eq!(
        t.hook(args("j")).get_uri().await.unwrap(),
        format!("postgresql://postgres:s3cret pw%2F%3A%40@127.0.0.1:{}/postgres?sslmode=disable", pg.port)
    );
    let mut other = args("j");
    other.database = Some(db.clone());
    let client = t.hook(other).get_conn().await.unwrap();
    let row = client.query_one("select current_database()", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), db);
}

#[tokio::test]
async fn options_and_notices() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let t = tenant(root.path(), &[("c", &pg.uri("application_name=pghook-test"))]);
    let mut a = args("c");
    a.options = Some("-c search_path=pg_catalog".into());
    a.enable_log_db_messages = true;
    let r = t
        .hook(a)
        .get_first("select current_setting('search_path'), current_setting('application_name')", None)
        .await
        .unwrap();
    assert_eq!(
        r.rows.to_values().unwrap()[0],
        vec![Value::Text("pg_catalog".into()), Value::Text("pghook-test".into())]
    );
}

#[derive(Default, Clone)]
struct Recorded(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl pghook::Progress for Recorded {
    fn start(&self, phase: &str, total: Option<u64>) {
        self.0.lock().unwrap().push(format!("start {phase} {total:?}"));
    }
    fn advance(&self, bytes: u64) {
        self.0.lock().unwrap().push(format!("advance {bytes}"));
    }
    fn finish(&self) {
        self.0.lock().unwrap().push("finish".into());
    }
}

#[tokio::test]
async fn bulk_operations_report_progress() {
    let pg = Cluster::plain();
    let (root, hook) = fresh_database(pg, "hook_progress");
    let recorded = Recorded::default();
    let hook = hook.with_progress(recorded.clone());
    hook.run(&["create table p (line text)"], None, RunOptions::default()).await.unwrap();
    let input = "x\n".repeat(400_000);
    std::fs::write(root.path().join("p.tsv"), &input).unwrap();
    hook.bulk_load("p", "p.tsv").await.unwrap();
    hook.bulk_dump("p", "out.tsv").await.unwrap();
    let events = recorded.0.lock().unwrap().clone();
    let sum = |from: usize, to: usize| -> u64 {
        events[from..to].iter().filter_map(|e| e.strip_prefix("advance ")).map(|n| n.parse::<u64>().unwrap()).sum()
    };
    let load_start = events.iter().position(|e| e == "start loading Some(800000)").expect("load started");
    let dump_start = events.iter().position(|e| e == "start dumping None").expect("dump started");
    assert!(events.iter().filter(|e| e.starts_with("advance")).count() > 2, "{events:?}");
    assert_eq!(sum(load_start, dump_start), 800_000);
    assert_eq!(sum(dump_start, events.len()), 800_000);
    assert_eq!(events.last().unwrap(), "finish");
}

#[tokio::test]
async fn connect_timeout_bounds_a_silent_server() {
    // The kernel accepts the TCP connection; nobody ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let root = tempfile::tempdir().unwrap();
    for mode in ["disable", "prefer"] {
        let uri = format!("postgres://u:p@127.0.0.1:{port}/db?connect_timeout=2&sslmode={mode}");
        let t = tenant(root.path(), &[("c", &uri)]);
        let started = std::time::Instant::now();
        let e = t.hook(args("c")).test_connection().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect, "{mode}: {e}");
        assert!(e.message().contains("timeout expired"), "{mode}: {e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{mode}");
    }
}

#[tokio::test]
async fn columns_without_a_form_of_their_own_come_back_as_the_server_prints_them() {
    let pg = Cluster::plain();
    let (_root, hook) = fresh_database(pg, "hook_text_columns");
    // A type the binary decoder does not know sends the statement to the
    // text format; the other columns keep their own forms.
    let r = hook
        .get_records(
            "select pg_typeof(1) as t, 7 as n, 1.5::float4 as f, '\\x00ff'::bytea as b, '[1,2)'::int4range as r, \
             array[1, null]::int[] as a, row(1, 'x y') as rt",
            None,
        )
        .await
        .unwrap();
    let types: Vec<_> = r.columns.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(types, ["regtype", "int4", "float4", "bytea", "int4range", "_int4", "record"]);
    assert_eq!(
        r.rows.to_values().unwrap()[0],
        vec![
            Value::Text("integer".into()),
            Value::Int(7),
            Value::Float(1.5),
            Value::Bytes(vec![0, 255]),
            Value::Text("[1,2)".into()),
            Value::Json("[1,null]".into()),
            Value::Text("(1,\"x y\")".into()),
        ]
    );
    // The catalog, whole: xid, aclitem[], pg_node_tree and more.
    let classes = hook.get_records("select * from pg_class where relname = 'pg_class'", None).await.unwrap();
    assert_eq!(classes.rows.len(), 1);
    // Rows affected and RETURNING through the text format, in a transaction like any other.
    hook.run(&["create table x (a int)"], None, RunOptions::default()).await.unwrap();
    let r = hook.get_records("insert into x values (1), (2) returning xmin, a", None).await.unwrap();
    assert_eq!(r.rows.len(), 2);
    assert_eq!(r.rows.to_values().unwrap()[1][1], Value::Int(2));
    let count = hook.get_first("select count(*) from x", None).await.unwrap();
    assert_eq!(count.rows.to_values().unwrap()[0][0], Value::Int(2));
}

#[tokio::test]
async fn typed_parameters_as_psycopg2_adapts_them() {
    let pg = Cluster::plain();
    let (_root, hook) = fresh_database(pg, "hook_typed_params");
    hook.run(
        &["create table p (id int, at timestamptz)", "insert into p values (1, now()), (2, now()), (3, now())"],
        None,
        RunOptions::default(),
    )
    .await
    .unwrap();
    let params = Parameters::Positional(vec![
        Param::Date("2024-02-29".into()),
        Param::Interval("P1DT2H".into()),
        Param::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        Param::Timestamptz("2024-01-01 00:00:00+05:30".into()),
        Param::Value(Value::Bytes(vec![0, 92, 39, 255])),
    ]);
    let sql = "select %s + 1, %s::text, %s::text, %s at time zone 'UTC', %s";
    let r = hook.get_first(sql, Some(params)).await.unwrap();
    assert_eq!(
        r.rows.to_values().unwrap()[0],
        vec![
            Value::Text("2024-03-01".into()),
            Value::Text("1 day 02:00:00".into()),
            Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Value::Text("2023-12-31 18:30:00".into()),
            Value::Bytes(vec![0, 92, 39, 255]),
        ]
    );
    // An interval value goes back as its parts, whatever its text says.
    let back = pghook::Interval { months: 14, days: -3, microseconds: 1, text: "ignored".into() };
    let params = Parameters::values([Value::Interval(back)]);
    let r = hook.get_first("select %s::text", Some(params)).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0][0], Value::Text("1 year 2 mons -3 days +00:00:00.000001".into()));
    // A list for `= ANY(%s)`, a tuple for `IN %s`, an empty list.
    let ids = Parameters::Positional(vec![Param::Array(vec![Value::Int(1).into(), Value::Int(3).into()])]);
    let r = hook.get_records("select id from p where id = ANY(%s) order by id", Some(ids)).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Int(1)], vec![Value::Int(3)]]);
    let ids = Parameters::Named(vec![("ids".into(), Param::Tuple(vec![Value::Int(2).into(), Value::Int(3).into()]))]);
    let r = hook.get_records("select id from p where id in %(ids)s order by id", Some(ids)).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap(), vec![vec![Value::Int(2)], vec![Value::Int(3)]]);
    let none = Parameters::Positional(vec![Param::Array(vec![])]);
    let r = hook.get_records("select id from p where id = ANY(%s::int[])", Some(none)).await.unwrap();
    assert!(r.rows.is_empty());
    // A malformed typed value is the server's clear refusal, never SQL.
    let bad = Parameters::Positional(vec![Param::Date("2024-02-30'; drop table p; --".into())]);
    let e = hook.get_first("select %s", Some(bad)).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("22007"), "{e}");
    assert_eq!(
        hook.get_first("select count(*) from p", None).await.unwrap().rows.to_values().unwrap()[0][0],
        Value::Int(3)
    );
}

#[tokio::test]
async fn get_table_primary_key_in_key_order() {
    let pg = Cluster::plain();
    let (_root, hook) = fresh_database(pg, "hook_primary_key");
    let ddl = "create table k (b int, a text, c int, primary key (c, a)); create table loose (x int); \
               create schema \"Other\"; create table \"Other\".\"K\" (id int primary key)";
    hook.run(&[ddl], None, RunOptions::default()).await.unwrap();
    let key = hook.get_table_primary_key("k", None).await.unwrap();
    assert_eq!(key, Some(vec!["c".to_string(), "a".to_string()]));
    assert_eq!(hook.get_table_primary_key("loose", None).await.unwrap(), None);
    assert_eq!(hook.get_table_primary_key("K", Some("Other")).await.unwrap(), Some(vec!["id".to_string()]));
    // Names are data, never SQL.
    assert_eq!(hook.get_table_primary_key("k' or '1'='1", None).await.unwrap(), None);
}

#[tokio::test]
async fn insert_rows_as_airflow_commits_them() {
    let pg = Cluster::plain();
    let (_root, hook) = fresh_database(pg, "hook_insert_rows");
    let ddl = "create table r (id int primary key, \"Name\" text, day date)";
    hook.run(&[ddl], None, RunOptions::default()).await.unwrap();
    let row = |id: i64, name: &str| {
        vec![Param::Value(Value::Int(id)), Param::Value(Value::Text(name.into())), Param::Date("2024-02-29".into())]
    };
    let fields = Some(vec!["id".to_string(), "\"Name\"".to_string(), "day".to_string()]);
    let every_two = InsertOptions { target_fields: fields.clone(), commit_every: Some(2), ..Default::default() };
    // A statement per row, a transaction per two: the batch with the duplicate rolls back, the one before stays.
    let rows = vec![row(1, "a"), row(2, "b"), row(3, "c"), row(1, "dup")];
    let e = hook.insert_rows("r", rows, every_two.clone()).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("23505"), "{e}");
    let ids =
        || async { hook.get_records("select id from r order by id", None).await.unwrap().rows.to_values().unwrap() };
    assert_eq!(ids().await, vec![vec![Value::Int(1)], vec![Value::Int(2)]]);
    // A row that cannot be rendered (a NUL) after one the server refuses:
    // the server's error is the one reported, as psycopg2 meets them in order.
    let three = InsertOptions { commit_every: Some(3), ..every_two.clone() };
    let e = hook.insert_rows("r", vec![row(5, "e"), row(1, "dup"), row(6, "nul\0")], three).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("23505"), "{e}");
    assert_eq!(ids().await.len(), 2);
    // commit_every=0: one transaction for every row, sent in parts of
    // 1,000 statements; a duplicate in the third part rolls all of it back,
    // and without one all of it stays.
    let all = InsertOptions { commit_every: Some(0), ..every_two.clone() };
    let mut many: Vec<_> = (100..2600).map(|i| row(i, "m")).collect();
    many[2100] = row(150, "dup");
    let e = hook.insert_rows("r", many, all.clone()).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("23505"), "{e}");
    assert_eq!(ids().await.len(), 2);
    assert_eq!(hook.insert_rows("r", (100..2600).map(|i| row(i, "m")).collect(), all).await.unwrap(), 2500);
    assert_eq!(ids().await.len(), 2502);
    hook.run(&["delete from r where id >= 100"], None, RunOptions::default()).await.unwrap();
    // The fast path: one INSERT per batch.
    let fast = InsertOptions { fast: true, ..every_two.clone() };
    let inserted = hook.insert_rows("public.r", (3..=7).map(|i| row(i, "f")).collect(), fast).await.unwrap();
    assert_eq!(inserted, 5);
    assert_eq!(ids().await.len(), 7);
    // replace upserts on the primary key, found when no replace_index is given.
    let upsert = InsertOptions { replace: true, ..every_two.clone() };
    hook.insert_rows("r", vec![row(1, "new"), row(8, "h")], upsert).await.unwrap();
    let r = hook.get_records(r#"select "Name", day from r where id in (1, 8) order by id"#, None).await.unwrap();
    assert_eq!(r.rows.to_values().unwrap()[0], vec![Value::Text("new".into()), Value::Text("2024-02-29".into())]);
    assert_eq!(r.rows.len(), 2);
    // ...or on replace_index; key-only fields do nothing on conflict.
    let key_only = InsertOptions {
        target_fields: Some(vec!["id".into()]),
        replace: true,
        replace_index: Some(vec!["id".into()]),
        fast: true,
        ..Default::default()
    };
    let n = hook.insert_rows("r", vec![vec![Param::Value(Value::Int(1))], vec![Param::Value(Value::Int(9))]], key_only);
    assert_eq!(n.await.unwrap(), 2);
    assert_eq!(ids().await.len(), 9);
    // Names and values are never SQL.
    let evil =
        InsertOptions { target_fields: Some(vec!["id) values (99); drop table r; --".into()]), ..Default::default() };
    let e = hook.insert_rows("r", vec![vec![Param::Value(Value::Int(10))]], evil).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let no_key = hook.run(&["create table loose (x int)"], None, RunOptions::default()).await;
    no_key.unwrap();
    let upsert = InsertOptions { target_fields: Some(vec!["x".into()]), replace: true, ..Default::default() };
    let e = hook.insert_rows("loose", vec![vec![Param::Value(Value::Int(1))]], upsert).await.unwrap_err();
    assert!(e.message().contains("no primary key"), "{e}");
}

#[tokio::test]
async fn a_result_that_cannot_be_read_fails_before_commit() {
    let pg = Cluster::plain();
    let db = pg.create_database("hook_unreadable");
    let root = tempfile::tempdir().unwrap();
    let escaped = pg.uri_db(&db, "options=-c%20bytea_output%3Descape");
    let hook = tenant(root.path(), &[("c", &pg.uri_db(&db, ""))]).hook(args("c"));
    let autocommit = RunOptions { autocommit: Some(true), ..Default::default() };
    hook.run(&["create table u (b bytea)"], None, autocommit).await.unwrap();
    // bytea in the escape format, in a statement whose timestamptz column
    // makes the server send text: the rows are read as they arrive, so the
    // statement fails and its insert never commits.
    let escaped_hook = tenant(root.path(), &[("escaped", &escaped)]).hook(args("escaped"));
    let e = escaped_hook.get_records("insert into u values ('\\x00ff') returning b, now()", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Database, "{e}");
    assert!(e.message().contains("column \"b\" (bytea): bytea in escape format: set bytea_output to hex"), "{e}");
    let count = hook.get_first("select count(*) from u", None).await.unwrap();
    assert_eq!(count.rows.to_values().unwrap(), vec![vec![Value::Int(0)]]);
}
