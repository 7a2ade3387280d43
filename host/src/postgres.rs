//! PostgreSQL sessions: the `postgres` import. Connections are opened from
//! the guest's typed config; COPY data streams between file and socket here,
//! in bounded memory, and never enters the guest.

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt, TryStreamExt, pin_mut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio_postgres::config::{
    ChannelBinding as PgChannelBinding, LoadBalanceHosts, SslMode as PgSslMode, TargetSessionAttrs,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use wasmtime::component::Resource;

use crate::bindings::postgres::{ChannelBinding, ConnectConfig, Host, HostSession, SslMode, TargetSession};
use crate::bindings::types::{Column, Error as WitError, ErrorKind, Rowset, Value};
use crate::error::wit;
use crate::files::FileRoot;
use crate::policy::Policy;
use crate::progress::Progress;
use crate::runtime::State;
use crate::values::{Cell, supported};

/// How much of a file or a COPY stream is held in memory at once.
const CHUNK: usize = 256 << 10;
/// psycopg2 keeps the last 50 notices; so do we.
const MAX_NOTICES: usize = 50;

/// An open session, owned by the guest through a resource handle.
pub struct Session {
    client: Client,
    notices: Arc<Mutex<Vec<String>>>,
    /// Set while a statement runs. A call abandoned mid-statement (a
    /// timeout) never clears it, so dropping the session cancels the
    /// statement on the server.
    busy: AtomicBool,
    tls: Option<crate::tls::MakeRustls>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.busy.load(Ordering::SeqCst) {
            return;
        }
        // Ask the server to stop the statement nobody waits for any more.
        let token = self.client.cancel_token();
        let tls = self.tls.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(NoTls).await,
                };
            });
        }
    }
}

/// Map a tokio-postgres error to a WIT error of `kind` (`tls` when TLS
/// failed), keeping the server's message and SQLSTATE.
fn pg_error(e: tokio_postgres::Error, kind: ErrorKind, during: &str) -> WitError {
    if let Some(db) = e.as_db_error() {
        let mut message = format!("{during}: {}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            message += &format!(" ({detail})");
        }
        return WitError { kind, message, sqlstate: Some(db.code().code().to_string()) };
    }
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(&e);
    let mut tls = false;
    while let Some(s) = source {
        chain += &format!(": {s}");
        tls |= s.downcast_ref::<rustls::Error>().is_some()
            || s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()));
        source = s.source();
    }
    let kind = if tls { ErrorKind::Tls } else { kind };
    wit(kind, format!("{during}: {chain}"))
}

fn statement_error(e: tokio_postgres::Error) -> WitError {
    pg_error(e, ErrorKind::Database, "statement failed")
}

fn copy_error(e: tokio_postgres::Error) -> WitError {
    pg_error(e, ErrorKind::Database, "COPY failed")
}

/// The OS user, libpq's default user name.
fn os_user() -> Option<String> {
    ["USER", "LOGNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
}

/// Build the tokio-postgres config, checking every endpoint against the policy.
fn pg_config(cfg: &ConnectConfig, policy: &Policy) -> Result<(tokio_postgres::Config, bool, String), WitError> {
    let mut config = tokio_postgres::Config::new();
    let default_dir = policy.default_socket_dir.to_string_lossy().into_owned();
    if cfg.endpoints.is_empty() {
        return Err(wit(ErrorKind::Config, "no server to connect to: the endpoint list is empty"));
    }
    let endpoints: Vec<(String, Option<String>, u16)> = cfg
        .endpoints
        .iter()
        .map(|e| {
            let host = if e.host.is_empty() { default_dir.clone() } else { e.host.clone() };
            (host, e.hostaddr.clone(), e.port)
        })
        .collect();
    if endpoints.iter().any(|(_, a, _)| a.is_some()) && endpoints.iter().any(|(_, a, _)| a.is_none()) {
        return Err(wit(ErrorKind::Config, "hostaddr must be given for every host or for none"));
    }
    let mut all_unix = true;
    for (host, hostaddr, port) in &endpoints {
        for name in std::iter::once(host).chain(hostaddr) {
            if !policy.host_allowed(name) {
                return Err(wit(ErrorKind::Denied, format!("host {name} is not allowed by this tenant's policy")));
            }
        }
        if host.starts_with('/') {
            config.host_path(host);
        } else {
            all_unix = false;
            config.host(host);
        }
        if let Some(addr) = hostaddr {
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| wit(ErrorKind::Config, format!("could not parse network address \"{addr}\"")))?;
            config.hostaddr(ip);
        }
        config.port(*port);
    }
    let user = cfg
        .user
        .clone()
        .or_else(os_user)
        .ok_or_else(|| wit(ErrorKind::Config, "no user: set the connection's login"))?;
    config.user(&user);
    if let Some(password) = &cfg.password {
        config.password(password);
    }
    config.dbname(cfg.dbname.as_deref().unwrap_or(&user));
    if let Some(options) = &cfg.options {
        config.options(options);
    }
    if let Some(name) = &cfg.application_name {
        config.application_name(name);
    }
    if let Some(secs) = cfg.connect_timeout_seconds {
        config.connect_timeout(Duration::from_secs(secs.into()));
    }
    match &cfg.keepalives {
        None => {
            config.keepalives(false);
        }
        Some(k) => {
            config.keepalives(true);
            if let Some(idle) = k.idle_seconds {
                config.keepalives_idle(Duration::from_secs(idle.into()));
            }
            if let Some(interval) = k.interval_seconds {
                config.keepalives_interval(Duration::from_secs(interval.into()));
            }
            if let Some(count) = k.count {
                config.keepalives_retries(count);
            }
        }
    }
    if let Some(ms) = cfg.tcp_user_timeout_ms {
        config.tcp_user_timeout(Duration::from_millis(ms.into()));
    }
    config.target_session_attrs(match cfg.target_session {
        TargetSession::Any => TargetSessionAttrs::Any,
        TargetSession::ReadWrite => TargetSessionAttrs::ReadWrite,
    });
    config.load_balance_hosts(if cfg.load_balance_hosts {
        LoadBalanceHosts::Random
    } else {
        LoadBalanceHosts::Disable
    });
    config.channel_binding(match cfg.channel_binding {
        ChannelBinding::Disable => PgChannelBinding::Disable,
        ChannelBinding::Prefer => PgChannelBinding::Prefer,
        ChannelBinding::Require => PgChannelBinding::Require,
    });
    let target = endpoints.iter().map(|(h, _, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(",");
    Ok((config, all_unix, target))
}

/// Open a session, checking every endpoint and file against the tenant's
/// policy.
pub async fn connect(cfg: &ConnectConfig, policy: &Policy, files: &FileRoot) -> Result<Session, WitError> {
    let (client, notices, tls) = open(cfg, policy, files).await?;
    Ok(Session { client, notices, busy: AtomicBool::new(false), tls })
}

/// Open a bare client for an embedder (`get_conn`), under the same checks.
pub async fn connect_client(cfg: &ConnectConfig, policy: &Policy, files: &FileRoot) -> Result<Client, WitError> {
    Ok(open(cfg, policy, files).await?.0)
}

type Notices = Arc<Mutex<Vec<String>>>;

async fn open(
    cfg: &ConnectConfig,
    policy: &Policy,
    files: &FileRoot,
) -> Result<(Client, Notices, Option<crate::tls::MakeRustls>), WitError> {
    let (mut config, all_unix, target) = pg_config(cfg, policy)?;
    let during = format!("connection to {target} failed");
    // libpq never uses TLS on Unix sockets, whatever sslmode says.
    let tls = if all_unix { None } else { crate::tls::client_config(&cfg.tls, files).await? };
    // libpq's connect_timeout bounds each whole attempt, handshake and
    // login included; tokio-postgres' bounds only the TCP connect.
    let limit = cfg.connect_timeout_seconds.map(|s| Duration::from_secs(s.into()));
    let timed_out = || wit(ErrorKind::Connect, format!("{during}: timeout expired"));
    let notices = Arc::new(Mutex::new(Vec::new()));
    let Some(tls) = tls else {
        config.ssl_mode(PgSslMode::Disable);
        let connected = within(limit, config.connect(NoTls)).await.ok_or_else(timed_out)?;
        let (client, connection) = connected.map_err(|e| pg_error(e, ErrorKind::Connect, &during))?;
        spawn_driver(connection, notices.clone());
        return Ok((client, notices, None));
    };
    let make = crate::tls::MakeRustls(tls);
    let attempt = |mode: PgSslMode| {
        let mut config = config.clone();
        config.ssl_mode(mode);
        let make = make.clone();
        async move { within(limit, config.connect(make)).await }
    };
    let connected = match cfg.tls.mode {
        // libpq's allow: plain first, TLS if the server insists.
        SslMode::Allow => match attempt(PgSslMode::Disable).await {
            Some(Ok(pair)) => Some(Ok(pair)),
            _ => attempt(PgSslMode::Require).await,
        },
        SslMode::Prefer => attempt(PgSslMode::Prefer).await,
        _ => attempt(PgSslMode::Require).await,
    };
    let (client, connection) =
        connected.ok_or_else(timed_out)?.map_err(|e| pg_error(e, ErrorKind::Connect, &during))?;
    spawn_driver(connection, notices.clone());
    Ok((client, notices, Some(make)))
}

/// Run `work` to completion, or `None` once `limit` (if any) has passed.
async fn within<T>(limit: Option<Duration>, work: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    }
}

/// Drive a connection in the background, collecting the server's notices.
fn spawn_driver<S, T>(mut connection: tokio_postgres::Connection<S, T>, notices: Arc<Mutex<Vec<String>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notice(notice)) => {
                    let mut notices = notices.lock().unwrap_or_else(|p| p.into_inner());
                    if notices.len() == MAX_NOTICES {
                        notices.remove(0);
                    }
                    notices.push(format!("{}:  {}", notice.severity(), notice.message()));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
}

fn cell_size(value: &Value) -> usize {
    16 + match value {
        Value::Numeric(s) | Value::Text(s) | Value::Json(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 0,
    }
}

impl Session {
    /// Run `work`, marking the session busy until it completes. Cleared only
    /// on completion: a dropped future leaves the mark for [`Session`]'s drop.
    async fn tracked<T>(&self, work: impl Future<Output = T>) -> T {
        self.busy.store(true, Ordering::SeqCst);
        let outcome = work.await;
        self.busy.store(false, Ordering::SeqCst);
        outcome
    }

    /// Run one statement and collect its rows, up to `max_bytes` of them.
    pub async fn query(&self, sql: &str, max_bytes: usize) -> Result<Rowset, WitError> {
        self.tracked(self.query_untracked(sql, max_bytes)).await
    }

    async fn query_untracked(&self, sql: &str, max_bytes: usize) -> Result<Rowset, WitError> {
        let statement = self.client.prepare(sql).await.map_err(statement_error)?;
        let columns: Vec<Column> = statement
            .columns()
            .iter()
            .map(|c| Column { name: c.name().to_string(), type_name: c.type_().name().to_string() })
            .collect();
        if let Some(c) = statement.columns().iter().find(|c| !supported(c.type_())) {
            return Err(wit(
                ErrorKind::Config,
                format!(
                    "column \"{}\" has type {}, which pghook cannot decode: cast it in the query, e.g. {}::text",
                    c.name(),
                    c.type_().name(),
                    c.name()
                ),
            ));
        }
        let stream = self
            .client
            .query_raw(&statement, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await
            .map_err(statement_error)?;
        pin_mut!(stream);
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = stream.try_next().await.map_err(statement_error)? {
            let mut values = Vec::with_capacity(row.len());
            for (i, column) in columns.iter().enumerate() {
                let Cell(value) =
                    row.try_get(i).map_err(|e| wit(ErrorKind::Database, format!("column \"{}\": {e}", column.name)))?;
                bytes += cell_size(&value);
                values.push(value);
            }
            if bytes > max_bytes {
                return Err(wit(
                    ErrorKind::Limit,
                    format!("the result is over this tenant's limit of {max_bytes} bytes: fetch fewer rows"),
                ));
            }
            rows.push(values);
        }
        let row_count = stream.rows_affected().unwrap_or(rows.len() as u64);
        Ok(Rowset { columns, rows, row_count })
    }

    /// Stream `file` into a `COPY ... FROM STDIN`.
    pub async fn copy_in(
        &self,
        sql: &str,
        file: tokio::fs::File,
        size: u64,
        progress: &dyn Progress,
    ) -> Result<u64, WitError> {
        self.tracked(self.copy_in_untracked(sql, file, size, progress)).await
    }

    async fn copy_in_untracked(
        &self,
        sql: &str,
        mut file: tokio::fs::File,
        size: u64,
        progress: &dyn Progress,
    ) -> Result<u64, WitError> {
        let sink = self.client.copy_in::<_, Bytes>(sql).await.map_err(copy_error)?;
        pin_mut!(sink);
        progress.start("loading", Some(size));
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            // On a read error the sink is dropped unfinished, which aborts the COPY.
            let n = file.read_buf(&mut buf).await.map_err(|e| wit(ErrorKind::Io, format!("reading the input: {e}")))?;
            if n == 0 {
                break;
            }
            sink.send(buf.split().freeze()).await.map_err(copy_error)?;
            progress.advance(n as u64);
        }
        let rows = sink.finish().await.map_err(copy_error)?;
        progress.finish();
        Ok(rows)
    }

    /// Stream a `COPY ... TO STDOUT` into `out`, returning the lines written.
    pub async fn copy_out(
        &self,
        sql: &str,
        out: &crate::files::AtomicFile,
        progress: &dyn Progress,
    ) -> Result<u64, WitError> {
        self.tracked(self.copy_out_untracked(sql, out, progress)).await
    }

    async fn copy_out_untracked(
        &self,
        sql: &str,
        out: &crate::files::AtomicFile,
        progress: &dyn Progress,
    ) -> Result<u64, WitError> {
        let stream = self.client.copy_out(sql).await.map_err(copy_error)?;
        pin_mut!(stream);
        progress.start("dumping", None);
        let mut writer = BufWriter::with_capacity(CHUNK, out.writer()?);
        let mut lines = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(copy_error)? {
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            writer.write_all(&chunk).await.map_err(|e| wit(ErrorKind::Io, format!("writing the output: {e}")))?;
            progress.advance(chunk.len() as u64);
        }
        writer.flush().await.map_err(|e| wit(ErrorKind::Io, format!("writing the output: {e}")))?;
        progress.finish();
        Ok(lines)
    }
}

impl Host for State {
    async fn connect(&mut self, config: ConnectConfig) -> Result<Resource<Session>, WitError> {
        let session = connect(&config, &self.policy, &self.files).await?;
        self.table.push(session).map_err(|e| wit(ErrorKind::Limit, format!("too many sessions: {e}")))
    }
}

impl State {
    fn session(&self, handle: &Resource<Session>) -> Result<&Session, WitError> {
        self.table.get(handle).map_err(|e| wit(ErrorKind::Config, format!("bad session handle: {e}")))
    }
}

impl HostSession for State {
    async fn query(&mut self, handle: Resource<Session>, sql: String) -> Result<Rowset, WitError> {
        let max = self.policy.max_result_bytes;
        self.session(&handle)?.query(&sql, max).await
    }

    async fn copy_from_file(&mut self, handle: Resource<Session>, sql: String, path: String) -> Result<u64, WitError> {
        let (file, size) = self.files.open_read(&path).await?;
        let progress = self.progress.clone();
        self.session(&handle)?.copy_in(&sql, file, size, &*progress).await
    }

    async fn copy_to_file(&mut self, handle: Resource<Session>, sql: String, path: String) -> Result<u64, WitError> {
        let out = self.files.create_atomic(&path).await?;
        let progress = self.progress.clone();
        let lines = self.session(&handle)?.copy_out(&sql, &out, &*progress).await?;
        out.commit().await?;
        Ok(lines)
    }

    async fn take_notices(&mut self, handle: Resource<Session>) -> Vec<String> {
        match self.session(&handle) {
            Ok(session) => std::mem::take(&mut *session.notices.lock().unwrap_or_else(|p| p.into_inner())),
            Err(_) => Vec::new(),
        }
    }

    async fn drop(&mut self, handle: Resource<Session>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}
