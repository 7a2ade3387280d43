//! PostgreSQL sessions: the `postgres` import. Connections are opened as
//! the guest's config says, every server checked against the tenant's
//! policy; COPY data streams between file and socket here, in bounded
//! memory, and never enters the guest. A query's rows stay here too, as a
//! result set the guest hands on by handle ([`Rowset`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::{maybe_done, poll_fn};
use futures_util::{SinkExt, StreamExt, TryStreamExt, pin_mut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::task::JoinHandle;
use tokio_postgres::config::{ChannelBinding as PgChannelBinding, LoadBalanceHosts};
use tokio_postgres::types::ToSql;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, CancelToken, Client, NoTls, SimpleQueryMessage};
use wasmtime::component::Resource;

use crate::bindings::postgres::{
    ChannelBinding, ConnectConfig, Host, HostSession, IpAddress, Server, TcpServer, TransactionSteps,
};
use crate::bindings::types::{Column, Error as WitError, ErrorKind};
use crate::ctx::PghookCtxView;
use crate::error::wit;
use crate::policy::{Destination, Outbound, Policy};
use crate::progress::Progress;
use crate::values::{RawBytes, decode_text, supported, text_is_checked};

mod failover;
mod result_set;
mod rows;

use rows::cell_error;

use failover::open;
pub(crate) use result_set::ResultBudget;
pub use result_set::{Records, Rowset};
pub use rows::{Format, RawCell, RowRef, Rows};

/// How much of a file or a COPY stream is held in memory at once.
const CHUNK: usize = 256 << 10;

/// A dump is sent to disk as it goes, this much at a time, so the sync
/// before its rename has little left to write.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// How far behind the bytes written the writeback stays: past our buffer
/// and tokio's file buffer (2 MiB), so it covers bytes the file has.
const WRITEBACK_LAG: u64 = 4 << 20;
/// The most statements of one `execute` sent ahead of their answers.
const IN_FLIGHT: usize = 1024;
/// psycopg2 keeps the last 50 notices; so do we.
const MAX_NOTICES: usize = 50;

/// An open session, owned by the guest through a resource handle.
pub struct Session {
    client: Arc<Client>,
    notices: Arc<Mutex<Vec<String>>>,
    stopper: Arc<Stopper>,
    opened: std::time::Instant,
    /// Its settings' key in the tenant's session pool, if the tenant reuses sessions.
    pool_key: Option<u64>,
    /// The reset of a session given back to its pool, which goes out before
    /// anything of the next call: whether it succeeded.
    reset: Mutex<Option<JoinHandle<bool>>>,
    /// Set once a statement failed: such a session is closed, not reused.
    failed: AtomicBool,
}

/// What it takes to stop a session's statement after its call was abandoned
/// (a timeout, an interrupt): kept by the call's store apart from the
/// session, so the call can stop the statement and wait for the server.
pub(crate) struct Stopper {
    /// Set while a statement runs. An abandoned call never clears it.
    busy: AtomicBool,
    cancel: CancelToken,
    tls: Option<crate::tls::MakeRustls>,
    /// The Unix socket a session opened by the host itself (a watched
    /// login) was reached through: its cancel goes there, on a socket of
    /// its own.
    socket: Option<std::path::PathBuf>,
    /// The task driving the connection: it ends once the client is gone and
    /// the server has answered every statement sent, i.e. nothing runs.
    driver: Mutex<Option<JoinHandle<()>>>,
}

/// How long a stopped call waits for the server to confirm its statement ended.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Stopper {
    /// Whether a statement was running, clearing the mark.
    pub(crate) fn take_busy(&self) -> bool {
        self.busy.swap(false, Ordering::SeqCst)
    }

    /// Ask the server to cancel the running statement.
    async fn cancel(&self) {
        let sent = match (self.tls.clone(), &self.socket) {
            (Some(mut tls), Some(path)) => match tokio::net::UnixStream::connect(path).await {
                Ok(stream) => {
                    match tokio_postgres::tls::MakeTlsConnect::<tokio::net::UnixStream>::make_tls_connect(&mut tls, "")
                    {
                        Ok(connect) => self.cancel.cancel_query_raw(stream, connect).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            },
            (Some(tls), None) => self.cancel.cancel_query(tls).await.map_err(|e| e.to_string()),
            (None, _) => self.cancel.cancel_query(NoTls).await.map_err(|e| e.to_string()),
        };
        if let Err(e) = sent {
            log::warn!(target: "pghook", "could not cancel an abandoned statement: {e}");
        }
    }

    /// Cancel the statement of an abandoned call (`was_busy`) and wait, at
    /// most [`STOP_GRACE`], until the server has ended it and the connection
    /// is closed. Call after the session itself was dropped. Returns whether
    /// the server confirmed in time.
    pub(crate) async fn stop(&self, was_busy: bool) -> bool {
        let driver = self.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
        tokio::time::timeout(STOP_GRACE, async {
            if was_busy {
                self.cancel().await;
            }
            if let Some(driver) = driver {
                let _ = driver.await;
            }
        })
        .await
        .is_ok()
    }
}

/// `DISCARD ALL` but for the statements tokio-postgres prepared itself (its
/// type lookups, which it keeps and reuses): only statements prepared with
/// SQL `PREPARE` are deallocated. DISCARD ALL would deallocate them all,
/// and the session's next lookup of an unknown type would fail.
const RESET_SESSION: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
     SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES; \
     DO $reset$ DECLARE name text; BEGIN \
       FOR name IN SELECT p.name FROM pg_prepared_statements p WHERE p.from_sql LOOP \
         EXECUTE format('DEALLOCATE %I', name); \
       END LOOP; END $reset$";

impl Session {
    /// Whether the session may serve another call: open, idle, no statement
    /// failed on it, young enough.
    pub(crate) fn reusable(&self, max_age: Duration) -> bool {
        !self.client.is_closed()
            && !self.stopper.busy.load(Ordering::SeqCst)
            && !self.failed.load(Ordering::SeqCst)
            && self.opened.elapsed() < max_age
    }

    /// Start resetting the session for its next call. The reset is queued
    /// on the connection before this returns, so it reaches the server
    /// before anything the next call sends, and the next call need not wait
    /// for it: its first statement checks the outcome ([`Session::reset_done`]).
    pub(crate) fn start_reset(&self) {
        self.notices.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let client = self.client.clone();
        let mut reset = Box::pin(async move {
            // A transaction the caller left open is rolled back, as closing
            // the connection would; `client_min_messages` keeps ROLLBACK's
            // "no transaction in progress" out of the next call's notices,
            // and the reset puts it back with every other setting.
            let (_, _, discarded) = futures_util::future::join3(
                client.batch_execute("SET client_min_messages = error"),
                client.batch_execute("ROLLBACK"),
                client.batch_execute(RESET_SESSION),
            )
            .await;
            discarded.is_ok()
        });
        // One poll sends all three requests.
        let handle = match reset.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(done) => tokio::spawn(std::future::ready(done)),
            std::task::Poll::Pending => tokio::spawn(reset),
        };
        *self.reset.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    }

    /// Whether the session's reset has already failed.
    pub(crate) async fn reset_failed(&self) -> bool {
        let finished = {
            let mut reset = self.reset.lock().unwrap_or_else(|p| p.into_inner());
            match reset.as_ref() {
                Some(handle) if handle.is_finished() => reset.take(),
                _ => None,
            }
        };
        match finished {
            Some(handle) => !handle.await.unwrap_or(false),
            None => false,
        }
    }

    /// Wait for the reset of a reused session (done by now if anything
    /// sent after it has been answered); an error if it failed.
    async fn reset_done(&self) -> Result<(), WitError> {
        let pending = self.reset.lock().unwrap_or_else(|p| p.into_inner()).take();
        let reset = match pending {
            Some(reset) => reset.await.unwrap_or(false),
            None => true,
        };
        match reset {
            true => Ok(()),
            false => Err(wit(ErrorKind::Connect, "a reused session could not be reset for this call")),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.stopper.take_busy() {
            return;
        }
        // Dropped mid-statement outside a call's own stop (the embedder
        // dropped the call): ask the server to stop, without waiting.
        let stopper = self.stopper.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { stopper.cancel().await });
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

/// The user this process runs as, from the environment.
fn os_user() -> Option<String> {
    ["USER", "LOGNAME"].iter().find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
}

/// An address from its WIT form.
fn ip_addr(address: &IpAddress) -> IpAddr {
    match *address {
        IpAddress::Ipv4((a, b, c, d)) => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
    }
}

/// Where `server` leads, as the policy sees it, and the address to connect
/// to instead of resolving its name, if any.
fn destination(server: &Server, policy: &Policy) -> Result<(Destination, Option<IpAddr>), WitError> {
    match server {
        // The default local server's socket: where it is, is host policy.
        Server::DefaultSocket => Ok((Destination::socket(&policy.default_socket_dir), None)),
        Server::UnixSocket(dir) if dir.starts_with('/') => Ok((Destination::socket(Path::new(dir)), None)),
        Server::UnixSocket(dir) => {
            Err(wit(ErrorKind::Config, format!("the Unix socket directory {dir} is not an absolute path")))
        }
        Server::Tcp(TcpServer { host, address }) => match Destination::parse(host) {
            Destination::Socket(_) => {
                Err(wit(ErrorKind::Config, format!("a TCP server's host must be a name or an address, not {host}")))
            }
            named => Ok((named, address.as_ref().map(ip_addr))),
        },
    }
}

/// A session's tokio-postgres config without its servers, and the servers,
/// each checked against the policy, in order, with its own password if it
/// has one.
struct Planned {
    config: tokio_postgres::Config,
    outbound: Vec<Outbound>,
    passwords: Vec<Option<String>>,
}

/// Check every endpoint against the policy and build the session's
/// tokio-postgres config without them: [`failover`] connects to one
/// checked, parsed endpoint at a time.
fn pg_config(cfg: &ConnectConfig, policy: &Policy) -> Result<Planned, WitError> {
    let mut config = tokio_postgres::Config::new();
    if cfg.endpoints.is_empty() {
        return Err(wit(ErrorKind::Config, "no server to connect to: the endpoint list is empty"));
    }
    let denied = |refusal: String| wit(ErrorKind::Denied, refusal);
    let mut outbound = Vec::new();
    for endpoint in &cfg.endpoints {
        let (destination, address) = destination(&endpoint.server, policy)?;
        let destination = policy.check(destination).map_err(denied)?;
        if let Some(ip) = address {
            policy.check(Destination::Ip(ip)).map_err(denied)?;
        }
        outbound.push(Outbound {
            destination,
            address,
            port: endpoint.port,
            user: cfg.user.clone(),
            dbname: cfg.dbname.clone(),
        });
    }
    config.user(&cfg.user);
    config.dbname(&cfg.dbname);
    if let Some(password) = &cfg.password {
        config.password(password);
    }
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
    // A host name's addresses, in the order tokio-postgres tries them.
    config.load_balance_hosts(if cfg.load_balance_hosts {
        LoadBalanceHosts::Random
    } else {
        LoadBalanceHosts::Disable
    });
    config.channel_binding(match cfg.tls.channel_binding {
        ChannelBinding::Disable => PgChannelBinding::Disable,
        ChannelBinding::Prefer => PgChannelBinding::Prefer,
        ChannelBinding::Require => PgChannelBinding::Require,
    });
    // An endpoint's own password (libpq's password file) replaces the connection's.
    let passwords = cfg.endpoints.iter().map(|e| e.password.clone()).collect();
    Ok(Planned { config, outbound, passwords })
}

/// Open a session, checking every endpoint and file against the tenant's
/// policy.
pub(crate) async fn connect(cfg: &ConnectConfig, policy: &Policy) -> Result<Session, WitError> {
    let Opened { client, notices, tls, socket, driver } = open(cfg, policy).await?;
    let stopper = Arc::new(Stopper {
        busy: AtomicBool::new(false),
        cancel: client.cancel_token(),
        tls,
        socket,
        driver: Mutex::new(Some(driver)),
    });
    Ok(Session {
        client: Arc::new(client),
        notices,
        stopper,
        opened: std::time::Instant::now(),
        pool_key: None,
        reset: Mutex::new(None),
        failed: AtomicBool::new(false),
    })
}

/// Open a bare client for an embedder (`get_conn`), under the same checks.
pub(crate) async fn connect_client(cfg: &ConnectConfig, policy: &Policy) -> Result<Client, WitError> {
    Ok(open(cfg, policy).await?.client)
}

type Notices = Arc<Mutex<Vec<String>>>;

/// A freshly opened connection and what drives it.
struct Opened {
    client: Client,
    notices: Notices,
    tls: Option<crate::tls::MakeRustls>,
    /// The Unix socket the host opened itself, for the session's cancel.
    socket: Option<std::path::PathBuf>,
    driver: JoinHandle<()>,
}

/// Drive a connection in the background, collecting the server's notices.
fn spawn_driver<S, T>(mut connection: tokio_postgres::Connection<S, T>, notices: Notices) -> JoinHandle<()>
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
    })
}

/// Each column's name and type, for [`Rows`].
fn named_types<'a>(columns: &[Column], types: impl Iterator<Item = &'a Type>) -> Vec<(String, Type)> {
    columns.iter().zip(types).map(|(column, ty)| (column.name.clone(), ty.clone())).collect()
}

/// A cell that is not a value of its column's type, as PostgreSQL sends it:
/// the column and the reason (tokio-postgres keeps that as the source).
fn decode_error(column: &str, e: &tokio_postgres::Error) -> WitError {
    let reason = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
    wit(ErrorKind::Database, format!("column \"{column}\": invalid value from the server: {reason}"))
}

impl Session {
    /// Run `work`, marking the session busy until it completes, and failed
    /// if it fails. Busy is cleared only on completion: a dropped future
    /// leaves the mark for [`Session`]'s drop.
    async fn tracked<T>(&self, work: impl Future<Output = Result<T, WitError>>) -> Result<T, WitError> {
        self.stopper.busy.store(true, Ordering::SeqCst);
        let outcome = work.await;
        self.stopper.busy.store(false, Ordering::SeqCst);
        // A session whose statement failed is not reused.
        self.failed.fetch_or(outcome.is_err(), Ordering::SeqCst);
        outcome
    }

    /// Run one statement with `steps` around it and collect its rows,
    /// spending the call's result `budget` on them.
    pub(crate) async fn query(
        &self,
        sql: &str,
        steps: TransactionSteps,
        budget: &mut ResultBudget,
    ) -> Result<Rowset, WitError> {
        self.tracked(async {
            // COMMIT only once every row is in: a result over the limit
            // must not commit.
            let outcome = self.query_untracked(sql, steps, budget).await;
            self.end_transaction(outcome, steps).await
        })
        .await
    }

    /// Send `BEGIN` if `steps` ask for it; it goes out when the future is
    /// first polled, so it pipelines with what it is joined to.
    async fn begin(&self, steps: TransactionSteps) -> Result<(), tokio_postgres::Error> {
        match steps.contains(TransactionSteps::BEGIN) {
            true => self.client.batch_execute("BEGIN").await,
            false => Ok(()),
        }
    }

    /// Run `statements` without fetching rows: `BEGIN` if asked, pipelined
    /// with them, each unnamed with the extended protocol (one statement
    /// each, as with `query`), at most [`IN_FLIGHT`] awaiting their
    /// answers at once; none is sent after one fails. Then `COMMIT` if
    /// asked, only once every statement succeeded, else `ROLLBACK`: a call
    /// abandoned before its answers came back never commits.
    pub(crate) async fn execute(&self, statements: &[String], steps: TransactionSteps) -> Result<u64, WitError> {
        self.tracked(async {
            let begin = self.begin(steps);
            let executed = async {
                // A reused session's reset must have succeeded before anything
                // runs on it: these statements are sent whole, not just prepared.
                self.reset_done().await?;
                self.pipeline(statements).await.map_err(statement_error)
            };
            // BEGIN goes out first: each request goes out when first polled.
            // The statements follow without waiting for its answer; should it
            // fail, they fail with it.
            let (begun, executed) = futures_util::future::join(begin, executed).await;
            let outcome = begun.map_err(statement_error).and(executed);
            self.end_transaction(outcome, steps).await
        })
        .await
    }

    /// Send `statements` in order, keeping up to [`IN_FLIGHT`] ahead of
    /// their answers, and add up the rows they affected; stop sending at
    /// the first failure, which is the error.
    async fn pipeline(&self, statements: &[String]) -> Result<u64, tokio_postgres::Error> {
        let mut unsent = statements.iter();
        let mut in_flight = std::collections::VecDeque::new();
        let mut affected = 0;
        loop {
            while in_flight.len() < IN_FLIGHT
                && let Some(sql) = unsent.next()
            {
                let mut statement = Box::pin(maybe_done(self.client.execute_typed(sql, &[])));
                // Its first poll sends it.
                poll_fn(|cx| {
                    let _ = statement.as_mut().poll(cx);
                    Poll::Ready(())
                })
                .await;
                in_flight.push_back(statement);
            }
            let Some(mut oldest) = in_flight.pop_front() else { return Ok(affected) };
            oldest.as_mut().await;
            // Answers still on their way are read and dropped by the connection.
            affected += oldest.as_mut().take_output().expect("the statement's answer, awaited just now")?;
        }
    }

    /// End the transaction around a call's statements as `steps` ask:
    /// `COMMIT` if they all succeeded, `ROLLBACK` (best effort: a session in
    /// a transaction is never reused) if one failed.
    async fn end_transaction<T>(&self, outcome: Result<T, WitError>, steps: TransactionSteps) -> Result<T, WitError> {
        if !steps.contains(TransactionSteps::COMMIT) {
            return outcome;
        }
        match outcome {
            Ok(done) => {
                self.client.batch_execute("COMMIT").await.map_err(statement_error)?;
                Ok(done)
            }
            Err(e) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        }
    }

    /// `BEGIN` if asked, pipelined with preparing the statement; then the
    /// statement. (Preparing first tells the columns even of an empty
    /// result, and lets tokio-postgres look up unknown types before rows
    /// arrive.)
    async fn query_untracked(
        &self,
        sql: &str,
        steps: TransactionSteps,
        budget: &mut ResultBudget,
    ) -> Result<Rowset, WitError> {
        let begin = self.begin(steps);
        // Each request goes out when first polled, in this order.
        let (begun, prepared) = futures_util::future::join(begin, self.client.prepare(sql)).await;
        self.reset_done().await?;
        begun.map_err(statement_error)?;
        let statement = prepared.map_err(statement_error)?;
        let columns: Vec<Column> = statement
            .columns()
            .iter()
            .map(|c| Column { name: c.name().to_string(), type_name: c.type_().name().to_string() })
            .collect();
        budget.spend_result(&columns)?;
        if !statement.columns().iter().all(|c| supported(c.type_())) {
            let types: Vec<Type> = statement.columns().iter().map(|c| c.type_().clone()).collect();
            return self.query_text(sql, columns, &types, budget).await;
        }
        let stream = self
            .client
            .query_raw(&statement, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await
            .map_err(statement_error)?;
        pin_mut!(stream);
        let mut rows = Rows::new(Format::Binary, named_types(&columns, statement.columns().iter().map(|c| c.type_())));
        while let Some(row) = stream.try_next().await.map_err(statement_error)? {
            let cells = columns.iter().enumerate().map(|(i, column)| {
                row.try_get::<_, RawBytes>(i).map(|RawBytes(cell)| cell).map_err(|e| decode_error(&column.name, &e))
            });
            budget.spend(rows.push(cells)?)?;
        }
        rows.shrink_to_fit();
        let row_count = stream.rows_affected().unwrap_or(rows.len() as u64);
        Ok(Rowset { columns, rows, row_count })
    }

    /// Run `sql` with the simple protocol, whose rows come in the text
    /// format: for statements with a column of a type the binary decoder
    /// does not know, which comes back as the server prints it.
    async fn query_text(
        &self,
        sql: &str,
        columns: Vec<Column>,
        types: &[Type],
        budget: &mut ResultBudget,
    ) -> Result<Rowset, WitError> {
        let stream = self.client.simple_query_raw(sql).await.map_err(statement_error)?;
        pin_mut!(stream);
        let mut rows = Rows::new(Format::Text, named_types(&columns, types.iter()));
        // Text whose reading depends on session settings (bytea_output,
        // IntervalStyle) is read as it arrives: a result that cannot be
        // read fails the statement, before any COMMIT.
        let checked: Vec<bool> = types.iter().map(text_is_checked).collect();
        let mut row_count = None;
        while let Some(message) = stream.try_next().await.map_err(statement_error)? {
            let row = match message {
                SimpleQueryMessage::Row(row) => row,
                SimpleQueryMessage::CommandComplete(count) => {
                    row_count = Some(count);
                    continue;
                }
                _ => continue,
            };
            if row.len() != types.len() {
                return Err(wit(ErrorKind::Database, "the statement's columns changed while it ran"));
            }
            let cells = columns.iter().zip(types).zip(&checked).enumerate().map(|(i, ((column, ty), checked))| {
                let text = row.try_get(i).map_err(|e| decode_error(&column.name, &e))?;
                if let (true, Some(text)) = (*checked, text) {
                    decode_text(ty, text)
                        .map_err(|e| wit(ErrorKind::Database, cell_error(Format::Text, &column.name, ty, &*e)))?;
                }
                Ok(text.map(str::as_bytes))
            });
            budget.spend(rows.push(cells)?)?;
        }
        rows.shrink_to_fit();
        let row_count = row_count.unwrap_or(rows.len() as u64);
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
        self.reset_done().await?;
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
        self.reset_done().await?;
        let stream = self.client.copy_out(sql).await.map_err(copy_error)?;
        pin_mut!(stream);
        progress.start("dumping", None);
        let mut writer = BufWriter::with_capacity(CHUNK, out.writer()?);
        let (mut lines, mut written, mut on_disk) = (0u64, 0u64, 0u64);
        while let Some(chunk) = stream.try_next().await.map_err(copy_error)? {
            lines += memchr::memchr_iter(b'\n', &chunk).count() as u64;
            writer.write_all(&chunk).await.map_err(|e| wit(ErrorKind::Io, format!("writing the output: {e}")))?;
            written += chunk.len() as u64;
            progress.advance(chunk.len() as u64);
            // The last WRITEBACK_LAG bytes may still be in our buffers.
            if written - on_disk >= WRITEBACK_EVERY + WRITEBACK_LAG {
                out.start_writeback(on_disk, WRITEBACK_EVERY);
                on_disk += WRITEBACK_EVERY;
            }
        }
        writer.flush().await.map_err(|e| wit(ErrorKind::Io, format!("writing the output: {e}")))?;
        progress.finish();
        Ok(lines)
    }
}

impl Host for PghookCtxView<'_> {
    async fn connect(&mut self, config: ConnectConfig) -> Result<Resource<Session>, WitError> {
        let pool_key = self.pool.as_ref().map(|_| crate::pool::key(&config));
        let reused = match (&self.pool, pool_key) {
            (Some(pool), Some(key)) => pool.take(key).await,
            _ => None,
        };
        let mut session = match reused {
            Some(session) => session,
            None => connect(&config, &self.policy).await?,
        };
        session.pool_key = pool_key;
        self.stoppers.push(session.stopper.clone());
        self.table.push(session).map_err(|e| wit(ErrorKind::Limit, format!("too many sessions: {e}")))
    }

    async fn os_user(&mut self) -> Option<String> {
        os_user()
    }

    async fn libpq_environment(&mut self) -> Vec<(String, String)> {
        if !self.policy.libpq_environment {
            return Vec::new();
        }
        std::env::vars().filter(|(name, _)| name.starts_with("PG") || name == "HOME").collect()
    }
}

impl HostSession for PghookCtxView<'_> {
    async fn query(
        &mut self,
        handle: Resource<Session>,
        sql: String,
        steps: TransactionSteps,
    ) -> wasmtime::Result<Result<Resource<Rowset>, WitError>> {
        let session = self.table.get(&handle)?;
        let rowset = match session.query(&sql, steps, &mut self.ctx.result_budget).await {
            Ok(rowset) => rowset,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.table.push(rowset).map_err(|e| wit(ErrorKind::Limit, format!("too many results: {e}"))))
    }

    async fn execute(
        &mut self,
        handle: Resource<Session>,
        statements: Vec<String>,
        steps: TransactionSteps,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        let session = self.table.get(&handle)?;
        Ok(session.execute(&statements, steps).await)
    }

    async fn copy_from_file(
        &mut self,
        handle: Resource<Session>,
        sql: String,
        path: String,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        let progress = self.progress.clone();
        let files = self.files.get().await;
        let session = self.table.get(&handle)?;
        let load = async {
            let files = files?;
            let (file, size) = files.open_read(&path).await?;
            session.copy_in(&sql, file, size, &*progress).await
        };
        Ok(load.await)
    }

    async fn copy_to_file(
        &mut self,
        handle: Resource<Session>,
        sql: String,
        path: String,
    ) -> wasmtime::Result<Result<u64, WitError>> {
        let progress = self.progress.clone();
        let files = self.files.get().await;
        let session = self.table.get(&handle)?;
        let dump = async {
            let files = files?;
            let out = files.create_atomic(&path).await?;
            let lines = session.copy_out(&sql, &out, &*progress).await?;
            out.commit().await?;
            Ok(lines)
        };
        Ok(dump.await)
    }

    async fn take_notices(&mut self, handle: Resource<Session>) -> wasmtime::Result<Vec<String>> {
        let session = self.table.get(&handle)?;
        Ok(std::mem::take(&mut *session.notices.lock().unwrap_or_else(|p| p.into_inner())))
    }

    async fn drop(&mut self, handle: Resource<Session>) -> wasmtime::Result<()> {
        let session = self.table.delete(handle)?;
        if let (Some(pool), Some(key)) = (&self.ctx.pool, session.pool_key) {
            pool.give_back(key, session);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The glue between the guest's orders and a connection, up to the
    //! socket: no server needed, the embedder's connect check is the seam.

    use super::*;
    use crate::bindings::postgres::{Encrypt, Endpoint, TargetSession, TlsConfig, Verify};
    use crate::error::Error;
    use crate::policy::{Checked, ConnectCheck};

    /// Records what it is asked and answers with `allow`.
    struct Recording {
        asked: Arc<Mutex<Vec<Outbound>>>,
        allow: bool,
    }

    impl ConnectCheck for Recording {
        fn check<'a>(&'a self, outbound: &'a Outbound) -> Checked<'a> {
            self.asked.lock().unwrap().push(outbound.clone());
            let answer = match self.allow {
                true => Ok(()),
                false => {
                    Err(Error::new(crate::ErrorKind::Denied, format!("egress to port {} is closed", outbound.port)))
                }
            };
            Box::pin(std::future::ready(answer))
        }
    }

    fn tcp(host: &str, address: Option<IpAddress>, port: u16) -> Endpoint {
        Endpoint { server: Server::Tcp(TcpServer { host: host.into(), address }), port, password: None }
    }

    fn config(endpoints: Vec<Endpoint>, verify: Verify, encrypt: Encrypt) -> ConnectConfig {
        ConnectConfig {
            endpoints,
            user: "etl".into(),
            password: Some("pw".into()),
            dbname: "wh".into(),
            options: None,
            application_name: None,
            connect_timeout_seconds: Some(2),
            keepalives: None,
            tcp_user_timeout_ms: None,
            target_session: TargetSession::Any,
            load_balance_hosts: false,
            tls: TlsConfig {
                encrypt,
                verify,
                client_cert: None,
                crls: Vec::new(),
                sni: true,
                min_version: None,
                max_version: None,
                channel_binding: ChannelBinding::Prefer,
            },
            require_auth: None,
        }
    }

    fn recording(policy: Policy, allow: bool) -> (Policy, Arc<Mutex<Vec<Outbound>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        (policy.with_connect_check(Recording { asked: asked.clone(), allow }), asked)
    }

    async fn connect_error(cfg: &ConnectConfig, policy: &Policy) -> WitError {
        match connect(cfg, policy).await {
            Ok(_) => panic!("connected"),
            Err(e) => e,
        }
    }

    #[tokio::test]
    async fn the_check_is_asked_about_each_server_and_can_refuse() {
        let (policy, asked) = recording(Policy::new("/").allow_host("*"), false);
        let endpoints =
            vec![tcp("db.example", Some(IpAddress::Ipv4((192, 0, 2, 7))), 5432), tcp("[2001:db8::1]", None, 6432)];
        let e = connect_error(&config(endpoints, Verify::None, Encrypt::Never), &policy).await;
        assert_eq!(e.kind, ErrorKind::Denied);
        assert_eq!(e.message, "egress to port 5432 is closed");
        let asked = asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            [Outbound {
                destination: Destination::Name("db.example".into()),
                address: Some(IpAddr::from([192, 0, 2, 7])),
                port: 5432,
                user: "etl".into(),
                dbname: "wh".into(),
            }]
        );
    }

    #[tokio::test]
    async fn every_server_is_checked_before_any_socket_opens() {
        let (policy, asked) = recording(Policy::new("/").allow_host("*"), true);
        // Nothing listens on port 1: a refused connection proves the check let it through.
        let endpoints = vec![tcp("127.0.0.1", None, 1), tcp("localhost", None, 1)];
        let e = connect_error(&config(endpoints, Verify::None, Encrypt::Never), &policy).await;
        assert_eq!(e.kind, ErrorKind::Connect, "{}", e.message);
        let ports: Vec<_> = asked.lock().unwrap().iter().map(|o| (o.destination.clone(), o.port)).collect();
        assert_eq!(
            ports,
            [(Destination::Ip(IpAddr::from([127, 0, 0, 1])), 1), (Destination::Name("localhost".into()), 1)]
        );
    }

    #[tokio::test]
    async fn connect_timeout_bounds_each_server_on_its_own() {
        // A listener that never answers: its attempt times out, and the next server is still tried.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let policy = Policy::new("/").allow_host("*");
        let endpoints = vec![tcp("127.0.0.1", None, port), tcp("127.0.0.1", None, 1)];
        let mut cfg = config(endpoints, Verify::None, Encrypt::Never);
        cfg.connect_timeout_seconds = Some(1);
        let e = connect_error(&cfg, &policy).await;
        assert_eq!(e.kind, ErrorKind::Connect);
        let expected =
            format!("connection to 127.0.0.1:{port} failed: timeout expired; connection to 127.0.0.1:1 failed: ");
        assert!(e.message.starts_with(&expected), "{}", e.message);
    }

    #[tokio::test]
    async fn the_allow_list_refuses_before_the_check_is_asked() {
        let (policy, asked) = recording(Policy::new("/").allow_host("db.example"), true);
        let endpoints = vec![tcp("db.example", Some(IpAddress::Ipv4((203, 0, 113, 9))), 5432)];
        let e = connect_error(&config(endpoints, Verify::None, Encrypt::Never), &policy).await;
        assert_eq!(e.kind, ErrorKind::Denied);
        assert!(e.message.contains("203.0.113.9"), "{}", e.message);
        assert!(asked.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn libpq_environment_only_where_the_policy_allows() {
        use crate::bindings::postgres::Host as _;
        let run = |policy: Policy| async move {
            let mut ctx = crate::ctx::PghookCtx::new(Arc::new(policy));
            let mut table = wasmtime::component::ResourceTable::new();
            PghookCtxView { ctx: &mut ctx, table: &mut table }.libpq_environment().await
        };
        assert!(run(Policy::new("/")).await.is_empty());
        let expected: Vec<_> = std::env::vars().filter(|(name, _)| name.starts_with("PG") || name == "HOME").collect();
        assert_eq!(run(Policy::new("/").with_libpq_environment(true)).await, expected);
    }
}
