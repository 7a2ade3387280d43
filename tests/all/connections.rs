//! Connections and extras, as `explain` shows them: the keyword arguments
//! Airflow's PostgresHook.get_conn would pass to psycopg2.connect.

use pghook::{ErrorKind, HookArgs};
use pghook_tests::tenant;
use serde_json::json;

async fn explain(stored: &str, args: HookArgs) -> Result<serde_json::Value, pghook::Error> {
    let root = tempfile::tempdir().unwrap();
    let conn_id = args.conn_id.clone().unwrap_or_else(|| "postgres_default".into());
    tenant(root.path(), &[(&conn_id, stored)]).hook(args).explain().await
}

/// Each case: stored connection, hook arguments, what Airflow passes to psycopg2.connect.
#[tokio::test]
async fn explain_matches_airflow_key_for_key() {
    let with = |database: Option<&str>, options: Option<&str>| HookArgs {
        conn_id: Some("c".into()),
        database: database.map(Into::into),
        options: options.map(Into::into),
        enable_log_db_messages: false,
    };
    let cases = [
        (
            "postgres://user:pass@host:5432/db?sslmode=require",
            with(None, None),
            json!({"host": "host", "user": "user", "password": "***", "dbname": "db", "port": 5432, "sslmode": "require"}),
        ),
        (
            // Host names are lower-cased, credentials and schema percent-decoded.
            "postgresql://us%40er:p%3Ass@DB.Example.COM/my%2Fdb",
            with(None, None),
            json!({"host": "db.example.com", "user": "us@er", "password": "***", "dbname": "my/db", "port": null}),
        ),
        (
            // Consumed extras disappear; others pass as stored, after options.
            r#"{"conn_type": "postgres", "host": "h", "login": "u", "schema": "s", "port": 6432,
                "extra": {"cursor": "dictcursor", "iam": false, "aws_conn_id": "a", "keepalives_idle": 30,
                          "application_name": "etl", "sqlalchemy_query": {"a": "b"}, "enable_log_db_messages": true}}"#,
            with(Some("other"), Some("-c search_path=x")),
            json!({"host": "h", "user": "u", "password": null, "dbname": "other", "port": 6432,
                   "options": "-c search_path=x", "keepalives_idle": 30, "application_name": "etl"}),
        ),
        (
            // An extra overrides the plain field, in the field's place.
            "postgres://u:p@h/db?dbname=fromextra&host=otherhost&connect_timeout=10",
            with(None, None),
            json!({"host": "otherhost", "user": "u", "password": "***", "dbname": "fromextra", "port": null, "connect_timeout": "10"}),
        ),
        (
            "postgres://h?__extra__=%7B%22sslmode%22%3A+%22verify-full%22%2C+%22sslrootcert%22%3A+%22ca.pem%22%7D",
            with(None, None),
            json!({"host": "h", "user": null, "password": null, "dbname": "", "port": null, "sslmode": "verify-full", "sslrootcert": "ca.pem"}),
        ),
    ];
    for (stored, args, expected) in cases {
        let got = explain(stored, args).await.unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert_eq!(got, expected, "{stored}");
        // Key order too: psycopg2 receives a dict in this order.
        let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&got), keys(&expected), "{stored}");
    }
}

#[tokio::test]
async fn bad_connections_get_clear_errors() {
    let cases = [
        ("postgres://h:port/db", ErrorKind::Config, "connection `c`: port: Port could not be cast to integer value"),
        ("postgres://h:99999/db", ErrorKind::Config, "connection `c`: port: Port out of range 0-65535"),
        (
            r#"{"host": "h", "port": "x"}"#,
            ErrorKind::Config,
            "connection `c`: port: Expected integer value for `port`, but got \"x\" instead.",
        ),
        (r#"{"host": "h", "#, ErrorKind::Config, "connection `c`: json: invalid JSON"),
        (r#"{"host": "h", "extra": "{not json"}"#, ErrorKind::Config, "connection `c`: extra: invalid JSON"),
        ("postgres://h/db?sslmod=require", ErrorKind::Config, "invalid dsn: invalid connection option \"sslmod\""),
        ("postgres://h/db?sslmode=always", ErrorKind::Config, "invalid sslmode value: \"always\""),
        (
            "postgres://h/db?cursor=fancy",
            ErrorKind::Config,
            "Invalid cursor passed fancy. Valid options are: dictcursor, realdictcursor, namedtuplecursor",
        ),
        (
            "postgres://h/db?keepalives_idle=soon",
            ErrorKind::Config,
            "invalid integer value \"soon\" for connection option \"keepalives_idle\"",
        ),
    ];
    for (stored, kind, message) in cases {
        let e = explain(stored, HookArgs::conn_id("c")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{stored}: {e}");
        assert!(e.message().starts_with(message), "{stored}: {e}");
    }
    let root = tempfile::tempdir().unwrap();
    let e = tenant(root.path(), &[]).hook(HookArgs::default()).explain().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.message(), "The conn_id `postgres_default` isn't defined");
}

/// A password, however it is (mis)written, never reaches an error or
/// `explain`, from the connection itself or from the AWS connection it names.
#[tokio::test]
async fn passwords_never_reach_errors_or_explain() {
    const SECRET: &str = "Pa55word";
    let iam = "postgres://alice@db.abc.eu-west-1.rds.amazonaws.com/app?iam=true&aws_conn_id=aws_bad";
    let cases: &[&[(&str, &str)]] = &[
        // Unencoded `#`, `?`, `/` cut the password apart: refused, masked.
        &[("c", "postgres://user:Pa55word#x@127.0.0.1:5432/db")],
        &[("c", "postgres://user:x#Pa55word@127.0.0.1:5432/db")],
        &[("c", "postgres://user:p?Pa55word@127.0.0.1/db")],
        &[("c", "postgres://user:1?sslmode=Pa55word@127.0.0.1/db")],
        &[("c", "postgres://user:a/Pa55word@127.0.0.1/db")],
        &[("c", "postgres://user:123/Pa55word@127.0.0.1/db")],
        &[("c", "postgres://u:x@y?Pa55word@127.0.0.1/db")],
        &[("c", "postgres://user:Pa55word")],
        // An `@` in the password parses; the connection attempt fails.
        &[("c", "postgres://u:x@y:Pa55word@127.0.0.1:1/db")],
        &[("c", "postgres://u@127.0.0.1:1/db?password=Pa55word")],
        // JSON: a password that is not a string is not quoted.
        &[("c", r#"{"conn_type": "postgres", "host": "127.0.0.1", "password": 55512345}"#)],
        &[("c", r#"{"conn_type": "postgres", "host": "127.0.0.1", "password": ["Pa55word"]}"#)],
        &[("c", r#"{"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "extra": {"password": "Pa55word"}}"#)],
        // The AWS connection behind IAM: a secret key with `/`, a lone secret with a session token.
        &[("c", iam), ("aws_bad", "aws://AKID:Pa55word/x+y@/?region_name=eu-west-1")],
        &[("c", iam), ("aws_bad", "aws://:Pa55word@/?region_name=eu-west-1&aws_session_token=Pa55wordToken")],
    ];
    for connections in cases {
        let root = tempfile::tempdir().unwrap();
        let hook = tenant(root.path(), connections).hook(HookArgs::conn_id("c"));
        let explained = match hook.explain().await {
            Ok(params) => {
                assert!(params["password"].is_null() || params["password"] == "***", "{connections:?}: {params}");
                params.to_string()
            }
            Err(e) => e.to_string(),
        };
        let tested = hook.test_connection().await.expect_err("no server listens there").to_string();
        for shown in [explained, tested] {
            assert!(!shown.contains(SECRET) && !shown.contains("5551234"), "{connections:?}: {shown}");
        }
    }
}
