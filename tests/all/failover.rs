//! Several servers in one connection, as libpq tries them: every
//! `target_session_attrs` against a real primary and its streaming hot
//! standby, in both orders, over TCP and Unix sockets; dead, silent and
//! unacceptable servers skipped; one clear error when none will do.

use std::time::{Duration, Instant};

use pghook::{ErrorKind, HookArgs, Value};
use pghook_tests::{PASSWORD, Replicated, SUPERUSER, free_port, tenant};
use serde_json::json;

/// How a connection reaches the servers.
#[derive(Debug, Clone, Copy)]
enum Via {
    Tcp,
    Socket,
}

/// A connection to the servers on `ports` (the pair's, or none listening),
/// in order, with `extra` as further extras.
fn conn(via: Via, ports: &[u16], extra: serde_json::Value) -> String {
    let pair = Replicated::get();
    let hosts: Vec<String> = ports
        .iter()
        .map(|port| match via {
            Via::Tcp => "127.0.0.1".to_string(),
            Via::Socket if *port == pair.standby.port => pair.standby.socket_dir.display().to_string(),
            Via::Socket => pair.primary.socket_dir.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut extra = extra;
    extra["port"] = json!(ports.join(","));
    json!({
        "conn_type": "postgres",
        "host": hosts.join(","),
        "login": SUPERUSER,
        "password": PASSWORD,
        "schema": "postgres",
        "extra": extra,
    })
    .to_string()
}

/// The port of the server a hook on `stored` reached.
async fn reached(stored: &str) -> Result<u16, pghook::Error> {
    let root = tempfile::tempdir().unwrap();
    let hook = tenant(root.path(), &[("c", stored)]).hook(HookArgs::conn_id("c"));
    let records = hook.get_first("select current_setting('port')", None).await?;
    match &records.rows.to_values().unwrap()[0][0] {
        Value::Text(port) => Ok(port.parse().unwrap()),
        other => panic!("port: {other:?}"),
    }
}

/// The extras asking for `mode`.
fn target(mode: &str) -> serde_json::Value {
    json!({"target_session_attrs": mode})
}

#[tokio::test]
async fn each_target_reaches_its_server_in_either_order() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    // Each mode, and whom it reaches with the primary listed first and with the standby first.
    let cases = [
        ("any", primary, standby),
        ("read-write", primary, primary),
        ("read-only", standby, standby),
        ("primary", primary, primary),
        ("standby", standby, standby),
        ("prefer-standby", standby, standby),
    ];
    for via in [Via::Tcp, Via::Socket] {
        for (mode, primary_first, standby_first) in cases {
            for (ports, expected) in [([primary, standby], primary_first), ([standby, primary], standby_first)] {
                let got = reached(&conn(via, &ports, target(mode))).await;
                assert_eq!(got.as_ref().ok(), Some(&expected), "{mode} over {via:?}, ports {ports:?}: {got:?}");
            }
        }
    }
}

#[tokio::test]
async fn read_only_sessions_on_a_primary() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    let read_only =
        |mode: &str| json!({"target_session_attrs": mode, "options": "-c default_transaction_read_only=on"});
    // A primary whose sessions are read-only is what read-only asks for, and what read-write refuses.
    assert_eq!(reached(&conn(Via::Tcp, &[primary], read_only("read-only"))).await.unwrap(), primary);
    assert_eq!(reached(&conn(Via::Tcp, &[primary, standby], read_only("read-only"))).await.unwrap(), primary);
    let e = reached(&conn(Via::Tcp, &[primary, standby], read_only("read-write"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert_eq!(
        e.message(),
        format!(
            "connection to 127.0.0.1:{primary} failed: session is read-only; \
             connection to 127.0.0.1:{standby} failed: session is read-only"
        )
    );
    // primary asks about hot standby only: such a session is still on a primary.
    assert_eq!(reached(&conn(Via::Tcp, &[standby, primary], read_only("primary"))).await.unwrap(), primary);
}

#[tokio::test]
async fn a_lone_server_of_the_wrong_kind_is_a_clear_error() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    for (ports, mode, reason) in [
        (primary, "standby", "server is not in hot standby mode"),
        (primary, "read-only", "session is not read-only"),
        (standby, "primary", "server is in hot standby mode"),
        (standby, "read-write", "session is read-only"),
    ] {
        let e = reached(&conn(Via::Tcp, &[ports], target(mode))).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect, "{mode}: {e}");
        assert_eq!(e.message(), format!("connection to 127.0.0.1:{ports} failed: {reason}"), "{mode}");
    }
    // Over a socket, the socket is named.
    let e = reached(&conn(Via::Socket, &[primary], target("standby"))).await.unwrap_err();
    let socket = pair.primary.socket_dir.display();
    assert_eq!(e.message(), format!("connection to {socket}:{primary} failed: server is not in hot standby mode"));
}

#[tokio::test]
async fn prefer_standby_falls_back_to_any_server() {
    let pair = Replicated::get();
    let primary = pair.primary.port;
    let dead = free_port();
    assert_eq!(reached(&conn(Via::Tcp, &[primary], target("prefer-standby"))).await.unwrap(), primary);
    assert_eq!(reached(&conn(Via::Tcp, &[dead, primary], target("prefer-standby"))).await.unwrap(), primary);
    // Nothing answers: both passes' attempts, in order.
    let also_dead = free_port();
    let e = reached(&conn(Via::Tcp, &[dead, also_dead], target("prefer-standby"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let attempts: Vec<&str> = e.message().split("; ").map(|a| a.split(" failed: ").next().unwrap()).collect();
    let at = |port: u16| format!("connection to 127.0.0.1:{port}");
    assert_eq!(attempts, [at(dead), at(also_dead), at(dead), at(also_dead)], "{e}");
}

#[tokio::test]
async fn a_dead_first_server_is_skipped() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    let dead = free_port();
    for (mode, expected) in [("any", standby), ("primary", primary), ("standby", standby), ("read-write", primary)] {
        let got = reached(&conn(Via::Tcp, &[dead, standby, primary], target(mode))).await;
        assert_eq!(got.as_ref().ok(), Some(&expected), "{mode}: {got:?}");
    }
    // When none will do, the error names each server and why.
    let e = reached(&conn(Via::Tcp, &[dead, primary], target("standby"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let message = e.message();
    assert!(message.starts_with(&format!("connection to 127.0.0.1:{dead} failed: ")), "{message}");
    assert!(message.contains("refused"), "{message}");
    let last = format!("; connection to 127.0.0.1:{primary} failed: server is not in hot standby mode");
    assert!(message.ends_with(&last), "{message}");
}

#[tokio::test]
async fn connect_timeout_bounds_each_server_on_its_own() {
    let standby = Replicated::get().standby.port;
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let extra = json!({"target_session_attrs": "standby", "connect_timeout": 2});
    let started = Instant::now();
    assert_eq!(reached(&conn(Via::Tcp, &[port, standby], extra)).await.unwrap(), standby);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test]
async fn random_order_still_finds_the_target() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    let shuffled = |mode: &str| json!({"target_session_attrs": mode, "load_balance_hosts": "random"});
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        assert_eq!(reached(&conn(Via::Tcp, &[primary, standby], shuffled("standby"))).await.unwrap(), standby);
        assert_eq!(reached(&conn(Via::Tcp, &[primary, standby], shuffled("primary"))).await.unwrap(), primary);
        seen.insert(reached(&conn(Via::Tcp, &[primary, standby], shuffled("any"))).await.unwrap());
    }
    // any takes the first in a random order: both, over 20 tries (all alike: 2 in a million).
    assert_eq!(seen, [primary, standby].into_iter().collect());
}

#[tokio::test]
async fn a_unix_socket_in_a_list_is_never_encrypted() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    // The TCP server has no TLS and fails sslmode=require; the socket after it is reached plain, as in libpq.
    let mixed = json!({
        "conn_type": "postgres",
        "host": format!("127.0.0.1,{}", pair.primary.socket_dir.display()),
        "login": SUPERUSER,
        "password": PASSWORD,
        "schema": "postgres",
        "extra": {"port": format!("{standby},{primary}"), "sslmode": "require"},
    });
    assert_eq!(reached(&mixed.to_string()).await.unwrap(), primary);
}

#[test]
fn pgtargetsessionattrs_from_the_environment() {
    let pair = Replicated::get();
    let (primary, standby) = (pair.primary.port, pair.standby.port);
    let root = tempfile::tempdir().unwrap();
    let stored = conn(Via::Tcp, &[primary, standby], json!({}));
    let sql = "select current_setting('port')";
    for (mode, expected) in [("standby", standby), ("read-write", primary), ("prefer-standby", standby)] {
        let env = [("AIRFLOW_CONN_PAIR", stored.as_str()), ("PGTARGETSESSIONATTRS", mode)];
        let out = crate::cli::pghook(root.path(), &env, &["--conn-id", "pair", "records", "--sql", sql]);
        assert_eq!(crate::cli::stdout(&out), format!(r#"[["{expected}"]]"#), "PGTARGETSESSIONATTRS={mode}");
    }
    // The connection's own setting wins.
    let stored = conn(Via::Tcp, &[primary, standby], target("primary"));
    let env = [("AIRFLOW_CONN_PAIR", stored.as_str()), ("PGTARGETSESSIONATTRS", "standby")];
    let out = crate::cli::pghook(root.path(), &env, &["--conn-id", "pair", "records", "--sql", sql]);
    assert_eq!(crate::cli::stdout(&out), format!(r#"[["{primary}"]]"#));
}

#[tokio::test]
async fn a_refused_login_ends_the_search() {
    // As libpq: a server that refuses the login is not followed by the others.
    let pair = Replicated::get();
    let mut stored: serde_json::Value =
        serde_json::from_str(&conn(Via::Tcp, &[pair.primary.port, pair.standby.port], json!({}))).unwrap();
    stored["password"] = json!("not the password");
    let e = reached(&stored.to_string()).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("28P01"), "{e}");
    assert!(!e.message().contains(&pair.standby.port.to_string()), "{e}");
}
