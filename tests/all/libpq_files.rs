//! libpq's own files, as libpq reads them: the password file, the service
//! file, the certificates in `~/.postgresql` and the platform's roots;
//! through the CLI (which lets libpq read the user's home) and through the
//! API, where they follow the tenant's file rules.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use pghook::{ErrorKind, HookArgs, Policy, Value};
use pghook_tests::{Cluster, PASSWORD, SUPERUSER};

use crate::pghook_binary;

/// Run the CLI in `root` with only `env` for libpq (no PG* or HOME of ours).
fn pghook(root: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(pghook_binary());
    cmd.current_dir(root).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("PG") || name == "HOME" || name.starts_with("SSL_CERT") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied()).output().expect("running pghook")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "pghook failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A password file field: `:` and `\` escaped.
fn escaped(field: &str) -> String {
    field.replace('\\', "\\\\").replace(':', "\\:")
}

#[test]
fn the_password_file_in_the_home_directory() {
    let pg = Cluster::plain();
    let (home, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let home_dir = home.path().to_str().unwrap();
    let pgpass = home.path().join(".pgpass");
    let line = format!("# ours\n127.0.0.1:{}:postgres:{SUPERUSER}:{}\n", pg.port, escaped(PASSWORD));
    write(&pgpass, &line, 0o600);
    let conn = format!(
        r#"{{"conn_type": "postgres", "host": "127.0.0.1", "port": {}, "login": "{SUPERUSER}", "schema": "postgres"}}"#,
        pg.port
    );
    let env = [("AIRFLOW_CONN_NOPW", conn.as_str()), ("HOME", home_dir)];
    let args = ["--conn-id", "nopw", "--allow-host", "127.0.0.1", "records", "--sql", "select 1"];
    assert_eq!(stdout(&pghook(root.path(), &env, &args)), "[[1]]");
    // Open to others: passed over with libpq's warning, and the login fails.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = pghook(root.path(), &env, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("has group or world access"), "{err}");
    // A password file the connection names elsewhere: out of reach, with a
    // warning, until --allow-config-path opens it. Never the whole home.
    let elsewhere = tempfile::tempdir().unwrap();
    let named = elsewhere.path().join("pgpass");
    write(&named, &line, 0o600);
    let conn = format!(
        r#"{{"conn_type": "postgres", "host": "127.0.0.1", "port": {}, "login": "{SUPERUSER}", "schema": "postgres", "extra": {{"passfile": "{}"}}}}"#,
        pg.port,
        named.display()
    );
    let env = [("AIRFLOW_CONN_NOPW", conn.as_str()), ("HOME", home_dir)];
    let out = pghook(root.path(), &env, &args);
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the file root"), "{out:?}");
    let mut opened = vec!["--allow-config-path", named.to_str().unwrap()];
    opened.extend(args);
    assert_eq!(stdout(&pghook(root.path(), &env, &opened)), "[[1]]");
    std::fs::write(home.path().join("secret"), "x").unwrap();
    let probe = r#"{"conn_type": "postgres", "host": "127.0.0.1", "login": "u", "extra": {"sslmode": "require", "sslrootcert": "HOME/secret"}}"#
        .replace("HOME", home_dir);
    let out = pghook(root.path(), &[("AIRFLOW_CONN_NOPW", probe.as_str()), ("HOME", home_dir)], &args);
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the file root"), "{out:?}");
}

#[test]
fn a_service_from_the_service_file() {
    let pg = Cluster::plain();
    let db = pg.create_database("libpq_service");
    let (home, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let service =
        format!("[warehouse]\nhost=127.0.0.1\nport={}\ndbname={db}\napplication_name=from-service\n", pg.port);
    write(&home.path().join(".pg_service.conf"), &service, 0o644);
    let conn = format!(
        r#"{{"conn_type": "postgres", "login": "{SUPERUSER}", "password": "{PASSWORD}", "extra": {{"service": "warehouse"}}}}"#
    );
    let home_dir = home.path().to_str().unwrap();
    let env = [("AIRFLOW_CONN_SVC", conn.as_str()), ("HOME", home_dir)];
    let sql = "select current_database(), current_setting('application_name')";
    let args = ["--conn-id", "svc", "--allow-host", "127.0.0.1", "records", "--sql", sql];
    assert_eq!(stdout(&pghook(root.path(), &env, &args)), format!(r#"[["{db}","from-service"]]"#));
    // PGSERVICE names it too; an unknown service is libpq's error.
    let bare = format!(r#"{{"conn_type": "postgres", "login": "{SUPERUSER}", "password": "{PASSWORD}"}}"#);
    let env = [("AIRFLOW_CONN_SVC", bare.as_str()), ("HOME", home_dir), ("PGSERVICE", "warehouse")];
    assert_eq!(stdout(&pghook(root.path(), &env, &args)), format!(r#"[["{db}","from-service"]]"#));
    let env = [("AIRFLOW_CONN_SVC", bare.as_str()), ("HOME", home_dir), ("PGSERVICE", "nowhere")];
    let out = pghook(root.path(), &env, &args);
    assert!(String::from_utf8_lossy(&out.stderr).contains("definition of service \"nowhere\" not found"));
}

#[test]
fn certificates_from_the_home_directory_and_the_platform() {
    let pg = Cluster::tls();
    let files = pg.tls.as_ref().unwrap();
    let (home, root) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let dot = home.path().join(".postgresql");
    write(&dot.join("root.crt"), &read(&files.ca), 0o644);
    write(&dot.join("postgresql.crt"), &read(&files.client_cert), 0o644);
    write(&dot.join("postgresql.key"), &read(&files.client_key), 0o600);
    // certuser logs in by certificate: every file comes from ~/.postgresql.
    let conn = format!(
        r#"{{"conn_type": "postgres", "host": "localhost", "port": {}, "login": "certuser", "schema": "postgres", "extra": {{"sslmode": "verify-full"}}}}"#,
        pg.port
    );
    let home_dir = home.path().to_str().unwrap();
    let env = [("AIRFLOW_CONN_CERT", conn.as_str()), ("HOME", home_dir)];
    let sql = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";
    let args = ["--conn-id", "cert", "--allow-host", "localhost", "records", "--sql", sql];
    assert_eq!(stdout(&pghook(root.path(), &env, &args)), "[[true]]");
    // A default root file that is there but cannot be read (a link out of
    // ~/.postgresql) fails; it never turns require's check off.
    let outside = tempfile::tempdir().unwrap();
    write(&outside.path().join("ca.crt"), &read(&files.other_ca), 0o644);
    std::fs::remove_file(dot.join("root.crt")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("ca.crt"), dot.join("root.crt")).unwrap();
    let out = pghook(root.path(), &[("AIRFLOW_CONN_CERT", conn.as_str()), ("HOME", home_dir)], &args);
    assert!(!out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("root.crt"), "{out:?}");
    // sslrootcert=system: the platform's roots, here the test CA by SSL_CERT_FILE.
    let system = format!(
        r#"{{"conn_type": "postgres", "host": "localhost", "port": {}, "login": "{SUPERUSER}", "password": "{PASSWORD}", "schema": "postgres", "extra": {{"sslrootcert": "system"}}}}"#,
        pg.port
    );
    let ca = files.ca.to_str().unwrap();
    let env = [("AIRFLOW_CONN_CERT", system.as_str()), ("SSL_CERT_FILE", ca)];
    assert_eq!(stdout(&pghook(root.path(), &env, &args)), "[[true]]");
    // The platform's own roots do not know the test CA; and verify-full is the default.
    let env = [("AIRFLOW_CONN_CERT", system.as_str()), ("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")];
    let out = pghook(root.path(), &env, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UnknownIssuer") || err.contains("unknown issuer"), "{err}");
}

#[tokio::test]
async fn through_the_api_files_follow_the_tenant_rules() {
    let pg = Cluster::plain();
    let (root, config) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let line = format!("*:*:*:{SUPERUSER}:{}\n", escaped(PASSWORD));
    write(&root.path().join("pgpass"), &line, 0o600);
    write(&config.path().join("pgpass"), &line, 0o600);
    let conn = |passfile: &str| {
        serde_json::json!({
            "conn_type": "postgres", "host": "127.0.0.1", "port": pg.port, "login": SUPERUSER,
            "schema": "postgres", "extra": {"passfile": passfile},
        })
        .to_string()
    };
    let select = |policy: Policy, passfile: String| async move {
        let tenant = pghook_tests::runtime()
            .tenant(policy.with_connections(pghook::MapConnections::new().with("c", conn(&passfile))));
        tenant.hook(HookArgs::conn_id("c")).get_first("select 1", None).await
    };
    let base = || Policy::new(root.path()).allow_host("127.0.0.1");
    // A password file under the file root.
    let row = select(base(), "pgpass".into()).await.unwrap();
    assert_eq!(row.rows.to_values().unwrap()[0][0], Value::Int(1));
    // Outside it: not read (the login fails), unless the policy opens its directory.
    let outside = config.path().join("pgpass").to_str().unwrap().to_string();
    let e = select(base(), outside.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let row = select(base().allow_config_path(config.path()), outside).await.unwrap();
    assert_eq!(row.rows.to_values().unwrap()[0][0], Value::Int(1));
}
