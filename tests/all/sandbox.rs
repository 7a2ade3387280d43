//! The sandbox: what the guest imports, and what a tenant's policy lets it
//! touch; a trap or a timeout fails one call and nothing else.

use std::time::Duration;

use pghook::{ErrorKind, HookArgs, MapConnections, Policy, Value};
use pghook_tests::{Cluster, runtime, tenant};

#[test]
fn guest_imports_no_sockets_and_no_filesystem() {
    let imports = runtime().guest_imports();
    println!("guest imports: {imports:?}");
    assert!(imports.iter().any(|i| i.starts_with("pghook:hook/postgres")), "{imports:?}");
    for forbidden in ["wasi:sockets", "wasi:filesystem", "wasi:http"] {
        assert!(!imports.iter().any(|i| i.starts_with(forbidden)), "the guest imports {forbidden}: {imports:?}");
    }
}

fn policy(root: &std::path::Path, conn: &str) -> Policy {
    Policy::new(root)
        .allow_host("127.0.0.1")
        .with_connections(MapConnections::new().with("c", conn).with("secret", conn))
}

#[tokio::test]
async fn connections_hosts_and_files_are_confined() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let only_c = runtime().tenant(policy(root.path(), &pg.uri("")).allow_conn_ids(["c"]));
    assert!(only_c.hook(HookArgs::conn_id("c")).test_connection().await.is_ok());
    let e = only_c.hook(HookArgs::conn_id("secret")).test_connection().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    let elsewhere = pg.uri("").replace("127.0.0.1", "localhost");
    let e = runtime()
        .tenant(policy(root.path(), &elsewhere))
        .hook(HookArgs::conn_id("c"))
        .test_connection()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert!(e.message().contains("host localhost is not allowed"), "{e}");
    // One tenant cannot reach into another's root.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("theirs.tsv"), "1\n").unwrap();
    let theirs = other.path().join("theirs.tsv");
    let t = runtime().tenant(policy(root.path(), &pg.uri("")));
    let e = t
        .hook(HookArgs::conn_id("c"))
        .copy_expert("COPY (select 1) TO STDOUT", theirs.to_str().unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied);
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "1\n");
}

#[tokio::test]
async fn a_guest_out_of_memory_fails_only_that_call() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let small = runtime().tenant(policy(root.path(), &pg.uri("")).with_memory_limit(16 << 20));
    // Rows stay in the host: a 40 MB result needs no guest memory.
    let big = "select repeat('x', 1000) from generate_series(1, 40000)";
    assert_eq!(small.hook(HookArgs::conn_id("c")).get_records(big, None).await.unwrap().rows.len(), 40000);
    // A statement does enter the guest: one of 16 MiB cannot fit.
    let long = format!("select 1 /* {} */", "x".repeat(16 << 20));
    // A call that returns leaves its instance warm for the next: the one that runs out.
    small.hook(HookArgs::conn_id("c")).get_first("select 1", None).await.unwrap();
    let e = small.hook(HookArgs::conn_id("c")).get_records(&long, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Trap, "{e}");
    assert!(e.message().contains("out of memory"), "{e}");
    // The same tenant (in a new instance: one that trapped is never reused) and its neighbours go on.
    for _ in 0..3 {
        let one = small.hook(HookArgs::conn_id("c")).get_first("select 1", None).await.unwrap();
        assert_eq!(one.rows.to_values().unwrap()[0][0], Value::Int(1));
    }
    let roomy = tenant(root.path(), &[("c", &pg.uri(""))]);
    assert_eq!(
        roomy.hook(HookArgs::conn_id("c")).get_records(&long, None).await.unwrap().rows.to_values().unwrap(),
        [[Value::Int(1)]]
    );
}

#[tokio::test]
async fn result_and_time_limits() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let capped = runtime().tenant(policy(root.path(), &pg.uri("")).with_max_result_bytes(100_000));
    let e = capped
        .hook(HookArgs::conn_id("c"))
        .get_records("select repeat('x', 1000) from generate_series(1, 1000)", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    let hasty = runtime().tenant(policy(root.path(), &pg.uri("")).with_call_timeout(Duration::from_millis(500)));
    let started = std::time::Instant::now();
    let sleeper = "select pg_sleep(60) /* pghook-cancel-test */";
    let e = hasty.hook(HookArgs::conn_id("c")).run(&[sleeper], None, Default::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(4));
    // The abandoned statement is cancelled on the server, not left running.
    let running =
        "select count(*) from pg_stat_activity where query like '%pghook-cancel-test%' and pid <> pg_backend_pid()";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pg.psql(running) != "0" {
        assert!(std::time::Instant::now() < deadline, "the timed-out statement still runs on the server");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hasty.hook(HookArgs::conn_id("c")).test_connection().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_run_side_by_side() {
    let pg = Cluster::plain();
    let db = pg.create_database("sandbox_tenants");
    let setup_root = tempfile::tempdir().unwrap();
    let setup = tenant(setup_root.path(), &[("c", &pg.uri_db(&db, ""))]);
    setup
        .hook(HookArgs::conn_id("c"))
        .run(&["create table n as select g from generate_series(1, 2000) g"], None, Default::default())
        .await
        .unwrap();
    let roots: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut tasks = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let t = tenant(root.path(), &[("c", &pg.uri_db(&db, ""))]);
        tasks.push(tokio::spawn(async move {
            let hook = t.hook(HookArgs::conn_id("c"));
            for round in 0..3 {
                assert_eq!(hook.bulk_dump("n", &format!("dump-{i}-{round}.tsv")).await.unwrap(), 2000);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for (i, root) in roots.iter().enumerate() {
        let names: Vec<_> =
            std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with(&format!("dump-{i}-"))));
    }
}

#[tokio::test]
async fn compiled_guest_cache_is_private_and_heals() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("pghook");
    let root = tempfile::tempdir().unwrap();
    let policy = || Policy::new(root.path()).with_connections(MapConnections::new().with("c", "postgres://h/db"));
    let explain = |rt: &pghook::Runtime| {
        let hook = rt.tenant(policy()).hook(HookArgs::conn_id("c"));
        async move { hook.explain().await.unwrap() }
    };
    let first = pghook::Runtime::with_cache(&dir).unwrap();
    let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(explain(&first).await["dbname"], "db");
    // A second process loads the cached entry; a corrupt one is replaced.
    assert_eq!(explain(&pghook::Runtime::with_cache(&dir).unwrap()).await["dbname"], "db");
    std::fs::write(&entries[0], b"not a compiled component").unwrap();
    assert_eq!(explain(&pghook::Runtime::with_cache(&dir).unwrap()).await["dbname"], "db");
    assert!(std::fs::read(&entries[0]).unwrap().len() > 1000);
    // A cache others can write to is not trusted: it is neither read nor
    // written, and the guest is compiled in memory.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(&entries[0], b"planted").unwrap();
    assert_eq!(explain(&pghook::Runtime::with_cache(&dir).unwrap()).await["dbname"], "db");
    assert_eq!(std::fs::read(&entries[0]).unwrap(), b"planted");
}

/// A tenant whose policy is `policy` plus connection `c` = `conn`.
fn with_conn(policy: Policy, conn: &str) -> pghook::Tenant {
    runtime().tenant(policy.with_connections(MapConnections::new().with("c", conn)))
}

#[tokio::test]
async fn socket_directories_need_their_own_rule() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    // A directory named like an allowed host is a socket directory, not a host.
    let evil = root.path().join("evil.example.com");
    std::fs::create_dir(&evil).unwrap();
    let conn = format!("postgres://u@{}/db", evil.to_str().unwrap().replace('/', "%2F"));
    let hosts = Policy::new(root.path()).allow_host("*.example.com").allow_host("*");
    let e = with_conn(hosts.clone(), &conn).hook(HookArgs::conn_id("c")).test_connection().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.message().contains(&format!("Unix socket directory {} is not allowed", evil.display())), "{e}");
    // Its own rule lets the attempt through (nothing listens there).
    let e = with_conn(Policy::new(root.path()).allow_socket_dir(&evil), &conn)
        .hook(HookArgs::conn_id("c"))
        .test_connection()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    // The real cluster's socket: refused under host patterns alone, reached
    // once its directory is allowed, however the rule spells it.
    let dir = pg.socket_dir.to_str().unwrap();
    let real = format!("postgres://postgres@{}:{}/postgres", dir.replace('/', "%2F"), pg.port);
    let e = with_conn(hosts, &real).hook(HookArgs::conn_id("c")).test_connection().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    for rule in [dir.to_string(), format!("{dir}/"), format!("{dir}/./"), dir.replacen('/', "//", 1)] {
        let t = with_conn(Policy::new(root.path()).allow_socket_dir(&rule), &real);
        t.hook(HookArgs::conn_id("c")).test_connection().await.unwrap_or_else(|e| panic!("rule {rule}: {e}"));
    }
    // A path that only normalizes to the allowed directory reaches it too:
    // what is checked is what is connected to.
    let detour = format!(
        "{}:{}",
        format!("{dir}/../{}", pg.socket_dir.file_name().unwrap().to_str().unwrap()).replace('/', "%2F"),
        pg.port
    );
    let t =
        with_conn(Policy::new(root.path()).allow_socket_dir(dir), &format!("postgres://postgres@{detour}/postgres"));
    t.hook(HookArgs::conn_id("c")).test_connection().await.unwrap();
}

#[tokio::test]
async fn bracketed_and_bare_ipv6_addresses_agree() {
    let root = tempfile::tempdir().unwrap();
    // The clusters listen on 127.0.0.1 only: getting past the policy shows
    // as a failed connection, not a refusal.
    let bare = "postgres://u@[::1]:1/db?connect_timeout=5";
    let bracketed = r#"{"conn_type": "postgres", "host": "[::1]", "port": 1, "login": "u", "schema": "db"}"#;
    for pattern in ["[::1]", "::1", "0:0:0:0:0:0:0:1"] {
        for conn in [bare, bracketed] {
            let t = with_conn(Policy::new(root.path()).allow_host(pattern), conn);
            let e = t.hook(HookArgs::conn_id("c")).test_connection().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Connect, "pattern {pattern}, connection {conn}: {e}");
        }
    }
    let e = with_conn(Policy::new(root.path()).allow_host("::2"), bracketed)
        .hook(HookArgs::conn_id("c"))
        .test_connection()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.message().contains("host ::1 is not allowed"), "{e}");
}

/// A secrets backend that answers asynchronously, as a vault would.
struct SlowVault {
    uri: String,
}

impl pghook::ConnectionSource for SlowVault {
    fn get<'a>(&'a self, conn_id: &'a str) -> pghook::Lookup<'a> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            match conn_id {
                "c" => Ok(Some(self.uri.clone())),
                "broken" => Err(pghook::Error::new(ErrorKind::Connect, "the vault is unreachable")),
                _ => Ok(None),
            }
        })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_secrets_source_blocks_no_thread() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let vault = SlowVault { uri: pg.uri("") };
    let t = runtime().tenant(Policy::new(root.path()).allow_host("127.0.0.1").with_connections(vault));
    // On one thread, two calls' lookups overlap: neither blocks the thread.
    let (first, second) = (t.hook(HookArgs::conn_id("c")), t.hook(HookArgs::conn_id("c")));
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(first.explain(), second.explain());
    assert!(started.elapsed() < Duration::from_millis(550), "{:?}", started.elapsed());
    assert_eq!((a.unwrap()["host"].clone(), b.unwrap()["host"].clone()), ("127.0.0.1".into(), "127.0.0.1".into()));
    let e = t.hook(HookArgs::conn_id("broken")).test_connection().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Secrets, "{e}");
    assert!(e.message().contains("the vault is unreachable"), "{e}");
}

#[tokio::test]
async fn errors_have_kinds_sources_and_typed_sqlstates() {
    use std::error::Error as _;
    let e = pghook::Runtime::from_component(b"not a component").err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Guest, "{e}");
    assert!(e.source().is_some(), "{e:?}");
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let hook = runtime().tenant(policy(root.path(), &pg.uri(""))).hook(HookArgs::conn_id("c"));
    let e = hook.get_records("select 1/0", None).await.unwrap_err();
    assert_eq!((e.kind(), e.sqlstate()), (ErrorKind::Database, Some(&pghook::SqlState::DIVISION_BY_ZERO)));
    assert!(e.to_string().ends_with("(SQLSTATE 22012)"), "{e}");
}

/// A tenant that reuses sessions: `select pg_backend_pid()` through `hook`.
async fn backend_pid(hook: &pghook::Hook) -> Value {
    hook.get_first("select pg_backend_pid()", None).await.unwrap().rows.to_values().unwrap().remove(0).remove(0)
}

/// Wait until `tenant` holds `n` idle sessions.
async fn idle(tenant: &pghook::Tenant, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while tenant.idle_sessions() != n {
        assert!(std::time::Instant::now() < deadline, "{} idle sessions, not {n}", tenant.idle_sessions());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn sessions_are_reused_only_when_asked_clean_and_per_tenant() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    // Airflow's default: a new session for every call.
    let fresh = runtime().tenant(policy(root.path(), &pg.uri(""))).hook(HookArgs::conn_id("c"));
    assert_ne!(backend_pid(&fresh).await, backend_pid(&fresh).await);
    // With reuse, the next call gets the same session back...
    let reusing = runtime().tenant(policy(root.path(), &pg.uri("")).with_session_reuse(4));
    let hook = reusing.hook(HookArgs::conn_id("c"));
    let pid = backend_pid(&hook).await;
    idle(&reusing, 1).await;
    assert_eq!(backend_pid(&hook).await, pid);
    idle(&reusing, 1).await;
    // ...reset: settings a call made are gone.
    let autocommit = pghook::RunOptions { autocommit: Some(true), ..Default::default() };
    hook.run(&["set search_path to nowhere"], None, autocommit).await.unwrap();
    idle(&reusing, 1).await;
    let path = hook.get_first("show search_path", None).await.unwrap().rows.to_values().unwrap().remove(0).remove(0);
    assert_eq!(path, Value::Text("\"$user\", public".into()));
    idle(&reusing, 1).await;
    // A session whose statement failed is closed, not reused.
    let e = hook.get_first("select 1/0", None).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("22012"));
    idle(&reusing, 0).await;
    let pid = backend_pid(&hook).await;
    idle(&reusing, 1).await;
    // A transaction a call left open is rolled back, as closing the session would.
    hook.run(&["begin", "create table left_open (a int)"], None, autocommit).await.unwrap();
    idle(&reusing, 1).await;
    assert_eq!(backend_pid(&hook).await, pid);
    let open = hook.get_first("select to_regclass('left_open') is null", None).await.unwrap();
    assert_eq!(open.rows.to_values().unwrap(), vec![vec![Value::Boolean(true)]]);
    idle(&reusing, 1).await;
    // Statements a call prepared with SQL are gone; the host's own type
    // lookups still work: a type it has not seen yet is read after a reset.
    hook.run(
        &["prepare mine as select 1", "create type reuse_a as enum ('a')", "create type reuse_b as enum ('b')"],
        None,
        autocommit,
    )
    .await
    .unwrap();
    idle(&reusing, 1).await;
    assert_eq!(
        hook.get_first("select 'a'::reuse_a::text", None).await.unwrap().rows.to_values().unwrap(),
        vec![vec![Value::Text("a".into())]]
    );
    let a = hook.get_first("select 'a'::reuse_a", None).await.unwrap();
    assert_eq!(a.rows.to_values().unwrap(), vec![vec![Value::Text("a".into())]]);
    idle(&reusing, 1).await;
    let b = hook.get_first("select 'b'::reuse_b", None).await.unwrap();
    assert_eq!(b.rows.to_values().unwrap(), vec![vec![Value::Text("b".into())]]);
    idle(&reusing, 1).await;
    let e = hook.get_first("execute mine", None).await.unwrap_err();
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("26000"), "{e}");
    // Another tenant with the same connection never gets this tenant's session.
    let other = runtime().tenant(policy(root.path(), &pg.uri("")).with_session_reuse(4));
    let mine = backend_pid(&hook).await;
    assert_ne!(backend_pid(&other.hook(HookArgs::conn_id("c"))).await, mine);
    // A call that times out does not give its session back.
    let hasty = runtime()
        .tenant(policy(root.path(), &pg.uri("")).with_session_reuse(4).with_call_timeout(Duration::from_millis(300)));
    let e = hasty.hook(HookArgs::conn_id("c")).get_records("select pg_sleep(5)", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hasty.idle_sessions(), 0);
}
