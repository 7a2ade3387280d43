//! pghook's Python package as a drop-in: the same Python snippets run with
//! Airflow's own `PostgresHook` (psycopg2) and with `pghook.PostgresHook`,
//! on one throwaway database each, and their Python results must be equal,
//! value by value and type by type (issue #9).

use std::process::Command;
use std::time::Instant;

use pghook_tests::Cluster;
use pghook_tests::airflow::{Compared, python, python_hook};

mod frames;

/// Helpers every snippet may use: Airflow's handlers (or pghook's own), a
/// table name of the hook's own, and the SQLSTATE of a failing call.
const PRELUDE: &str = r#"
import datetime, decimal, uuid
if type(hook).__module__.startswith("pghook"):
    from pghook import fetch_all_handler, fetch_one_handler
else:
    from airflow.providers.common.sql.hooks.handlers import fetch_all_handler, fetch_one_handler
side = "pghook" if type(hook).__module__.startswith("pghook") else "airflow"
def sqlstate(call):
    try:
        call()
    except Exception as e:
        return getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
"#;

/// Run `snippet` with both hooks on a new database `name` (the connection
/// given `extras`) and assert both give the same Python value.
fn assert_drop_in(name: &str, extras: &str, snippet: &str) {
    let pg = Cluster::plain();
    let db = pg.create_database(name);
    let uri = pg.uri_db(&db, extras);
    let snippet = format!("{PRELUDE}{snippet}");
    let airflow = python_hook(Compared::Airflow, &uri, &snippet);
    let pghook = python_hook(Compared::Pghook, &uri, &snippet);
    assert_eq!(pghook, airflow, "pghook's PostgresHook and Airflow's differ on:\n{snippet}");
}

#[test]
fn values_of_every_common_type() {
    assert_drop_in(
        "py_values",
        "options=-c%20TimeZone%3DAsia%2FKolkata",
        r#"
hook.get_records(r"""select 1::int2, 9223372036854775807::int8, 0.1::float8, 'NaN'::float8, 1.50::numeric,
    123456789012345678901234567890.000::numeric, 'héllo'::text, 'a'::char(3), '\x00ff'::bytea, true, null::int,
    '{"a": [1, 2.5, null]}'::jsonb, '2024-02-29'::date, 'infinity'::date, '13:14:15.5'::time,
    '12:34:56.789+05:30'::timetz, '2024-02-29 13:14:15.5'::timestamp, '2024-06-01 12:00:00.123456+02'::timestamptz,
    '1 year 2 mons -3 days 04:05:06.7'::interval, '-00:00:00.5'::interval,
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, array[1, null, 3], array['a', 'b'],
    array['2024-01-01'::date], array[1.5, 2]::numeric[], '{{1,2},{3,4}}'::int[], '24:00:00'::time""")
"#,
    );
}

#[test]
fn parameters_as_psycopg2_adapts_them() {
    assert_drop_in(
        "py_params",
        "",
        r#"
values = [None, True, 42, 2**70, 1.5, decimal.Decimal("1.10"), "it's", b"\x00\xff", datetime.date(2024, 2, 29),
    datetime.datetime(2024, 2, 29, 13, 14, 15, 500000),
    datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))),
    datetime.time(13, 14, 15), datetime.timedelta(days=1, seconds=7200, microseconds=5)]
[hook.get_first("select " + ", ".join(["%s"] * len(values)), values),
 hook.get_first("select %(a)s, %(b)s, 100 %% 7", {"a": "x", "b": 2}),
 hook.get_records("select x from unnest(array[1, 2, 3]) x where x = any(%s) order by x", [[1, 3]]),
 hook.get_records("select x from unnest(array[1, 2, 3]) x where x in %s order by x", [(2, 3)]),
 hook.get_records("select '%s'", []),
 hook.get_first("select 1 where false")]
"#,
    );
}

#[test]
fn row_shapes_of_the_cursor_extra() {
    for cursor in ["dictcursor", "realdictcursor", "namedtuplecursor"] {
        assert_drop_in(
            &format!("py_{cursor}"),
            &format!("cursor={cursor}"),
            r#"
[hook.get_records("select 1 as a, 'x' as b, 2 as c"), hook.get_first("select 1 as one"),
 hook.run("select 1 as a", handler=fetch_all_handler)]
"#,
        );
    }
}

#[test]
fn run_with_handlers_lists_and_transactions() {
    assert_drop_in(
        "py_run",
        "",
        r#"
t = "t_" + side
hook.run(f"create table {t} (id int primary key, name text)")
[hook.run(f"insert into {t} values (1, 'a'); insert into {t} values (2, 'b'); select * from {t} order by id", handler=fetch_all_handler),
 hook.run([f"select count(*) from {t}", "select 2"], handler=fetch_one_handler),
 hook.run(f"select 1; select 2", handler=fetch_all_handler, split_statements=True, return_last=False),
 hook.run(f"update {t} set name = 'z'"),
 sqlstate(lambda: hook.run([f"insert into {t} values (3, 'c')", "select 1/0"])),
 hook.get_records(f"select * from {t} order by id"),
 sqlstate(lambda: hook.get_records("select * from missing_table")),
 hook.test_connection()]
"#,
    );
}

#[test]
fn insert_rows_and_primary_keys() {
    assert_drop_in(
        "py_insert",
        "",
        r#"
t = "ins_" + side
hook.run(f"create table {t} (id int primary key, name text, at date)")
hook.insert_rows(t, [(1, "a", datetime.date(2024, 1, 1)), (2, None, None)], target_fields=["id", "name", "at"], commit_every=1)
hook.insert_rows(t, [(2, "b", datetime.date(2024, 1, 2))], target_fields=["id", "name", "at"], replace=True, replace_index="id")
hook.insert_rows(t, [(3, "c", None), (4, "d", None)], target_fields=["id", "name", "at"], fast_executemany=True)
[hook.get_records(f"select * from {t} order by id"), hook.get_table_primary_key(t)]
"#,
    );
}

#[test]
fn files_through_copy_bulk_load_and_bulk_dump() {
    assert_drop_in(
        "py_files",
        "",
        r#"
t = "f_" + side
hook.run(f"create table {t} (id int, name text)")
with open("in.tsv", "w") as f:
    f.write("1\tone\n2\t\\N\n")
hook.bulk_load(t, "in.tsv")
hook.bulk_dump(t, "out.tsv")
hook.copy_expert(f"COPY {t} TO STDOUT WITH (FORMAT csv, HEADER true)", "out.csv")
hook.copy_expert(f"COPY {t} FROM STDIN", "created.tsv")
[open("out.tsv").read(), open("out.csv").read(), open("created.tsv").read(),
 hook.get_records(f"select * from {t} order by id")]
"#,
    );
}

/// pghook's pytest suite (python/tests: connections, errors, Ctrl-C, the
/// stubs, and every shipped type against Airflow's hook), run by the
/// virtualenv's Python against a database of its own, which
/// `PGHOOK_TEST_URI` names.
#[test]
fn pytest_suite() {
    let pg = Cluster::plain();
    let db = pg.create_database("py_pytest");
    // Its owner logs in over TCP without a password: the suite opens a few
    // hundred sessions, and a SCRAM login each would take seconds in all.
    pg.psql(&format!("ALTER DATABASE {db} OWNER TO trusted"));
    let uri = format!("postgres://trusted@127.0.0.1:{}/{db}", pg.port);
    let airflow_home = tempfile::tempdir().unwrap();
    let repository = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let started = Instant::now();
    let out = Command::new(python())
        .current_dir(&repository)
        .env("PGHOOK_TEST_URI", &uri)
        .env("AIRFLOW_HOME", airflow_home.path())
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"])
        .output()
        .unwrap_or_else(|e| panic!("running pytest with {}: {e}", python().display()));
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "pytest failed (scripts/setup installs it into .venv):\n{report}");
    eprintln!("pytest in {:?}: {}", started.elapsed(), report.lines().last().unwrap_or_default());
}

#[test]
fn get_conn_cursors_and_transactions() {
    assert_drop_in(
        "py_get_conn",
        "",
        r#"
t = "c_" + side
conn = hook.get_conn()
out = [conn.autocommit, conn.closed]
cur = conn.cursor()
out.append([cur.rowcount, cur.description])
cur.execute(f"create table {t} (id int primary key, name text)")
out.append([cur.rowcount >= -1, cur.description])
conn.commit()
cur.execute(f"insert into {t} values (%s, %s)", (1, "a"))
out.append(cur.rowcount)
cur.executemany(f"insert into {t} values (%(id)s, %(name)s)", [{"id": 2, "name": "b"}, {"id": 3, "name": None}])
out.append(cur.rowcount)
out.append(hook.get_records(f"select count(*) from {t}"))
conn.rollback()
with conn:
    with conn.cursor() as c:
        c.execute(f"insert into {t} values (4, 'd'), (5, 'e'), (6, 'f')")
out.append(hook.get_records(f"select * from {t} order by id"))
cur.execute(f"select id, name from {t} order by id")
out.append([[d[0] for d in cur.description], cur.rowcount, cur.fetchone(), cur.fetchmany(1), cur.fetchall(), cur.fetchone()])
cur.execute(f"select id from {t} order by id")
out.append([row for row in cur])
out.append(sqlstate(lambda: cur.execute("select 1/0")))
out.append(sqlstate(lambda: cur.execute("select 1")))
conn.rollback()
conn.autocommit = True
cur.execute(f"delete from {t} where id = 4")
out.append([conn.autocommit, cur.rowcount, hook.get_records(f"select id from {t} order by id")])
conn.autocommit = False
with open("in.tsv", "w") as f:
    f.write("7\tg\n")
with open("in.tsv") as f:
    cur.copy_expert(f"COPY {t} FROM STDIN", f)
out.append(hook.get_records(f"select count(*) from {t}"))
with open("out.tsv", "w") as f:
    cur.copy_expert(f"COPY {t} TO STDOUT", f)
out.append(open("out.tsv").read())
conn.close()
out.append([conn.closed, hook.get_records(f"select count(*) from {t}")])
try:
    conn.cursor()
except Exception as e:
    out.append(type(e).__name__)
out
"#,
    );
}
