//! Limits that hold: a stopped call (timeout, interrupt, Ctrl-C) leaves
//! nothing running or committing on the server; a result over the tenant's
//! limit says so; parameters keep every digit; errors stay one short line.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pghook::{ErrorKind, HookArgs, InsertOptions, Interrupt, MapConnections, Param, Policy, RunOptions, Value};
use pghook_tests::{Cluster, runtime};

use crate::pghook_binary;

/// A tenant on `uri` whose calls stop after `timeout`.
fn hook(root: &std::path::Path, uri: &str, timeout: Duration) -> pghook::Hook {
    let policy = Policy::new(root)
        .allow_host("127.0.0.1")
        .with_connections(MapConnections::new().with("c", uri))
        .with_call_timeout(timeout);
    runtime().tenant(policy).hook(HookArgs::conn_id("c"))
}

/// How many server sessions are running a statement that contains `marker`.
fn running(pg: &Cluster, marker: &str) -> String {
    pg.psql(&format!("select count(*) from pg_stat_activity where query like '%{marker}%' and pid <> pg_backend_pid()"))
}

async fn count(hook: &pghook::Hook, table: &str) -> Value {
    hook.get_first(&format!("select count(*) from {table}"), None)
        .await
        .unwrap()
        .rows
        .to_values()
        .unwrap()
        .remove(0)
        .remove(0)
}

#[tokio::test]
async fn a_timed_out_call_leaves_nothing_running_or_committing() {
    let pg = Cluster::plain();
    let db = pg.create_database("limits_timeout");
    let root = tempfile::tempdir().unwrap();
    let hook = hook(root.path(), &pg.uri_db(&db, ""), Duration::from_secs(1));
    hook.run(&["create table t (x int)"], None, Default::default()).await.unwrap();
    let autocommit = RunOptions { autocommit: Some(true), ..Default::default() };
    let slow = "insert into t select 1 from pg_sleep(3) where 'limits-timeout' <> ''";
    let e = hook.run(&[slow], None, autocommit).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // When the call returns, the server has already ended the statement...
    assert_eq!(running(pg, "limits-timeout"), "0");
    // ...and it never commits later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&hook, "t").await, Value::Int(0));
    // Nor does a batch of pipelined inserts stopped before its answers came
    // back: its COMMIT is sent only after them.
    let slow_trigger = "create table s (x int); \
        create function slow() returns trigger language plpgsql as $$ \
        begin if new.x = 3 then perform pg_sleep(3); end if; return new; end $$; \
        create trigger slow before insert on s for each row execute function slow()";
    hook.run(&[slow_trigger], None, Default::default()).await.unwrap();
    let rows = (1..=5).map(|i| vec![Param::Value(Value::Int(i))]).collect();
    let e = hook.insert_rows("s", rows, InsertOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&hook, "s").await, Value::Int(0));
}

/// Also for a session whose login was watched (require_auth): its cancel
/// request goes through the same self-negotiating connector.
#[tokio::test]
async fn an_interrupted_call_is_cancelled_on_the_server() {
    let pg = Cluster::plain();
    for extras in ["", "require_auth=scram-sha-256&sslmode=disable", "require_auth=scram-sha-256"] {
        let root = tempfile::tempdir().unwrap();
        let interrupt = Interrupt::new();
        let hook = hook(root.path(), &pg.uri(extras), Duration::from_secs(60)).with_interrupt(interrupt.clone());
        let thrower = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            interrupt.interrupt();
        });
        let started = Instant::now();
        let e = hook.get_records("select pg_sleep(30), 'limits-interrupt'", None).await.unwrap_err();
        thrower.await.unwrap();
        assert_eq!(e.kind(), ErrorKind::Interrupted, "{extras}: {e}");
        assert!(started.elapsed() < Duration::from_secs(10), "{extras}: {:?}", started.elapsed());
        assert_eq!(running(pg, "limits-interrupt"), "0", "{extras}");
        // The switch stays thrown: later calls of the hook stop at once.
        assert_eq!(hook.test_connection().await.unwrap_err().kind(), ErrorKind::Interrupted);
    }
}

fn pghook(root: &std::path::Path, uri: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(pghook_binary());
    cmd.current_dir(root).args(args).env("AIRFLOW_CONN_C", uri).env("PGHOOK_CONN_ID", "c");
    cmd.env_remove("PGHOOK_CONNECTIONS");
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_timeout_cancels_before_exiting() {
    let pg = Cluster::plain();
    let db = pg.create_database("limits_cli_timeout");
    let uri = pg.uri_db(&db, "");
    let root = tempfile::tempdir().unwrap();
    let api = hook(root.path(), &uri, Duration::from_secs(60));
    api.run(&["create table t (x int)"], None, Default::default()).await.unwrap();
    let sql = "insert into t select 1 from pg_sleep(4) where 'limits-cli-timeout' <> ''";
    let out = pghook(root.path(), &uri, &["--timeout", "1", "run", "--autocommit", "--sql", sql]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("limit of 1s and was stopped"), "{}", stderr(&out));
    assert_eq!(running(pg, "limits-cli-timeout"), "0");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(count(&api, "t").await, Value::Int(0));
}

#[test]
fn ctrl_c_stops_the_statement_and_leaves_no_partial_dump() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let sql = "COPY (select g, pg_sleep(0.2), 'limits-sigint' from generate_series(1, 100) g) TO STDOUT";
    let child = pghook(root.path(), &pg.uri(""), &["copy-expert", "--sql", sql, "--file", "out.tsv"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(running(pg, "limits-sigint"), "0");
    let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[tokio::test]
async fn results_over_the_limit_say_so() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let capped = runtime().tenant(
        Policy::new(root.path())
            .allow_host("127.0.0.1")
            .with_connections(MapConnections::new().with("c", pg.uri("")))
            .with_max_result_bytes(1 << 20),
    );
    let e = capped
        .hook(HookArgs::conn_id("c"))
        .get_records("select g from generate_series(1, 100000) g", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.message().contains("over this tenant's result limit of 1 MiB"), "{e}");
    // Under the default 64 MiB limit, counted as the host keeps the rows
    // (each cell's bytes as the server sent them, where the cell ends, and
    // 24 bytes a row), a result just below it comes back whole, one just
    // above fails with the limit's message.
    let default = hook(root.path(), &pg.uri(""), Duration::from_secs(120));
    let per_row = 100 + std::mem::size_of::<u64>() + 24;
    let rows = |fraction: f64| ((64 << 20) as f64 * fraction / per_row as f64) as u64;
    let select = |rows: u64| format!("select lpad(g::text, 100, 'x') from generate_series(1, {rows}) g");
    let below = default.get_records(&select(rows(0.95)), None).await.unwrap();
    assert_eq!(below.rows.len() as u64, rows(0.95));
    let e = default.get_records(&select(rows(1.05)), None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    assert!(e.message().contains("result limit of 64 MiB"), "{e}");
    // The CLI can raise or lower it.
    let out = pghook(
        root.path(),
        &pg.uri(""),
        &["--max-result-mb", "1", "records", "--sql", "select generate_series(1, 100000)"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("result limit of 1 MiB"), "{}", stderr(&out));
}

#[test]
fn cli_parameters_keep_every_digit() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let params = r#"[10000000000000000001, -10000000000000000001, 0.1, 1e400, {"a": 123456789012345678901234567890}]"#;
    let sql = "select %s::text, %s::text, %s::text, %s::text, %s::jsonb->>'a'";
    let out = pghook(root.path(), &pg.uri(""), &["records", "--sql", sql, "--params", params]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = [
        "10000000000000000001",
        "-10000000000000000001",
        "0.1",
        &format!("1{}", "0".repeat(400)),
        "123456789012345678901234567890",
    ];
    assert_eq!(rows, serde_json::json!([expected]));
    let named = pghook(
        root.path(),
        &pg.uri(""),
        &["records", "--sql", "select %(n)s::text", "--params", r#"{"n": 18446744073709551616}"#],
    )
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&named.stdout).trim(), r#"[["18446744073709551616"]]"#, "{}", stderr(&named));
}

#[test]
fn errors_are_one_bounded_line() {
    let root = tempfile::tempdir().unwrap();
    let huge_host = "h".repeat(10_000_000);
    let conns = serde_json::json!({
        "huge": {"conn_type": "postgres", "host": huge_host, "login": "u"},
        "escape": {"conn_type": "postgres", "host": "a\u{1b}[31mb\nc", "login": "u"},
    });
    std::fs::write(root.path().join("c.json"), conns.to_string()).unwrap();
    for id in ["huge", "escape"] {
        let out = Command::new(pghook_binary())
            .current_dir(root.path())
            .args(["--connections", "c.json", "--conn-id", id, "--allow-host", "127.0.0.1", "test-connection"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.starts_with("pghook: error: "), "{id}: {err:.200}");
        assert_eq!(err.lines().count(), 1, "{id}: {err:.2000}");
        assert!(err.len() < 1200, "{id}: {} bytes: {err:.200}", err.len());
        assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{id}: {err:?}");
    }
}

#[test]
fn a_panic_is_one_error_line() {
    let root = tempfile::tempdir().unwrap();
    // Debug builds panic on purpose with this variable, to prove the CLI's
    // last line of defence; a release build ignores it.
    let out = Command::new(pghook_binary())
        .current_dir(root.path())
        .env("PGHOOK_DEBUG_PANIC", "1")
        .env("AIRFLOW_CONN_C", "postgres://u@h/db")
        .args(["--conn-id", "c", "explain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("pghook: error: internal error"), "{err}");
}
