//! Connections and extras, as `explain` shows them: the keyword arguments
//! Airflow's PostgresHook.get_conn would pass to psycopg2.connect.

use pghook::{ErrorKind, HookArgs, Value};
use pghook_tests::{Cluster, PASSWORD, ROLE_PASSWORD, tenant};
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

/// A hook for `user` (with `password`) on 127.0.0.1 to `pg`, with `extra`.
fn login_hook(pg: &Cluster, user: &str, password: Option<&str>, extra: serde_json::Value) -> pghook::Hook {
    let stored = json!({
        "conn_type": "postgres", "host": "127.0.0.1", "port": pg.port, "login": user,
        "password": password, "schema": "postgres", "extra": extra,
    })
    .to_string();
    let root = tempfile::tempdir().unwrap();
    let mut policy = pghook::Policy::new(root.path()).allow_host("127.0.0.1");
    policy = policy.with_connections(pghook::MapConnections::new().with("c", stored));
    pghook_tests::runtime().tenant(policy).hook(HookArgs::conn_id("c"))
}

/// Whether the login succeeds, and the session is encrypted.
async fn login(
    pg: &Cluster,
    user: &str,
    password: Option<&str>,
    extra: serde_json::Value,
) -> Result<bool, pghook::Error> {
    let hook = login_hook(pg, user, password, extra);
    let ssl = hook.get_first("select ssl from pg_stat_ssl where pid = pg_backend_pid()", None).await?;
    Ok(ssl.rows.to_values().unwrap()[0][0] == Value::Boolean(true))
}

/// require_auth as libpq 16 reads it: the server may ask only for what it
/// allows, with `none` for letting the client in unasked. A refused request
/// is never answered: with a wrong password the refusal is still the
/// requirement's, not the server's "password authentication failed".
#[tokio::test]
async fn require_auth_allows_only_the_methods_it_names() {
    let pg = Cluster::plain();
    let (scram, role) = (Some(PASSWORD), Some(ROLE_PASSWORD));
    let sasl = "server requested SASL authentication";
    let cleartext = "server requested a cleartext password";
    let hashed = "server requested a hashed password";
    let unasked = "server did not complete authentication";
    // user, password, require_auth, the refusal (None: logs in).
    let cases: &[(&str, Option<&str>, &str, Option<&str>)] = &[
        ("postgres", scram, "scram-sha-256", None),
        ("postgres", scram, "!password,!md5", None),
        ("postgres", scram, "password,md5", Some(sasl)),
        ("postgres", scram, "!scram-sha-256", Some(sasl)),
        ("postgres", scram, "none", Some(sasl)),
        ("pwuser", role, "password", None),
        ("pwuser", role, "scram-sha-256", Some(cleartext)),
        ("pwuser", Some("wrong"), "scram-sha-256", Some(cleartext)),
        ("pwuser", role, "!password", Some(cleartext)),
        ("md5user", role, "md5", None),
        ("md5user", role, "!none", None),
        ("md5user", role, "scram-sha-256,password", Some(hashed)),
        ("trusted", None, "none", None),
        ("trusted", None, "!md5", None),
        ("trusted", None, "scram-sha-256", Some(unasked)),
        ("trusted", None, "!none", Some(unasked)),
    ];
    for sslmode in ["prefer", "disable"] {
        for &(user, password, require_auth, refusal) in cases {
            let case = format!("{user} with require_auth {require_auth:?}, sslmode {sslmode}");
            let got = login(pg, user, password, json!({"require_auth": require_auth, "sslmode": sslmode})).await;
            match refusal {
                None => assert_eq!(got.map_err(|e| e.to_string()), Ok(false), "{case}"),
                Some(reason) => {
                    let e = got.expect_err(&case);
                    assert_eq!(e.kind(), ErrorKind::Connect, "{case}: {e}");
                    let wanted = format!("authentication method requirement \"{require_auth}\" failed: {reason}");
                    assert!(e.message().contains(&wanted), "{case}: {e}");
                }
            }
        }
    }
    // Without a requirement every one of them logs in.
    for (user, password) in [("postgres", scram), ("pwuser", role), ("md5user", role), ("trusted", None)] {
        assert_eq!(login(pg, user, password, json!({})).await.map_err(|e| e.to_string()), Ok(false), "{user}");
    }
}

/// Over TLS the connector negotiates itself and watches the login inside
/// the encrypted stream, for each sslmode; channel binding still holds.
#[tokio::test]
async fn require_auth_over_tls() {
    let pg = Cluster::tls();
    for sslmode in ["prefer", "require", "allow"] {
        for extra in [
            json!({"sslmode": sslmode, "require_auth": "scram-sha-256"}),
            json!({"sslmode": sslmode, "require_auth": "scram-sha-256", "channel_binding": "require"}),
        ] {
            assert_eq!(
                login(pg, "postgres", Some(PASSWORD), extra.clone()).await.map_err(|e| e.to_string()),
                Ok(true),
                "{extra}"
            );
        }
        let e = login(pg, "postgres", Some(PASSWORD), json!({"sslmode": sslmode, "require_auth": "password"}))
            .await
            .unwrap_err();
        assert!(e.message().contains("requirement \"password\" failed: server requested SASL authentication"), "{e}");
    }
    // The server insists on TLS: a plain attempt is refused by the server, not by the watch.
    let e = login(pg, "postgres", Some(PASSWORD), json!({"sslmode": "disable", "require_auth": "scram-sha-256"}))
        .await
        .unwrap_err();
    assert!(e.message().contains("no encryption"), "{e}");
}

/// Over a Unix socket (trust on the test clusters) the host opens the
/// socket itself and watches the login: `none` lets the trusted login in, a
/// requirement without it fails as libpq's does, and a statement of such a
/// session is cancelled on the server when its call is abandoned.
#[tokio::test]
async fn require_auth_over_a_unix_socket() {
    let pg = Cluster::plain();
    let hook = |require_auth: &str, timeout: Option<u64>| {
        let stored = json!({"host": pg.socket_dir, "port": pg.port, "login": "postgres", "schema": "postgres",
            "extra": {"require_auth": require_auth}});
        let root = tempfile::tempdir().unwrap();
        let mut policy = pghook::Policy::new(root.path())
            .allow_socket_dir(&pg.socket_dir)
            .with_connections(pghook::MapConnections::new().with("c", stored.to_string()));
        if let Some(seconds) = timeout {
            policy = policy.with_call_timeout(std::time::Duration::from_secs(seconds));
        }
        pghook_tests::runtime().tenant(policy).hook(HookArgs::conn_id("c"))
    };
    assert!(hook("none", None).test_connection().await.is_ok());
    assert!(hook("!password,!md5", None).test_connection().await.is_ok());
    let e = hook("scram-sha-256", None).test_connection().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.message().contains("server did not complete authentication"), "{e}");
    // A timed-out statement on such a session is cancelled on the server.
    let marker = "require_auth_socket_cancel";
    let e = hook("none", Some(2)).get_records(&format!("select pg_sleep(30) as {marker}"), None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let running =
        format!("select count(*) from pg_stat_activity where query like '%{marker}%' and pid <> pg_backend_pid()");
    assert_eq!(pg.psql(&running), "0");
}
