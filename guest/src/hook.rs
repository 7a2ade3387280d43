//! The exported hook methods: each resolves the connection, then drives the
//! host's imports. No rows of a COPY pass through here, only statements and
//! file names; a query's rows stay in the host, handed on by handle (a
//! `ResultSet`), read here only for the hook's own key-column queries.

use crate::aws_conn;
use crate::bindings::aws;
use crate::bindings::files::{self, ConfigFile, ConfigRead};
use crate::bindings::hook::{
    CopyOutcome, Fetch, Guest, HookArgs, IamToken, InsertOptions, Param, Parameters, RowShape, RunOptions, SqlInput,
};
use crate::bindings::log::{Level, log};
use crate::bindings::postgres::{self, ConnectConfig, ResultSet, Session, TransactionSteps};
use crate::bindings::secrets;
use crate::bindings::types::{Error, Value};
use crate::connection::{Connection, DEFAULT_CONN_ID};
use crate::copy::{CopyStatement, Direction, TableRef};
use crate::error::{Result, config, not_found};
use crate::iam::{self, IamRequest};
use crate::insert::{COMMIT_EVERY, InsertPlan};
use crate::libpq::{ConnArgs, HookOverrides, LibpqFiles};
use crate::sql::{interpolate, split_statements};

/// The component's implementation of the `hook` interface.
pub struct Component;

#[cfg(target_arch = "wasm32")]
crate::bindings::export!(Component with_types_in crate::bindings);

/// Fetch and parse a connection through the host's secrets source.
fn lookup(conn_id: &str) -> Result<Option<Connection>> {
    secrets::get_connection(conn_id)?.map(|stored| Connection::parse(conn_id, &stored)).transpose()
}

/// Airflow's `run` keyword arguments, every one decided.
#[derive(Debug, Clone, Copy)]
struct Run {
    autocommit: bool,
    split_statements: bool,
    return_last: bool,
    fetch: Fetch,
}

impl Run {
    /// `DbApiHook.run`'s defaults: one transaction, statements as given,
    /// the last result, no handler (nothing fetched).
    const AIRFLOW_DEFAULTS: Run =
        Run { autocommit: false, split_statements: false, return_last: true, fetch: Fetch::None };

    /// The caller's options, Airflow's defaults for those left unset.
    fn new(options: RunOptions) -> Run {
        let default = Run::AIRFLOW_DEFAULTS;
        Run {
            autocommit: options.autocommit.unwrap_or(default.autocommit),
            split_statements: options.split_statements.unwrap_or(default.split_statements),
            return_last: options.return_last.unwrap_or(default.return_last),
            fetch: options.fetch.unwrap_or(default.fetch),
        }
    }
}

/// libpq's files, read through the host under the tenant's file rules.
struct HostFiles;

impl LibpqFiles for HostFiles {
    fn read(&self, path: &str) -> Result<ConfigRead> {
        files::read_config(path)
    }

    fn read_dir(&self, path: &str) -> Result<Option<Vec<(String, ConfigFile)>>> {
        files::read_config_dir(path)
    }

    fn warn(&self, message: &str) {
        log(Level::Warning, message);
    }
}

/// One hook instance: its arguments and resolved connection.
pub(crate) struct Hook {
    conn: Connection,
    overrides: HookOverrides,
    log_db_messages: bool,
}

impl Hook {
    pub(crate) fn new(args: HookArgs) -> Result<Hook> {
        let conn_id = args.conn_id.filter(|c| !c.is_empty()).unwrap_or_else(|| DEFAULT_CONN_ID.into());
        let conn = lookup(&conn_id)?.ok_or_else(|| not_found(format!("The conn_id `{conn_id}` isn't defined")))?;
        let log_db_messages = args.enable_log_db_messages || conn.extra_flag("enable_log_db_messages");
        Ok(Hook { conn, overrides: HookOverrides { database: args.database, options: args.options }, log_db_messages })
    }

    /// get_iam_token: (login, token, port).
    fn iam_token(&self) -> Result<IamToken> {
        let request = IamRequest::for_connection(&self.conn, self.overrides.database.as_deref())?;
        let aws_conn_id = iam::aws_conn_id(&self.conn);
        let aws_connection = lookup(&aws_conn_id)?;
        if aws_connection.is_none() {
            log(
                Level::Info,
                &format!("AWS connection `{aws_conn_id}` is not defined: using the host's AWS environment"),
            );
        }
        let client = aws_conn::client_config(aws_connection.as_ref())?;
        Ok(match request {
            IamRequest::Rds { host, port, user } => {
                IamToken { password: aws::rds_auth_token(&client, &host, port, &user)?, user, port }
            }
            IamRequest::Redshift { cluster_identifier, db_user, db_name, port } => {
                let creds = aws::redshift_cluster_credentials(
                    &client,
                    &cluster_identifier,
                    &db_user,
                    db_name.as_deref(),
                    false,
                )?;
                IamToken { user: creds.user, password: creds.password, port }
            }
            IamRequest::RedshiftServerless { workgroup_name, db_name, port } => {
                let creds = aws::redshift_serverless_credentials(&client, &workgroup_name, db_name.as_deref())?;
                IamToken { user: creds.user, password: creds.password, port }
            }
        })
    }

    /// get_conn's keyword arguments, with an IAM login swapped in when the
    /// `iam` extra asks for one.
    fn conn_args(&self) -> Result<ConnArgs> {
        let environment = postgres::libpq_environment();
        if !self.conn.extra_flag("iam") {
            return ConnArgs::build_in(&self.conn, &self.overrides, &environment, &HostFiles);
        }
        let token = self.iam_token()?;
        let mut conn = self.conn.clone();
        conn.login = Some(token.user);
        conn.password = Some(token.password);
        conn.port = Some(token.port);
        ConnArgs::build_in(&conn, &self.overrides, &environment, &HostFiles)
    }

    /// get_conn's settings, libpq's defaults applied (the OS user asked of
    /// the host only when the connection has no login).
    fn connect_config(&self) -> Result<(ConnectConfig, RowShape)> {
        let args = self.conn_args()?;
        Ok((args.connect_config(postgres::os_user, &HostFiles)?, args.shape))
    }

    pub(crate) fn connect(&self) -> Result<(Session, RowShape)> {
        let (config, shape) = self.connect_config()?;
        Ok((postgres::connect(&config)?, shape))
    }

    pub(crate) fn log_notices(&self, session: &Session) {
        if self.log_db_messages {
            for notice in session.take_notices() {
                log(Level::Info, &notice);
            }
        }
    }

    fn run(&self, sql: SqlInput, parameters: Option<&Parameters>, options: Run) -> Result<(Vec<ResultSet>, RowShape)> {
        // Airflow splits only a single string, and returns one result only for one.
        let single = matches!(sql, SqlInput::One(_)) && (options.return_last || !options.split_statements);
        let templates: Vec<String> = match sql {
            SqlInput::One(text) if options.split_statements => split_statements(&text)?,
            SqlInput::One(text) => vec![text].into_iter().filter(|s| !s.trim().is_empty()).collect(),
            SqlInput::Many(list) => list.into_iter().filter(|s| !s.trim().is_empty()).collect(),
        };
        if templates.is_empty() {
            return Err(config("List of SQL statements is empty"));
        }
        // Interpolated up front, so a bad parameter fails before connecting.
        // A string of several statements runs whole, as psycopg2 sends it:
        // one statement at a time, one result (the last).
        let units = templates
            .iter()
            .map(|template| Ok(statements_of(&interpolate(template, parameters)?)))
            .collect::<Result<Vec<_>>>()?;
        let (session, shape) = self.connect()?;
        let total: usize = units.iter().map(Vec::len).sum();
        let mut done = 0;
        let mut results = Vec::new();
        for (template, statements) in templates.iter().zip(&units) {
            // The statement as written: parameter values may be secrets.
            log(Level::Info, &format!("Running statement: {template}"));
            let mut last = None;
            for (i, statement) in statements.iter().enumerate() {
                // One transaction around them all unless autocommit; with
                // autocommit, one around each string of several statements,
                // as the server runs such a string. The host sends BEGIN
                // with the first statement and COMMIT after the last.
                let (begin, commit) = match options.autocommit {
                    false => (done == 0, done + 1 == total),
                    true => (statements.len() > 1 && i == 0, statements.len() > 1 && i + 1 == statements.len()),
                };
                let steps = transaction_steps(begin, commit);
                let in_transaction = !options.autocommit || statements.len() > 1;
                let outcome = session.query(statement, steps);
                self.log_notices(&session);
                done += 1;
                match outcome {
                    Ok(result) => last = Some(result),
                    Err(e) => {
                        if in_transaction && !commit {
                            // Best effort: the server rolls back on disconnect anyway.
                            let _ = session.query("ROLLBACK", TransactionSteps::empty());
                        }
                        return Err(e);
                    }
                }
            }
            let result: ResultSet = last.ok_or_else(|| config("no statement was run"))?;
            log(Level::Info, &format!("Rows affected: {}", result.row_count()));
            match options.fetch {
                Fetch::None => result.truncate(0),
                Fetch::One => result.truncate(1),
                Fetch::All => {}
            }
            results.push(result);
        }
        if single {
            results.drain(..results.len() - 1);
        }
        Ok((results, shape))
    }

    /// get_records and get_first: the rows and how to present them.
    fn records(&self, sql: String, parameters: Option<Parameters>, fetch: Fetch) -> Result<(RowShape, ResultSet)> {
        // Airflow's get_records and get_first: run with its defaults and a fetching handler.
        let options = Run { fetch, ..Run::AIRFLOW_DEFAULTS };
        let (mut results, shape) = self.run(SqlInput::One(sql), parameters.as_ref(), options)?;
        let rows = results.pop().ok_or_else(|| config("no statement was run"))?;
        Ok((shape, rows))
    }

    /// insert_rows: `commit_every` rows per transaction, each batch one
    /// multi-row INSERT on the fast path, else a statement per row.
    fn insert_rows(&self, table: &str, rows: &[Vec<Param>], options: InsertOptions) -> Result<u64> {
        let (session, _) = self.connect()?;
        let key = match (options.replace, options.replace_index) {
            (true, None) => Some(primary_key(&session, table)?),
            (_, given) => given,
        };
        let plan = InsertPlan::new(table, options.target_fields.as_deref(), options.replace, key.as_deref())?;
        let batch = match options.commit_every.unwrap_or(COMMIT_EVERY) {
            0 => rows.len().max(1),
            n => n as usize,
        };
        let mut done = 0;
        for chunk in rows.chunks(batch) {
            // A batch is one transaction: one multi-row INSERT on the fast
            // path, else an INSERT per row, in order.
            match options.fast {
                true => {
                    session.execute(&[plan.statement(chunk)?], transaction_steps(true, true))?;
                }
                false => insert_each(&session, &plan, chunk)?,
            }
            done += chunk.len();
            log(Level::Info, &format!("Loaded {done} rows into {table} so far"));
        }
        log(Level::Info, &format!("Done loading. Loaded a total of {done} rows into {table}"));
        Ok(done as u64)
    }

    /// Run a COPY: the statement sent (and logged) is the one rendered from
    /// what was parsed, never the caller's text.
    fn copy(&self, statement: &CopyStatement, filename: &str) -> Result<CopyOutcome> {
        let sql = statement.render()?;
        let direction = statement.direction;
        log(Level::Info, &format!("Running copy expert: {sql}, filename: {filename}"));
        if direction == Direction::Load && !files::exists(filename)? {
            // Airflow's documented behaviour: a missing input is created empty.
            log(Level::Warning, &format!("{filename} does not exist: creating it empty, so no rows are loaded"));
            files::create_empty(filename)?;
        }
        let (session, _) = self.connect()?;
        let rows = match direction {
            Direction::Load => session.copy_from_file(&sql, filename),
            Direction::Dump => session.copy_to_file(&sql, filename),
        };
        self.log_notices(&session);
        Ok(CopyOutcome { loaded: direction == Direction::Load, rows: rows? })
    }
}

/// How many of a batch's rows `insert_each` renders and sends at once: the
/// most statements the guest holds.
const SENT_TOGETHER: usize = 1000;

/// One batch of insert_rows' default path, a statement per row (psycopg2's
/// executemany), in one transaction: rendered and sent [`SENT_TOGETHER`]
/// rows at a time, pipelined with BEGIN and COMMIT (`execute`). A row that
/// cannot be rendered fails the batch once the rows before it have run, so
/// a database error among those is the one reported, as psycopg2 would.
fn insert_each(session: &Session, plan: &InsertPlan, batch: &[Vec<Param>]) -> Result<()> {
    let parts: Vec<&[Vec<Param>]> = batch.chunks(SENT_TOGETHER).collect();
    for (i, part) in parts.iter().enumerate() {
        let mut statements = Vec::with_capacity(part.len());
        let mut unrendered = None;
        for row in *part {
            match plan.statement(std::slice::from_ref(row)) {
                Ok(sql) => statements.push(sql),
                Err(e) => {
                    unrendered = Some(e);
                    break;
                }
            }
        }
        let last = i + 1 == parts.len() && unrendered.is_none();
        let failed = session.execute(&statements, transaction_steps(i == 0, last)).err().or(unrendered);
        if let Some(e) = failed {
            if !last {
                // Best effort: the server rolls back on disconnect anyway.
                let _ = session.query("ROLLBACK", TransactionSteps::empty());
            }
            return Err(e);
        }
    }
    Ok(())
}

/// The steps that open a transaction before a statement (`begin`) and end
/// it after (`commit`).
pub(crate) fn transaction_steps(begin: bool, commit: bool) -> TransactionSteps {
    let step = |wanted: bool, step: TransactionSteps| if wanted { step } else { TransactionSteps::empty() };
    step(begin, TransactionSteps::BEGIN) | step(commit, TransactionSteps::COMMIT)
}

/// The first column of each row, where it is text.
fn first_texts(rows: Vec<Vec<Value>>) -> Vec<String> {
    let first = |row: Vec<Value>| match row.into_iter().next() {
        Some(Value::Text(text)) => Some(text),
        _ => None,
    };
    rows.into_iter().filter_map(first).collect()
}

/// The primary key columns of `table` (`[schema.]table`, found as the
/// INSERT would find it), in key order; an error if it has none.
fn primary_key(session: &Session, table: &str) -> Result<Vec<String>> {
    let name = TableRef::parse(table)?.name;
    let sql = interpolate(
        "select a.attname::text from pg_index i \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
         where i.indrelid = %s::regclass and i.indisprimary \
         order by array_position(i.indkey, a.attnum)",
        Some(&Parameters::Positional(vec![Param::Value(Value::Text(name))])),
    )?;
    let key = first_texts(session.query(&sql, TransactionSteps::empty())?.rows());
    if key.is_empty() {
        return Err(config(format!("replace: {table} has no primary key; give replace_index")));
    }
    // Names as PostgreSQL prints them, quoted so they read back the same.
    Ok(key.iter().map(|k| crate::sql::quote_ident(k)).collect())
}

/// The statements of one SQL string: several if it has several, else the
/// string as given (also when it cannot be split: the server will say why).
pub(crate) fn statements_of(sql: &str) -> Vec<String> {
    match split_statements(sql) {
        Ok(statements) if statements.len() > 1 => statements,
        _ => vec![sql.to_string()],
    }
}

impl Guest for Component {
    type Connection = crate::dbapi::DbConnection;

    fn explain(args: HookArgs) -> std::result::Result<String, Error> {
        Ok(Hook::new(args)?.conn_args()?.explain())
    }

    fn get_conn(args: HookArgs) -> std::result::Result<ConnectConfig, Error> {
        Ok(Hook::new(args)?.connect_config()?.0)
    }

    fn test_connection(args: HookArgs) -> std::result::Result<String, Error> {
        let (session, _) = Hook::new(args)?.connect()?;
        session.query("select 1", TransactionSteps::empty())?;
        Ok("Connection successfully tested".into())
    }

    fn run(
        args: HookArgs,
        sql: SqlInput,
        parameters: Option<Parameters>,
        options: RunOptions,
    ) -> std::result::Result<Vec<ResultSet>, Error> {
        Ok(Hook::new(args)?.run(sql, parameters.as_ref(), Run::new(options))?.0)
    }

    fn get_records(
        args: HookArgs,
        sql: String,
        parameters: Option<Parameters>,
    ) -> std::result::Result<(RowShape, ResultSet), Error> {
        Hook::new(args)?.records(sql, parameters, Fetch::All)
    }

    fn get_first(
        args: HookArgs,
        sql: String,
        parameters: Option<Parameters>,
    ) -> std::result::Result<(RowShape, ResultSet), Error> {
        Hook::new(args)?.records(sql, parameters, Fetch::One)
    }

    fn copy_expert(args: HookArgs, sql: String, filename: String) -> std::result::Result<CopyOutcome, Error> {
        let statement = CopyStatement::parse(&sql)?;
        Hook::new(args)?.copy(&statement, &filename)
    }

    fn bulk_load(args: HookArgs, table: String, filename: String) -> std::result::Result<u64, Error> {
        let statement = CopyStatement::load(TableRef::parse(&table)?);
        Ok(Hook::new(args)?.copy(&statement, &filename)?.rows)
    }

    fn bulk_dump(args: HookArgs, table: String, filename: String) -> std::result::Result<u64, Error> {
        let statement = CopyStatement::dump(TableRef::parse(&table)?);
        Ok(Hook::new(args)?.copy(&statement, &filename)?.rows)
    }

    fn get_uri(args: HookArgs) -> std::result::Result<String, Error> {
        let hook = Hook::new(args)?;
        crate::sqlalchemy::uri(&hook.conn, hook.overrides.database.as_deref())
    }

    fn shape(args: HookArgs) -> std::result::Result<RowShape, Error> {
        let hook = Hook::new(args)?;
        crate::libpq::row_shape(hook.conn.extra.get("cursor"))
    }

    fn get_iam_token(args: HookArgs) -> std::result::Result<IamToken, Error> {
        Hook::new(args)?.iam_token()
    }

    fn insert_rows(
        args: HookArgs,
        table: String,
        rows: Vec<Vec<Param>>,
        options: InsertOptions,
    ) -> std::result::Result<u64, Error> {
        Hook::new(args)?.insert_rows(&table, &rows, options)
    }

    fn get_table_primary_key(
        args: HookArgs,
        table: String,
        schema: Option<String>,
    ) -> std::result::Result<Option<Vec<String>>, Error> {
        // Airflow's query, its names passed as parameters.
        let sql = "select kcu.column_name \
                   from information_schema.table_constraints tco \
                   join information_schema.key_column_usage kcu \
                     on kcu.constraint_name = tco.constraint_name \
                    and kcu.constraint_schema = tco.constraint_schema \
                   where tco.constraint_type = 'PRIMARY KEY' \
                     and kcu.table_schema = %s and kcu.table_name = %s \
                   order by kcu.ordinal_position";
        let names = [schema.unwrap_or_else(|| "public".into()), table];
        let parameters = Parameters::Positional(names.into_iter().map(|n| Param::Value(Value::Text(n))).collect());
        let (_, result) = Hook::new(args)?.records(sql.into(), Some(parameters), Fetch::All)?;
        let columns = first_texts(result.rows());
        Ok((!columns.is_empty()).then_some(columns))
    }
}
