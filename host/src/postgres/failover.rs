//! Reaching one acceptable server of a session's endpoints, as libpq does
//! with a host list and target_session_attrs: each endpoint in turn
//! (shuffled once with load_balance_hosts), each attempt bounded by
//! connect_timeout on its own, the new session kept only if its server is
//! what the WIT `target-session` asks for; when none is, one error naming
//! each endpoint and why.

use std::time::Duration;

use rand::seq::SliceRandom;
use tokio_postgres::config::{SslMode as PgSslMode, SslNegotiation};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::{Opened, Planned, pg_config, pg_error, spawn_driver};
use crate::bindings::postgres::{AuthRequirement, ConnectConfig, Encrypt, TargetSession};
use crate::bindings::types::{Error as WitError, ErrorKind};
use crate::error::wit;
use crate::policy::{Destination, Outbound, Policy};
use crate::tls::MakeRustls;

/// Open a session on the first acceptable endpoint. Every endpoint is
/// checked against the policy and the embedder's check before any socket
/// opens.
pub(super) async fn open(cfg: &ConnectConfig, policy: &Policy) -> Result<Opened, WitError> {
    let Planned { config, outbound, passwords } = pg_config(cfg, policy)?;
    if let Some(check) = &policy.connect_check {
        for server in &outbound {
            check.check(server).await.map_err(|e| wit(ErrorKind::Denied, e.message()))?;
        }
    }
    let encryption = match ssl_modes(cfg.tls.encrypt, cfg.require_auth.is_some()) {
        Some((first, fallback)) if cfg.require_auth.is_some() || outbound.iter().any(|server| !on_socket(server)) => {
            let make = crate::tls::connector(&cfg.tls)?;
            Some(Encryption { make, first, fallback, watch: cfg.require_auth.clone() })
        }
        _ => None,
    };
    let mut servers: Vec<(Outbound, Option<String>)> = outbound.into_iter().zip(passwords).collect();
    if cfg.load_balance_hosts {
        servers.shuffle(&mut rand::rng());
    }
    let limit = cfg.connect_timeout_seconds.map(|s| Duration::from_secs(s.into()));
    let mut failures = Vec::new();
    for &wanted in passes(cfg.target_session) {
        for (server, password) in &servers {
            let mut config = config.clone();
            if let Some(password) = password {
                config.password(password);
            }
            match attempt(&config, server, encryption.as_ref(), wanted, limit).await {
                Ok(opened) => return Ok(opened),
                // As libpq: once a server refuses the login, no other is tried.
                Err(failure) if refused_login(&failure) => {
                    failures.push(failure);
                    return Err(none_acceptable(failures));
                }
                Err(failure) => failures.push(failure),
            }
        }
    }
    Err(none_acceptable(failures))
}

/// Whether the server refused the login (SQLSTATE class 28: a wrong
/// password, no pg_hba entry...).
fn refused_login(failure: &WitError) -> bool {
    failure.sqlstate.as_deref().is_some_and(|state| state.starts_with("28"))
}

/// What one pass over the endpoints asks of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
}

/// The passes over the endpoints for `target`: one, but prefer-standby
/// looks for a standby first and then takes any server.
fn passes(target: TargetSession) -> &'static [Wanted] {
    match target {
        TargetSession::Any => &[Wanted::Any],
        TargetSession::ReadWrite => &[Wanted::ReadWrite],
        TargetSession::ReadOnly => &[Wanted::ReadOnly],
        TargetSession::Primary => &[Wanted::Primary],
        TargetSession::Standby => &[Wanted::Standby],
        TargetSession::PreferStandby => &[Wanted::Standby, Wanted::Any],
    }
}

/// What a new session tells of its server.
#[derive(Debug, Clone, Copy)]
struct ServerState {
    /// `transaction_read_only`: on for a standby, or where
    /// `default_transaction_read_only` is on.
    read_only: bool,
    /// `pg_is_in_recovery()`.
    in_hot_standby: bool,
}

impl Wanted {
    /// Why a server in `state` is not acceptable, in libpq's words; `None`
    /// when it is.
    fn rejection(self, state: ServerState) -> Option<&'static str> {
        match self {
            Wanted::ReadWrite if state.read_only => Some("session is read-only"),
            Wanted::ReadOnly if !state.read_only => Some("session is not read-only"),
            Wanted::Primary if state.in_hot_standby => Some("server is in hot standby mode"),
            Wanted::Standby if !state.in_hot_standby => Some("server is not in hot standby mode"),
            _ => None,
        }
    }
}

/// The one round trip that tells a [`ServerState`].
const SERVER_STATE: &str = "SELECT pg_catalog.current_setting('transaction_read_only'), pg_catalog.pg_is_in_recovery()";

/// Ask the server behind `client` for its [`ServerState`].
async fn server_state(client: &Client, during: &str) -> Result<ServerState, WitError> {
    let messages = client.simple_query(SERVER_STATE).await.map_err(|e| pg_error(e, ErrorKind::Connect, during))?;
    let row = messages.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let cell = |i: usize| row.and_then(|row| row.try_get(i).ok().flatten());
    match (cell(0), cell(1)) {
        (Some(read_only @ ("on" | "off")), Some(recovery @ ("t" | "f"))) => {
            Ok(ServerState { read_only: read_only == "on", in_hot_standby: recovery == "t" })
        }
        _ => Err(wit(
            ErrorKind::Connect,
            format!("{during}: the server did not say whether it is read-only and in hot standby"),
        )),
    }
}

/// How TCP endpoints are encrypted: tokio-postgres' sslmode for the first
/// try and, if that fails, for a second; and the TLS setup.
struct Encryption {
    make: MakeRustls,
    first: PgSslMode,
    fallback: Option<PgSslMode>,
    /// require_auth: the connector negotiates as tokio-postgres would for
    /// each sslmode and watches the login (tls::Negotiate, auth_watch).
    watch: Option<AuthRequirement>,
}

/// tokio-postgres' sslmode for each try, as `encrypt` says; `None`: plain,
/// without the connector, which a watched login (`watched`) needs even then.
fn ssl_modes(encrypt: Encrypt, watched: bool) -> Option<(PgSslMode, Option<PgSslMode>)> {
    match encrypt {
        Encrypt::Never if watched => Some((PgSslMode::Disable, None)),
        Encrypt::Never => None,
        Encrypt::TryPlainFirst => Some((PgSslMode::Disable, Some(PgSslMode::Require))),
        Encrypt::TryTlsFirst => Some((PgSslMode::Prefer, None)),
        Encrypt::Always => Some((PgSslMode::Require, None)),
    }
}

/// Unix sockets never use TLS, as in libpq.
fn on_socket(server: &Outbound) -> bool {
    matches!(server.destination, Destination::Socket(_))
}

/// One attempt at `server`, bounded by `limit` (libpq's connect_timeout):
/// connect, log in, and keep the session if its server is what `wanted`
/// asks for. A session that is not is closed.
async fn attempt(
    base: &Config,
    server: &Outbound,
    encryption: Option<&Encryption>,
    wanted: Wanted,
    limit: Option<Duration>,
) -> Result<Opened, WitError> {
    let during = format!("connection to {} failed", name(server));
    let work = async {
        let config = for_server(base, server);
        let opened = match (encryption, &server.destination) {
            (Some(encryption), Destination::Socket(dir)) => match &encryption.watch {
                Some(requirement) => {
                    connect_socket_watched(config, dir, server.port, encryption, requirement, &during).await?
                }
                None => connect_plain(config).await.map_err(|e| pg_error(e, ErrorKind::Connect, &during))?,
            },
            (Some(encryption), _) => {
                connect_tls(config, encryption).await.map_err(|e| pg_error(e, ErrorKind::Connect, &during))?
            }
            (None, _) => connect_plain(config).await.map_err(|e| pg_error(e, ErrorKind::Connect, &during))?,
        };
        if wanted != Wanted::Any {
            let state = server_state(&opened.client, &during).await?;
            if let Some(reason) = wanted.rejection(state) {
                return Err(wit(ErrorKind::Connect, format!("{during}: {reason}")));
            }
        }
        Ok(opened)
    };
    match limit {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(wit(ErrorKind::Connect, format!("{during}: timeout expired")))),
        None => work.await,
    }
}

/// The session's config for `server` alone.
fn for_server(base: &Config, server: &Outbound) -> Config {
    let mut config = base.clone();
    match &server.destination {
        Destination::Socket(dir) => config.host_path(dir),
        Destination::Ip(ip) => config.host(ip.to_string()),
        Destination::Name(name) => config.host(name),
    };
    if let Some(ip) = server.address {
        config.hostaddr(ip);
    }
    config.port(server.port);
    config
}

/// `server` as errors name it.
fn name(server: &Outbound) -> String {
    match &server.destination {
        Destination::Socket(dir) => format!("{}:{}", dir.display(), server.port),
        Destination::Ip(ip) => std::net::SocketAddr::new(*ip, server.port).to_string(),
        Destination::Name(name) => format!("{name}:{}", server.port),
    }
}

async fn connect_plain(mut config: Config) -> Result<Opened, tokio_postgres::Error> {
    config.ssl_mode(PgSslMode::Disable);
    let (client, connection) = config.connect(NoTls).await?;
    let notices = super::Notices::default();
    let driver = spawn_driver(connection, notices.clone());
    Ok(Opened { client, notices, tls: None, socket: None, driver })
}

/// A watched login (require_auth) over the Unix socket in `dir`: the host
/// opens the socket itself, since tokio-postgres hands a connector only TCP
/// streams, and logs in over it plain, as libpq does on a socket.
async fn connect_socket_watched(
    mut config: Config,
    dir: &std::path::Path,
    port: u16,
    encryption: &Encryption,
    requirement: &AuthRequirement,
    during: &str,
) -> Result<Opened, WitError> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .map_err(|e| wit(ErrorKind::Connect, format!("{during}: {}: {e}", path.display())))?;
    // Direct: tokio-postgres hands the connector the stream without asking
    // for TLS; the connector, negotiating as for `disable`, only watches.
    config.ssl_mode(PgSslMode::Require).ssl_negotiation(SslNegotiation::Direct);
    let mut make = encryption.make.watching(PgSslMode::Disable, requirement);
    let connect = tokio_postgres::tls::MakeTlsConnect::<tokio::net::UnixStream>::make_tls_connect(&mut make, "")
        .map_err(|e| wit(ErrorKind::Connect, format!("{during}: {e}")))?;
    let (client, connection) =
        config.connect_raw(stream, connect).await.map_err(|e| pg_error(e, ErrorKind::Connect, during))?;
    let notices = super::Notices::default();
    let driver = spawn_driver(connection, notices.clone());
    Ok(Opened { client, notices, tls: Some(make.for_cancel()), socket: Some(path), driver })
}

async fn connect_tls(config: Config, encryption: &Encryption) -> Result<Opened, tokio_postgres::Error> {
    let try_mode = |mode: PgSslMode| {
        let mut config = config.clone();
        let make = match &encryption.watch {
            None => {
                config.ssl_mode(mode);
                encryption.make.clone()
            }
            // tokio-postgres hands the connector the bare socket, so it sees
            // the login of a plain session too.
            Some(requirement) => {
                config.ssl_mode(PgSslMode::Require).ssl_negotiation(SslNegotiation::Direct);
                encryption.make.watching(mode, requirement)
            }
        };
        async move { config.connect(make.clone()).await.map(|connected| (connected, make)) }
    };
    let ((client, connection), make) = match (try_mode(encryption.first).await, encryption.fallback) {
        (Err(_), Some(fallback)) => try_mode(fallback).await,
        (first, _) => first,
    }?;
    let notices = super::Notices::default();
    let driver = spawn_driver(connection, notices.clone());
    Ok(Opened { client, notices, tls: Some(make.for_cancel()), socket: None, driver })
}

/// One error for every failed attempt, in order, each naming its endpoint
/// and why: `tls` if every attempt failed at TLS, else `connect`; the
/// SQLSTATE only if every attempt had the same (a wrong password
/// everywhere).
fn none_acceptable(failures: Vec<WitError>) -> WitError {
    let kind = match failures.iter().all(|failure| failure.kind == ErrorKind::Tls) {
        true => ErrorKind::Tls,
        false => ErrorKind::Connect,
    };
    let sqlstate = failures
        .first()
        .and_then(|first| first.sqlstate.clone())
        .filter(|code| failures.iter().all(|failure| failure.sqlstate.as_ref() == Some(code)));
    let message = failures.iter().map(|failure| failure.message.as_str()).collect::<Vec<_>>().join("; ");
    WitError { kind, message, sqlstate }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_target_accepts() {
        use TargetSession as T;
        const READ_ONLY: Option<&str> = Some("session is read-only");
        const NOT_READ_ONLY: Option<&str> = Some("session is not read-only");
        const STANDBY: Option<&str> = Some("server is in hot standby mode");
        const NOT_STANDBY: Option<&str> = Some("server is not in hot standby mode");
        // A primary, a primary whose sessions are read-only, a standby.
        let servers = [(false, false), (true, false), (true, true)]
            .map(|(read_only, in_hot_standby)| ServerState { read_only, in_hot_standby });
        // Each target's passes, and what its first pass says of each server.
        type Verdicts = [Option<&'static str>; 3];
        let cases: [(T, &[Wanted], Verdicts); 6] = [
            (T::Any, &[Wanted::Any], [None, None, None]),
            (T::ReadWrite, &[Wanted::ReadWrite], [None, READ_ONLY, READ_ONLY]),
            (T::ReadOnly, &[Wanted::ReadOnly], [NOT_READ_ONLY, None, None]),
            (T::Primary, &[Wanted::Primary], [None, None, STANDBY]),
            (T::Standby, &[Wanted::Standby], [NOT_STANDBY, NOT_STANDBY, None]),
            (T::PreferStandby, &[Wanted::Standby, Wanted::Any], [NOT_STANDBY, NOT_STANDBY, None]),
        ];
        for (target, wanted, verdicts) in cases {
            assert_eq!(passes(target), wanted, "{target:?}");
            assert_eq!(servers.map(|server| wanted[0].rejection(server)), verdicts, "{target:?}");
        }
    }

    fn failure(kind: ErrorKind, message: &str, sqlstate: Option<&str>) -> WitError {
        WitError { kind, message: message.into(), sqlstate: sqlstate.map(Into::into) }
    }

    #[test]
    fn one_error_names_every_failed_attempt() {
        let refused = failure(ErrorKind::Connect, "connection to a:1 failed: refused", None);
        let standby = failure(ErrorKind::Connect, "connection to b:2 failed: server is in hot standby mode", None);
        let tls = failure(ErrorKind::Tls, "connection to c:3 failed: bad certificate", None);
        let password =
            |host: &str| failure(ErrorKind::Connect, &format!("connection to {host} failed: password"), Some("28P01"));
        // One attempt: its error as it is.
        assert_eq!(none_acceptable(vec![tls.clone()]), tls);
        assert_eq!(none_acceptable(vec![password("a:1")]), password("a:1"));
        // Several: every one, in order.
        let both = none_acceptable(vec![refused.clone(), standby.clone()]);
        assert_eq!(both.kind, ErrorKind::Connect);
        assert_eq!(
            both.message,
            "connection to a:1 failed: refused; connection to b:2 failed: server is in hot standby mode"
        );
        // tls only if every attempt failed at TLS; a SQLSTATE only if all share it.
        assert_eq!(none_acceptable(vec![tls.clone(), tls.clone()]).kind, ErrorKind::Tls);
        assert_eq!(none_acceptable(vec![tls, refused.clone()]).kind, ErrorKind::Connect);
        assert_eq!(none_acceptable(vec![password("a:1"), password("b:2")]).sqlstate.as_deref(), Some("28P01"));
        assert_eq!(none_acceptable(vec![password("a:1"), refused]).sqlstate, None);
    }
}
