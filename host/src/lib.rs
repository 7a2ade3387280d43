//! pghook: Apache Airflow's PostgresHook as a WebAssembly component plus this
//! native host.
//!
//! The guest component (embedded in this crate) holds the policy: Airflow
//! connection parsing, extras, IAM decisions, SQL building. This crate holds
//! the hands: sockets ([`postgres`]), TLS ([`tls`]), AWS ([`aws`]) and files
//! ([`files`]), and the sandbox around each tenant ([`Policy`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), pghook::Error> {
//! use pghook::{HookArgs, MapConnections, Policy, Runtime};
//!
//! let runtime = Runtime::new()?;
//! let tenant = runtime.tenant(
//!     Policy::new("/srv/tenant-a")
//!         .allow_host("db.internal")
//!         .with_connections(MapConnections::new().with("warehouse", "postgres://etl:pw@db.internal/wh")),
//! );
//! let hook = tenant.hook(HookArgs::conn_id("warehouse"));
//! let records = hook.get_records("select 1 as one", None).await?;
//! assert_eq!(records.rows.len(), 1);
//! hook.bulk_dump("public.orders", "orders.tsv").await?;
//! # Ok(()) }
//! ```

mod auth_watch;
pub mod aws;
pub mod bindings;
pub mod connection;
pub mod ctx;
pub mod error;
pub mod files;
pub mod interrupt;
pub mod policy;
pub mod pool;
pub mod postgres;
pub mod progress;
pub mod runtime;
pub mod secrets;
pub mod tls;
pub mod values;

use std::sync::Arc;

pub use crate::bindings::hook::{
    CopyOutcome, Element, Fetch, HookArgs, IamToken, InsertOptions, Param, Parameters, RowShape, RunOptions, SqlInput,
};
pub use crate::bindings::postgres::ConnectConfig;
pub use crate::bindings::types::{Column, Interval, Value};
pub use crate::connection::Connection;
pub use crate::ctx::{PghookCtx, PghookCtxView, PghookView, SessionStop, add_to_linker};
pub use crate::error::{Error, ErrorKind, SqlState};
pub use crate::interrupt::Interrupt;
pub use crate::policy::{ConnectCheck, Outbound, Policy};
pub use crate::postgres::{Format, RawCell, Records, RowRef, Rows, Rowset};
pub use crate::progress::{NoProgress, Progress};
pub use crate::runtime::Runtime;
pub use crate::secrets::{
    ChainConnections, ConnectionSource, EnvConnections, Lookup, MapConnections, file_connections,
};

impl HookArgs {
    /// Arguments for connection `conn_id`, everything else default.
    pub fn conn_id(conn_id: impl Into<String>) -> HookArgs {
        HookArgs { conn_id: Some(conn_id.into()), ..HookArgs::default() }
    }
}

impl Default for HookArgs {
    /// Nothing set: Airflow's default connection (the guest knows which), no
    /// database or options override, no notices logged.
    fn default() -> HookArgs {
        HookArgs { conn_id: None, database: None, options: None, enable_log_db_messages: false }
    }
}

impl From<Value> for Param {
    /// A scalar parameter.
    fn from(value: Value) -> Param {
        Param::Value(value)
    }
}

impl From<Value> for Element {
    /// A scalar item of a list parameter.
    fn from(value: Value) -> Element {
        Element::Value(value)
    }
}

impl TryFrom<Param> for Element {
    /// The list it was: a list parameter cannot hold another.
    type Error = Param;

    /// Any parameter but a list, as an item of a list parameter.
    fn try_from(param: Param) -> Result<Element, Param> {
        Ok(match param {
            Param::Value(value) => Element::Value(value),
            Param::Date(text) => Element::Date(text),
            Param::Time(text) => Element::Time(text),
            Param::Timestamp(text) => Element::Timestamp(text),
            Param::Timestamptz(text) => Element::Timestamptz(text),
            Param::Interval(text) => Element::Interval(text),
            Param::Uuid(text) => Element::Uuid(text),
            list @ (Param::Array(_) | Param::Tuple(_)) => return Err(list),
        })
    }
}

impl From<&str> for SqlInput {
    /// One string, as Airflow's `run(sql: str)`.
    fn from(sql: &str) -> SqlInput {
        SqlInput::One(sql.to_string())
    }
}

impl<S: AsRef<str>> From<&[S]> for SqlInput {
    /// A list, as Airflow's `run(sql: list)`: every result comes back.
    fn from(sql: &[S]) -> SqlInput {
        SqlInput::Many(sql.iter().map(|s| s.as_ref().to_string()).collect())
    }
}

impl<S: AsRef<str>, const N: usize> From<&[S; N]> for SqlInput {
    /// A list, as Airflow's `run(sql: list)`: every result comes back.
    fn from(sql: &[S; N]) -> SqlInput {
        SqlInput::from(&sql[..])
    }
}

impl Default for InsertOptions {
    /// Nothing set: the guest applies Airflow's defaults (every column,
    /// commit every 1000 rows, plain inserts, a statement per row).
    fn default() -> InsertOptions {
        InsertOptions { target_fields: None, commit_every: None, replace: false, replace_index: None, fast: false }
    }
}

impl Parameters {
    /// Positional parameters (`%s`) from scalar values.
    pub fn values(values: impl IntoIterator<Item = Value>) -> Parameters {
        Parameters::Positional(values.into_iter().map(Param::Value).collect())
    }
}

impl Default for RunOptions {
    /// Nothing set: the guest applies Airflow's `run` defaults. Set only the
    /// options you mean, e.g. `RunOptions { autocommit: Some(true), ..Default::default() }`.
    fn default() -> RunOptions {
        RunOptions { autocommit: None, split_statements: None, return_last: None, fetch: None }
    }
}

impl Runtime {
    /// A tenant: hooks that share one sandbox.
    pub fn tenant(&self, policy: Policy) -> Tenant {
        let pool = (policy.session_reuse > 0).then(|| Arc::new(pool::SessionPool::new(policy.session_reuse)));
        let warm = Arc::new(self.warm_instances());
        let aws_credentials = Arc::new(aws::CredentialCache::new());
        Tenant { runtime: self.clone(), policy: Arc::new(policy), pool, warm, aws_credentials }
    }
}

/// Hooks that share one [`Policy`].
#[derive(Clone)]
pub struct Tenant {
    runtime: Runtime,
    policy: Arc<Policy>,
    /// Idle sessions, when the policy asks for reuse: this tenant's alone.
    pool: Option<Arc<pool::SessionPool>>,
    /// Guest instances kept for this tenant's next calls.
    warm: Arc<runtime::WarmInstances>,
    /// AWS credentials kept for this tenant's next calls.
    aws_credentials: Arc<aws::CredentialCache>,
}

impl Tenant {
    /// A hook, as `PostgresHook(postgres_conn_id=..., database=..., options=...)`.
    pub fn hook(&self, args: HookArgs) -> Hook {
        Hook { tenant: self.clone(), args, progress: Arc::new(NoProgress), interrupt: Interrupt::new() }
    }

    /// This tenant's policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many sessions this tenant keeps idle for reuse now.
    pub fn idle_sessions(&self) -> usize {
        self.pool.as_ref().map_or(0, |pool| pool.idle())
    }
}

/// One PostgresHook. Each method is one call into a guest instance of its
/// tenant's, never one that trapped or was stopped.
#[derive(Clone)]
pub struct Hook {
    tenant: Tenant,
    args: HookArgs,
    progress: Arc<dyn Progress>,
    interrupt: Interrupt,
}

macro_rules! guest_call {
    ($hook:expr, |$guest:ident, $store:ident, $args:ident| $call:expr) => {{
        let $args = $hook.args.clone();
        $hook
            .tenant
            .runtime
            .call(&$hook.tenant, $hook.progress.clone(), &$hook.interrupt, move |$guest, $store| {
                Box::pin(async move { $call.await })
            })
            .await
    }};
}

impl Hook {
    /// Report COPY progress to `progress`.
    pub fn with_progress(mut self, progress: impl Progress + 'static) -> Hook {
        self.progress = Arc::new(progress);
        self
    }

    /// Stop this hook's calls when `interrupt` is thrown, as on a timeout:
    /// the running statement is cancelled on the server before the call
    /// returns [`ErrorKind::Interrupted`].
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Hook {
        self.interrupt = interrupt;
        self
    }

    /// The libpq keyword parameters `get_conn` would hand psycopg2, as JSON,
    /// the password shown as `***`.
    pub async fn explain(&self) -> Result<serde_json::Value, Error> {
        let text = guest_call!(self, |g, s, args| g.pghook_hook_hook().call_explain(s, &args))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::new(ErrorKind::Guest, format!("the guest's explain is not JSON: {e}")).with_source(e))
    }

    /// The resolved connection settings (with an IAM login when asked for).
    pub async fn connect_config(&self) -> Result<ConnectConfig, Error> {
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_get_conn(s, &args))
    }

    /// `get_conn`: a live session, yours to drive with tokio-postgres.
    pub async fn get_conn(&self) -> Result<tokio_postgres::Client, Error> {
        let config = self.connect_config().await?;
        Ok(postgres::connect_client(&config, &self.tenant.policy).await?)
    }

    /// `test_connection`: `select 1`, and Airflow's message on success.
    pub async fn test_connection(&self) -> Result<String, Error> {
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_test_connection(s, &args))
    }

    /// `run`: one SQL string (`&str`) or a list (`&[&str]`), in order, in one
    /// transaction unless autocommit. As in Airflow, a list returns every
    /// result and only a single string is split.
    pub async fn run(
        &self,
        sql: impl Into<SqlInput>,
        parameters: Option<Parameters>,
        options: RunOptions,
    ) -> Result<Vec<Rowset>, Error> {
        let sql = sql.into();
        guest_call!(self, |g, s, args| async {
            let results = g.pghook_hook_hook().call_run(&mut *s, &args, &sql, parameters.as_ref(), options).await?;
            runtime::taking(results, |sets| sets.into_iter().map(|set| s.data_mut().take_rowset(set)).collect())
        })
    }

    /// The row type the connection's `cursor` extra asks for: how to
    /// present [`Hook::run`]'s rows.
    pub async fn row_shape(&self) -> Result<RowShape, Error> {
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_shape(s, &args))
    }

    /// `get_records`: every row of the query.
    pub async fn get_records(&self, sql: &str, parameters: Option<Parameters>) -> Result<Records, Error> {
        let sql = sql.to_string();
        guest_call!(self, |g, s, args| async {
            let records = g.pghook_hook_hook().call_get_records(&mut *s, &args, &sql, parameters.as_ref()).await?;
            runtime::taking(records, |records| s.data_mut().take_records(records))
        })
    }

    /// `get_first`: the first row of the query, if any.
    pub async fn get_first(&self, sql: &str, parameters: Option<Parameters>) -> Result<Records, Error> {
        let sql = sql.to_string();
        guest_call!(self, |g, s, args| async {
            let records = g.pghook_hook_hook().call_get_first(&mut *s, &args, &sql, parameters.as_ref()).await?;
            runtime::taking(records, |records| s.data_mut().take_records(records))
        })
    }

    /// `copy_expert`: `COPY ... FROM STDIN` or `COPY ... TO STDOUT` against a
    /// file under the tenant's root.
    pub async fn copy_expert(&self, sql: &str, filename: &str) -> Result<CopyOutcome, Error> {
        let (sql, filename) = (sql.to_string(), filename.to_string());
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_copy_expert(s, &args, &sql, &filename))
    }

    /// `bulk_load`: a tab-delimited file into `table`; returns the rows loaded.
    pub async fn bulk_load(&self, table: &str, filename: &str) -> Result<u64, Error> {
        let (table, filename) = (table.to_string(), filename.to_string());
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_bulk_load(s, &args, &table, &filename))
    }

    /// `bulk_dump`: `table` into a tab-delimited file; returns the lines written.
    pub async fn bulk_dump(&self, table: &str, filename: &str) -> Result<u64, Error> {
        let (table, filename) = (table.to_string(), filename.to_string());
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_bulk_dump(s, &args, &table, &filename))
    }

    /// `get_uri`: the SQLAlchemy URI, password included.
    pub async fn get_uri(&self) -> Result<String, Error> {
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_get_uri(s, &args))
    }

    /// `insert_rows`: insert `rows` (each in `target_fields` order), a
    /// transaction per `commit_every` rows; returns how many were sent (an
    /// upsert's `DO NOTHING` may write fewer).
    /// The rows are in the guest's memory during the call: split very large
    /// inserts, or raise the tenant's memory limit.
    pub async fn insert_rows(&self, table: &str, rows: Vec<Vec<Param>>, options: InsertOptions) -> Result<u64, Error> {
        let table = table.to_string();
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_insert_rows(s, &args, &table, &rows, &options))
    }

    /// `get_table_primary_key`: the primary key's columns in key order, or
    /// `None` if the table has none (`schema` defaults to `public`).
    pub async fn get_table_primary_key(&self, table: &str, schema: Option<&str>) -> Result<Option<Vec<String>>, Error> {
        let (table, schema) = (table.to_string(), schema.map(str::to_string));
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_get_table_primary_key(
            s,
            &args,
            &table,
            schema.as_deref()
        ))
    }

    /// `get_iam_token`: a temporary login for RDS, Redshift or Redshift Serverless.
    pub async fn get_iam_token(&self) -> Result<IamToken, Error> {
        guest_call!(self, |g, s, args| g.pghook_hook_hook().call_get_iam_token(s, &args))
    }
}
