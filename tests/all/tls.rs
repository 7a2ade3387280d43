//! libpq's sslmodes, with rustls, against a cluster that requires TLS and
//! has its own test CA. The server's certificate names only `localhost`.

use pghook::{ErrorKind, HookArgs, Value};
use pghook_tests::{Cluster, PASSWORD, Signature, tenant};

/// A JSON connection for `user` on `host` to `pg`, with `extra` as the extras.
fn conn(pg: &Cluster, host: &str, user: &str, extra: serde_json::Value) -> String {
    serde_json::json!({
        "conn_type": "postgres",
        "host": host,
        "port": pg.port,
        "login": user,
        "password": if user == "postgres" { Some(PASSWORD) } else { None },
        "schema": "postgres",
        "extra": extra,
    })
    .to_string()
}

async fn ssl_in_use(host: &str, user: &str, extra: serde_json::Value) -> Result<bool, pghook::Error> {
    ssl_in_use_on(Cluster::tls(), host, user, extra).await
}

/// Whether a session of `user` to `host` on the TLS cluster `pg` is encrypted.
async fn ssl_in_use_on(pg: &Cluster, host: &str, user: &str, extra: serde_json::Value) -> Result<bool, pghook::Error> {
    let files = pg.tls.as_ref().unwrap();
    let stored = conn(pg, host, user, extra);
    let t = tenant(&files.dir, &[("c", &stored)]);
    let r = t
        .hook(HookArgs::conn_id("c"))
        .get_first("select ssl from pg_stat_ssl where pid = pg_backend_pid()", None)
        .await?;
    Ok(r.rows.to_values().unwrap()[0][0] == Value::Boolean(true))
}

#[tokio::test]
async fn modes_that_encrypt_without_checking() {
    let pg = Cluster::tls();
    let ca = pg.tls.as_ref().unwrap().other_ca.to_string_lossy().into_owned();
    for mode in ["prefer", "require", "allow"] {
        assert!(ssl_in_use("127.0.0.1", "postgres", serde_json::json!({"sslmode": mode})).await.unwrap(), "{mode}");
    }
    // The default is prefer.
    assert!(ssl_in_use("127.0.0.1", "postgres", serde_json::json!({})).await.unwrap());
    // disable cannot get past a server that insists on TLS.
    let e = ssl_in_use("127.0.0.1", "postgres", serde_json::json!({"sslmode": "disable"})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert!(e.message().contains("no encryption"), "{e}");
    // require with a root certificate checks the chain, as libpq does.
    let e = ssl_in_use("127.0.0.1", "postgres", serde_json::json!({"sslmode": "require", "sslrootcert": ca}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

#[tokio::test]
async fn verify_ca_and_verify_full() {
    let pg = Cluster::tls();
    let files = pg.tls.as_ref().unwrap();
    let ca = files.ca.to_string_lossy().into_owned();
    let other = files.other_ca.to_string_lossy().into_owned();
    let verify = |mode: &str, root: &str| serde_json::json!({"sslmode": mode, "sslrootcert": root});
    // verify-ca accepts a name mismatch, verify-full does not.
    assert!(ssl_in_use("127.0.0.1", "postgres", verify("verify-ca", &ca)).await.unwrap());
    let e = ssl_in_use("127.0.0.1", "postgres", verify("verify-full", &ca)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("not valid for name") || e.message().contains("NotValidForName"), "{e}");
    assert!(ssl_in_use("localhost", "postgres", verify("verify-full", &ca)).await.unwrap());
    // The wrong CA fails both.
    for mode in ["verify-ca", "verify-full"] {
        let e = ssl_in_use("localhost", "postgres", verify(mode, &other)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Tls, "{mode}: {e}");
        assert!(e.message().contains("UnknownIssuer") || e.message().contains("unknown issuer"), "{e}");
    }
    // Relative paths resolve under the tenant's file root.
    assert!(ssl_in_use("localhost", "postgres", verify("verify-full", "ca.crt")).await.unwrap());
    // A missing root certificate is a clear error before connecting.
    let e = ssl_in_use("localhost", "postgres", serde_json::json!({"sslmode": "verify-full"})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let e = ssl_in_use("localhost", "postgres", verify("verify-full", "missing.crt")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.message().contains("root certificate file \"missing.crt\" does not exist"), "{e}");
    // Certificates outside the root are refused.
    let e = ssl_in_use("localhost", "postgres", verify("verify-full", "/etc/ssl/certs/ca-certificates.crt"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
}

#[tokio::test]
async fn client_certificate_login() {
    let pg = Cluster::tls();
    let files = pg.tls.as_ref().unwrap();
    let extra = serde_json::json!({
        "sslmode": "verify-full",
        "sslrootcert": files.ca,
        "sslcert": files.client_cert,
        "sslkey": files.client_key,
    });
    assert!(ssl_in_use("localhost", "certuser", extra.clone()).await.unwrap());
    // Without the certificate the cert login is refused.
    let mut without = extra;
    without.as_object_mut().unwrap().remove("sslcert");
    without.as_object_mut().unwrap().remove("sslkey");
    let e = ssl_in_use("localhost", "certuser", without).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert_eq!(e.sqlstate().map(|s| s.code()), Some("28000"), "{e}");
    // A certificate without its key is a configuration error, as in libpq.
    let e = ssl_in_use("localhost", "certuser", serde_json::json!({"sslcert": files.client_cert})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn revocation_lists() {
    let pg = Cluster::tls();
    let files = pg.tls.as_ref().unwrap();
    let with_crl =
        |key: &str, value: &str| serde_json::json!({"sslmode": "verify-full", "sslrootcert": files.ca, key: value});
    let revoked = files.revoked_crl.to_str().unwrap();
    let e = ssl_in_use("localhost", "postgres", with_crl("sslcrl", revoked)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().to_lowercase().contains("revoked"), "{e}");
    assert!(ssl_in_use("localhost", "postgres", with_crl("sslcrl", files.empty_crl.to_str().unwrap())).await.unwrap());
    // A missing CRL is skipped, as in libpq; a directory of CRLs is read whole.
    assert!(ssl_in_use("localhost", "postgres", with_crl("sslcrl", "missing.crl")).await.unwrap());
    let dir = tempfile::tempdir_in(&files.dir).unwrap();
    std::fs::copy(&files.revoked_crl, dir.path().join("0a1b2c3d.r0")).unwrap();
    let e = ssl_in_use("localhost", "postgres", with_crl("sslcrldir", dir.path().to_str().unwrap())).await.unwrap_err();
    assert!(e.message().to_lowercase().contains("revoked"), "{e}");
    // A directory without a list fails closed, as libpq's check does.
    let empty = tempfile::tempdir_in(&files.dir).unwrap();
    let e =
        ssl_in_use("localhost", "postgres", with_crl("sslcrldir", empty.path().to_str().unwrap())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    // Not a CRL at all: an error, never a silently skipped check.
    let e = ssl_in_use("localhost", "postgres", with_crl("sslcrl", files.ca.to_str().unwrap())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

#[tokio::test]
async fn channel_binding_over_tls() {
    let require = serde_json::json!({"sslmode": "require", "channel_binding": "require"});
    assert!(ssl_in_use("127.0.0.1", "postgres", require).await.unwrap());
}

/// tls-server-end-point hashes the certificate with the hash of its own
/// signature, as PostgreSQL does: SHA-384 here, where SHA-256 would fail the
/// server's check ("SCRAM channel binding check failed").
#[tokio::test]
async fn channel_binding_with_a_sha384_signed_certificate() {
    let pg = Cluster::start_tls(Signature::EcdsaP384Sha384);
    let require = serde_json::json!({"sslmode": "require", "channel_binding": "require"});
    let bound = ssl_in_use_on(&pg, "127.0.0.1", "postgres", require).await;
    pg.stop();
    assert!(bound.unwrap());
}

/// An Ed25519 signature has no hash of its own: there is nothing to bind
/// to. With channel_binding=prefer (the default) the login goes on unbound;
/// tokio-postgres-rustls binds with SHA-512 there, which PostgreSQL's
/// server cannot check ("could not find digest for NID UNDEF"), and fails
/// it: why host/src/tls.rs keeps its own connector. With
/// channel_binding=require it fails at the handshake, saying why.
#[tokio::test]
async fn an_ed25519_certificate_logs_in_unbound_where_tokio_postgres_rustls_fails() {
    let pg = Cluster::start_tls(Signature::Ed25519);
    let prefer = serde_json::json!({"sslmode": "require", "channel_binding": "prefer"});
    let unbound = ssl_in_use_on(&pg, "127.0.0.1", "postgres", prefer).await;
    let require = serde_json::json!({"sslmode": "require", "channel_binding": "require"});
    let refused = ssl_in_use_on(&pg, "127.0.0.1", "postgres", require).await;
    pg.stop();
    assert!(unbound.unwrap());
    let e = refused.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(
        e.message().contains(
            "channel_binding=require, but the server certificate cannot be bound to: its signature algorithm Ed25519 names no hash"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn a_hostaddr_means_tcp_and_tls_even_with_a_socket_host() {
    // libpq connects to hostaddr over TCP whatever host says; sslmode then
    // applies, so a socket-looking host cannot turn TLS off.
    let pg = Cluster::tls();
    let dir = pg.socket_dir.to_str().unwrap();
    for mode in ["prefer", "require"] {
        let extra = serde_json::json!({"sslmode": mode, "hostaddr": "127.0.0.1"});
        assert!(ssl_in_use(dir, "postgres", extra).await.unwrap(), "{mode}");
    }
    // verify-full has no host name to match (libpq fails it too).
    let ca = pg.tls.as_ref().unwrap().ca.to_string_lossy().into_owned();
    let extra = serde_json::json!({"sslmode": "verify-full", "sslrootcert": ca, "hostaddr": "127.0.0.1"});
    let e = ssl_in_use(dir, "postgres", extra).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}
