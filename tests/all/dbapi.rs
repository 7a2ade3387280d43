//! get_conn's connection (`Hook::connection`) against a real server:
//! psycopg2's transaction rules, seen from a second session.

use std::time::Duration;

use pghook::{Connection, ErrorKind, HookArgs, Parameters, Policy, Value};
use pghook_tests::{Cluster, tenant};

/// A new database `name`, a connection on it, a hook for looking from
/// another session, and the file root.
async fn open(pg: &Cluster, name: &str) -> (tempfile::TempDir, Connection, pghook::Hook) {
    let db = pg.create_database(name);
    let root = tempfile::tempdir().unwrap();
    let hook = tenant(root.path(), &[("c", &pg.uri_db(&db, ""))]).hook(HookArgs::conn_id("c"));
    let connection = hook.connection().await.unwrap();
    (root, connection, hook)
}

/// How many rows `t` has, seen from another session.
async fn seen(hook: &pghook::Hook) -> Value {
    hook.get_first("select count(*) from t", None).await.unwrap().rows.to_values().unwrap().remove(0).remove(0)
}

#[tokio::test]
async fn a_transaction_lasts_until_commit_or_rollback() {
    let pg = Cluster::plain();
    let (_root, mut conn, hook) = open(pg, "dbapi_tx").await;
    assert!(!conn.autocommit().await.unwrap());
    conn.execute("create table t (id int primary key)", None).await.unwrap();
    conn.commit().await.unwrap();
    assert!(!conn.in_transaction().await.unwrap());

    let insert = |id: i64| Some(Parameters::values([Value::Int(id)]));
    let inserted = conn.execute("insert into t values (%s)", insert(1)).await.unwrap();
    assert_eq!(inserted.row_count, 1);
    assert!(conn.in_transaction().await.unwrap());
    conn.execute("insert into t values (%s)", insert(2)).await.unwrap();
    // Not yet visible to others; visible to itself.
    assert_eq!(seen(&hook).await, Value::Int(0));
    let own = conn.execute("select count(*) from t", None).await.unwrap();
    assert_eq!(own.rows.to_values().unwrap(), vec![vec![Value::Int(2)]]);
    conn.rollback().await.unwrap();
    assert_eq!(seen(&hook).await, Value::Int(0));

    conn.execute(
        "insert into t values (%s); insert into t values (%s)",
        Some(Parameters::values([Value::Int(3), Value::Int(4)])),
    )
    .await
    .unwrap();
    conn.commit().await.unwrap();
    assert_eq!(seen(&hook).await, Value::Int(2));
    // commit and rollback without a transaction do nothing.
    conn.commit().await.unwrap();
    conn.rollback().await.unwrap();
}

#[tokio::test]
async fn a_failed_statement_fails_the_transaction_until_rollback() {
    let pg = Cluster::plain();
    let (_root, mut conn, hook) = open(pg, "dbapi_failed").await;
    conn.execute("create table t (id int primary key)", None).await.unwrap();
    conn.commit().await.unwrap();
    conn.execute("insert into t values (1)", None).await.unwrap();
    let e = conn.execute("insert into t values (1)", None).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("23505"), "{e}");
    let e = conn.execute("select 1", None).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("25P02"), "{e}");
    conn.rollback().await.unwrap();
    assert_eq!(conn.execute("select 1", None).await.unwrap().rows.to_values().unwrap(), vec![vec![Value::Int(1)]]);
    conn.rollback().await.unwrap();
    assert_eq!(seen(&hook).await, Value::Int(0));
}

#[tokio::test]
async fn autocommit_commits_each_statement_and_is_refused_inside_a_transaction() {
    let pg = Cluster::plain();
    let (_root, mut conn, hook) = open(pg, "dbapi_auto").await;
    conn.execute("create table t (id int primary key)", None).await.unwrap();
    let e = conn.set_autocommit(true).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("inside a transaction"), "{e}");
    conn.commit().await.unwrap();
    conn.set_autocommit(true).await.unwrap();
    conn.execute("insert into t values (1)", None).await.unwrap();
    assert!(!conn.in_transaction().await.unwrap());
    assert_eq!(seen(&hook).await, Value::Int(1));
    // Several statements in one string: one transaction of their own, as
    // the server runs such a string.
    let e = conn.execute("insert into t values (2); insert into t values (1)", None).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("23505"), "{e}");
    assert_eq!(seen(&hook).await, Value::Int(1));
    assert!(conn.execute("select 1", None).await.is_ok(), "the failed string left a transaction open");
}

#[tokio::test]
async fn copy_expert_runs_in_the_transaction_and_close_rolls_back() {
    let pg = Cluster::plain();
    let (root, mut conn, hook) = open(pg, "dbapi_copy").await;
    conn.execute("create table t (id int primary key)", None).await.unwrap();
    conn.commit().await.unwrap();
    std::fs::write(root.path().join("in.tsv"), "1\n2\n3\n").unwrap();
    let loaded = conn.copy_expert("COPY t FROM STDIN", "in.tsv").await.unwrap();
    assert_eq!((loaded.loaded, loaded.rows), (true, 3));
    assert!(conn.in_transaction().await.unwrap());
    assert_eq!(seen(&hook).await, Value::Int(0));
    // Its own uncommitted rows are in its dump.
    let dumped = conn.copy_expert("COPY t TO STDOUT", "out.tsv").await.unwrap();
    assert_eq!(dumped.rows, 3);
    assert_eq!(std::fs::read_to_string(root.path().join("out.tsv")).unwrap(), "1\n2\n3\n");
    // A missing input is an error here, unlike the hook's copy_expert.
    let e = conn.copy_expert("COPY t FROM STDIN", "missing.tsv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(!root.path().join("missing.tsv").exists());
    conn.close();
    assert!(conn.is_closed());
    assert_eq!(conn.execute("select 1", None).await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(seen(&hook).await, Value::Int(0));
}

#[tokio::test]
async fn a_timed_out_call_cancels_the_statement_and_closes_the_connection() {
    let pg = Cluster::plain();
    let db = pg.create_database("dbapi_timeout");
    let root = tempfile::tempdir().unwrap();
    let policy = Policy::new(root.path())
        .allow_host("127.0.0.1")
        .with_connections(pghook::MapConnections::new().with("c", pg.uri_db(&db, "")))
        .with_call_timeout(Duration::from_secs(2));
    let hook = pghook_tests::runtime().tenant(policy).hook(HookArgs::conn_id("c"));
    let mut conn = hook.connection().await.unwrap();
    // Each call has its own limit: time spent between calls does not count.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    conn.execute("select application_name from pg_stat_activity where pid = pg_backend_pid()", None).await.unwrap();
    conn.commit().await.unwrap();
    let e = conn.execute("select pg_sleep(30)", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(conn.is_closed());
    assert_eq!(conn.commit().await.unwrap_err().kind(), ErrorKind::Closed);
    let sleeping = hook
        .get_first("select count(*) from pg_stat_activity where query = 'select pg_sleep(30)'", None)
        .await
        .unwrap();
    assert_eq!(sleeping.rows.to_values().unwrap(), vec![vec![Value::Int(0)]]);
}
