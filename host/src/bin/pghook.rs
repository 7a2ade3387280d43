//! `pghook`: Airflow's PostgresHook at the command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use pghook::error::one_line;
use pghook::{
    ChainConnections, Column, Element, EnvConnections, ErrorKind, Fetch, Hook, HookArgs, InsertOptions, Interrupt,
    Param, Parameters, Policy, Progress, RowShape, Rowset, RunOptions, Runtime, SqlInput, Value, file_connections,
};

#[derive(Parser)]
#[command(name = "pghook", version, about = "Apache Airflow's PostgresHook, as a sandboxed WebAssembly component")]
struct Cli {
    /// The Airflow connection id (postgres_conn_id); by default Airflow's,
    /// postgres_default.
    #[arg(long, global = true, env = "PGHOOK_CONN_ID")]
    conn_id: Option<String>,
    /// Override the connection's schema as the database name.
    #[arg(long, global = true)]
    database: Option<String>,
    /// Server options, e.g. "-c search_path=myschema".
    #[arg(long, global = true)]
    options: Option<String>,
    /// A JSON file of connections ({"conn_id": "postgres://..." | {...}}),
    /// asked before the AIRFLOW_CONN_* variables.
    #[arg(long, global = true, env = "PGHOOK_CONNECTIONS")]
    connections: Option<PathBuf>,
    /// The directory file paths are confined to (default: the current one).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Hosts the hook may reach: "*", "*.example.com" or exact names (repeatable).
    #[arg(long = "allow-host", global = true, default_value = "*")]
    allow_hosts: Vec<String>,
    /// Unix socket directories the hook may reach, each exactly (repeatable).
    #[arg(long = "allow-socket", value_name = "DIR", global = true, default_value = Policy::STANDARD_SOCKET_DIR)]
    allow_sockets: Vec<PathBuf>,
    /// A file, or a directory, libpq's own files (password and service
    /// files, certificates, keys, CRLs) may also be read from (repeatable).
    /// Always allowed: the files libpq reads by default (~/.pgpass,
    /// ~/.pg_service.conf, ~/.postgresql/, $PGSYSCONFDIR/pg_service.conf and
    /// those PGPASSFILE, PGSSLROOTCERT... name).
    #[arg(long = "allow-config-path", value_name = "PATH", global = true)]
    allow_config_paths: Vec<PathBuf>,
    /// Stop a call after this many seconds (its statement is cancelled on the server).
    #[arg(long, global = true, default_value_t = 86_400)]
    timeout: u64,
    /// The most result rows one call may return, in MiB (as counted in memory).
    #[arg(long, global = true, default_value_t = 1024)]
    max_result_mb: usize,
    /// Log the server's notices (and, as they are info-level, each statement).
    #[arg(long, global = true)]
    log_db_messages: bool,
    /// Log info messages, such as each statement run.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Clone, Copy, ValueEnum)]
enum FetchArg {
    None,
    One,
    All,
}

#[derive(Subcommand)]
enum Command {
    /// Print the libpq parameters get_conn would use, as JSON (password masked).
    Explain,
    /// Connect and run `select 1`.
    TestConnection,
    /// Run SQL statements, in one transaction unless --autocommit.
    Run {
        /// A SQL string; repeated, a list (run in order, every result back).
        #[arg(long, required = true)]
        sql: Vec<String>,
        /// Parameters as JSON: an array for %s, an object for %(name)s; typed
        /// values as `{"$date": "2024-02-29"}`, `{"$array": [1, 2]}` (see README).
        #[arg(long)]
        params: Option<String>,
        #[arg(long)]
        autocommit: bool,
        /// Split each string into statements first.
        #[arg(long)]
        split_statements: bool,
        /// Which rows to print for each statement (by default none, as
        /// Airflow's run without a handler).
        #[arg(long, value_enum)]
        fetch: Option<FetchArg>,
        /// Print every statement's result, not only the last.
        #[arg(long)]
        all_results: bool,
    },
    /// Print every row of a query.
    Records {
        #[arg(long)]
        sql: String,
        #[arg(long)]
        params: Option<String>,
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Only the first row (get_first).
        #[arg(long)]
        first: bool,
    },
    /// COPY ... FROM STDIN or COPY ... TO STDOUT against a file.
    CopyExpert {
        #[arg(long)]
        sql: String,
        #[arg(long)]
        file: String,
    },
    /// Load a tab-delimited file into a table.
    BulkLoad {
        /// [schema.]table [(column, ...)]
        #[arg(long)]
        table: String,
        #[arg(long)]
        file: String,
    },
    /// Dump a table into a tab-delimited file.
    BulkDump {
        #[arg(long)]
        table: String,
        #[arg(long)]
        file: String,
    },
    /// Print an IAM login (user, token, port) as JSON.
    IamToken,
    /// Print the SQLAlchemy URI (password masked unless --show-password).
    Uri {
        #[arg(long)]
        show_password: bool,
    },
    /// Insert rows from a JSON-lines file, each line a JSON array of values
    /// (typed as in --params) in --target-fields order (insert_rows).
    InsertRows {
        #[arg(long)]
        table: String,
        #[arg(long)]
        file: PathBuf,
        /// Columns the values go to, comma-separated (default: every column in table order).
        #[arg(long, value_delimiter = ',')]
        target_fields: Option<Vec<String>>,
        /// Rows per transaction (default 1000; 0: one transaction).
        #[arg(long)]
        commit_every: Option<u32>,
        /// Upsert on --replace-index, or the table's primary key.
        #[arg(long)]
        replace: bool,
        #[arg(long, value_delimiter = ',')]
        replace_index: Option<Vec<String>>,
        /// One multi-row INSERT per batch rather than a statement per row.
        #[arg(long)]
        fast: bool,
    },
    /// Print a table's primary key columns as a JSON list, or null (get_table_primary_key).
    PrimaryKey {
        #[arg(long)]
        table: String,
        /// The table's schema (default: public).
        #[arg(long)]
        schema: Option<String>,
    },
}

/// Warnings (and with -v, info) from the hook, one line each on stderr.
struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("pghook") && metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("pghook: {}: {}", record.level().as_str().to_lowercase(), record.args());
        }
    }

    fn flush(&self) {}
}

/// A one-line progress display on a terminal.
struct TerminalProgress {
    state: Mutex<(String, Option<u64>, u64, Instant)>,
    started: Instant,
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

impl TerminalProgress {
    fn new() -> Self {
        let now = Instant::now();
        TerminalProgress { state: Mutex::new((String::new(), None, 0, now)), started: now }
    }

    fn draw(&self, phase: &str, total: Option<u64>, done: u64) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let line = match total {
            Some(total) if total > 0 => format!(
                "{phase} {} / {} ({:.0}%) {}/s",
                human(done),
                human(total),
                done as f64 * 100.0 / total as f64,
                human(rate as u64)
            ),
            _ => format!("{phase} {} {}/s", human(done), human(rate as u64)),
        };
        eprint!("\r\x1b[2K{line}");
    }
}

impl Progress for TerminalProgress {
    fn start(&self, phase: &str, total: Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = (phase.to_string(), total, 0, Instant::now());
    }

    fn advance(&self, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.2 += bytes;
        if state.3.elapsed() >= Duration::from_millis(200) {
            state.3 = Instant::now();
            self.draw(&state.0, state.1, state.2);
        }
    }

    fn finish(&self) {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.draw(&state.0, state.1, state.2);
        eprintln!();
    }
}

/// One scalar `--params` value. Numbers keep every digit: an integer that
/// fits in 64 bits is an int, any other number travels as exact numeric text.
fn scalar_value(raw: &serde_json::value::RawValue) -> Result<Value, String> {
    let text = raw.get();
    if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Ok(match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Numeric(text.to_string()),
        });
    }
    Ok(match serde_json::from_str(text).map_err(|e| format!("--params: {e}"))? {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(b),
        serde_json::Value::String(s) => Value::Text(s),
        // Arrays and objects as their JSON text, numbers inside kept as written.
        _ => Value::Json(text.to_string()),
    })
}

/// The tags of typed `--params` values: `{"$date": "2024-02-29"}`.
const PARAM_TAGS: &str =
    "$date, $time, $timestamp, $timestamptz, $interval, $uuid (a string), $array, $tuple (a list), $json, $bytes (hex)";

/// One `--params` value: a scalar, or a typed value written as an object
/// with one `$tag` key.
fn param_value(raw: &serde_json::value::RawValue) -> Result<Param, String> {
    use serde_json::value::RawValue;
    let tagged: Option<std::collections::BTreeMap<String, Box<RawValue>>> =
        serde_json::from_str(raw.get()).ok().filter(|m: &std::collections::BTreeMap<String, Box<RawValue>>| {
            m.len() == 1 && m.keys().all(|k| k.starts_with('$'))
        });
    let Some((tag, inner)) = tagged.and_then(|m| m.into_iter().next()) else {
        return Ok(Param::Value(scalar_value(raw)?));
    };
    let string = || serde_json::from_str::<String>(inner.get()).map_err(|_| format!("--params: {tag} takes a string"));
    let list = || -> Result<Vec<Element>, String> {
        let items: Vec<Box<RawValue>> =
            serde_json::from_str(inner.get()).map_err(|_| format!("--params: {tag} takes a list"))?;
        let element = |item| Element::try_from(item).map_err(|_| format!("--params: a {tag} cannot hold a list"));
        items.iter().map(|item| element(param_value(item)?)).collect()
    };
    Ok(match tag.as_str() {
        "$date" => Param::Date(string()?),
        "$time" => Param::Time(string()?),
        "$timestamp" => Param::Timestamp(string()?),
        "$timestamptz" => Param::Timestamptz(string()?),
        "$interval" => Param::Interval(string()?),
        "$uuid" => Param::Uuid(string()?),
        "$array" => Param::Array(list()?),
        "$tuple" => Param::Tuple(list()?),
        "$json" => Param::Value(Value::Json(inner.get().to_string())),
        "$bytes" => {
            let bytes = pghook::values::bytes_from_hex(&string()?);
            Param::Value(Value::Bytes(bytes.ok_or("--params: $bytes takes hex digits, two per byte")?))
        }
        _ => return Err(format!("--params: unknown tag {tag}; the tags are {PARAM_TAGS}")),
    })
}

/// The rows of a JSON-lines file: each non-blank line a JSON array of
/// values, typed as `--params` values are.
fn read_rows(path: &std::path::Path) -> Result<Vec<Vec<Param>>, String> {
    use serde_json::value::RawValue;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let at = |e: String| format!("{} line {}: {e}", path.display(), i + 1);
            let values: Vec<Box<RawValue>> =
                serde_json::from_str(line).map_err(|e| at(format!("expected a JSON array of values: {e}")))?;
            values.iter().map(|v| param_value(v).map_err(at)).collect()
        })
        .collect()
}

fn parse_params(params: Option<&str>) -> Result<Option<Parameters>, String> {
    use serde_json::value::RawValue;
    let Some(text) = params else {
        return Ok(None);
    };
    let invalid = |e: serde_json::Error| format!("--params: invalid JSON: {e}");
    match text.trim_start().chars().next() {
        Some('[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(invalid)?;
            Ok(Some(Parameters::Positional(items.iter().map(|v| param_value(v)).collect::<Result<_, _>>()?)))
        }
        Some('{') => {
            let map: std::collections::BTreeMap<String, Box<RawValue>> = serde_json::from_str(text).map_err(invalid)?;
            let named = map.into_iter().map(|(k, v)| Ok((k, param_value(&v)?))).collect::<Result<_, String>>()?;
            Ok(Some(Parameters::Named(named)))
        }
        _ => Err("--params: expected a JSON array (for %s) or object (for %(name)s)".into()),
    }
}

/// JSON text of a string.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The rows as JSON text: arrays, or objects keyed by column name. Built as
/// text so that json values keep every digit.
fn rows_json(shape: RowShape, columns: &[pghook::Column], rows: Vec<Vec<Value>>) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells = row.iter().map(pghook::values::json_text);
            match shape {
                RowShape::Tuple => format!("[{}]", cells.collect::<Vec<_>>().join(",")),
                _ => {
                    let fields = columns.iter().zip(cells).map(|(c, cell)| format!("{}:{cell}", json_string(&c.name)));
                    format!("{{{}}}", fields.collect::<Vec<_>>().join(","))
                }
            }
        })
        .collect();
    format!("[{}]", rows.join(","))
}

fn cell_text(value: Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Numeric(s) | Value::Text(s) | Value::Json(s) => s,
        Value::Interval(i) => i.text,
        Value::Bytes(b) => pghook::values::bytea_text(&b),
        // Numbers and booleans, NaN and the infinities by name.
        other => pghook::values::json_text(&other).trim_matches('"').to_string(),
    }
}

fn print_table(columns: &[Column], rows: Vec<Vec<Value>>) {
    let header: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(|row| row.into_iter().map(cell_text).collect()).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line =
        |cells: &[String]| cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join(" | ");
    println!("{}", line(&header));
    println!("{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
    for row in &rows {
        println!("{}", line(row));
    }
    println!("({} row{})", rows.len(), if rows.len() == 1 { "" } else { "s" });
}

fn rowset_json(rowset: Rowset) -> Result<String, pghook::Error> {
    let columns: Vec<String> = rowset.columns.iter().map(|c| json_string(&c.name)).collect();
    Ok(format!(
        "{{\"columns\":[{}],\"rows\":{},\"row_count\":{}}}",
        columns.join(","),
        rows_json(RowShape::Tuple, &rowset.columns, rowset.rows.to_values()?),
        rowset.row_count
    ))
}

fn mask_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return uri.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => uri.to_string(),
    }
}

async fn execute(cli: Cli, interrupt: Interrupt) -> Result<(), Failure> {
    let root = match cli.root {
        Some(root) => root,
        None => std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
    };
    let mut connections = ChainConnections::new();
    if let Some(file) = &cli.connections {
        connections = connections.then(file_connections(file).map_err(|e| e.to_string())?);
    }
    let mut policy = Policy::new(root)
        .with_connections(connections.then(EnvConnections))
        .with_call_timeout(Duration::from_secs(cli.timeout))
        .with_max_result_bytes(cli.max_result_mb.saturating_mul(1 << 20))
        .with_ambient_aws(true)
        .with_libpq_environment(true);
    for host in cli.allow_hosts {
        policy = policy.allow_host(host);
    }
    for dir in cli.allow_sockets {
        policy = policy.allow_socket_dir(dir);
    }
    policy = policy.allow_libpq_default_files();
    for path in cli.allow_config_paths {
        policy = policy.allow_config_path(path);
    }
    let runtime = match Runtime::user_cache_dir() {
        Some(dir) => Runtime::with_cache(&dir),
        None => Runtime::new(),
    }
    .map_err(|e| e.to_string())?;
    let args = HookArgs {
        conn_id: cli.conn_id,
        database: cli.database,
        options: cli.options,
        enable_log_db_messages: cli.log_db_messages,
    };
    let mut hook: Hook = runtime.tenant(policy).hook(args).with_interrupt(interrupt);
    if std::io::stderr().is_terminal() {
        hook = hook.with_progress(TerminalProgress::new());
    }
    let err = Failure::from;
    // A test seam: proves a panic becomes one error line (see tests/limits.rs).
    if cfg!(debug_assertions) && std::env::var_os("PGHOOK_DEBUG_PANIC").is_some() {
        panic!("PGHOOK_DEBUG_PANIC is set");
    }
    match cli.command {
        Command::Explain => println!("{}", hook.explain().await.map_err(err)?),
        Command::TestConnection => println!("{}", hook.test_connection().await.map_err(err)?),
        Command::Run { sql, params, autocommit, split_statements, fetch, all_results } => {
            let params = parse_params(params.as_deref())?;
            // A flag left out leaves its option unset: the guest applies Airflow's default.
            let options = RunOptions {
                autocommit: autocommit.then_some(true),
                split_statements: split_statements.then_some(true),
                return_last: all_results.then_some(false),
                fetch: fetch.map(|fetch| match fetch {
                    FetchArg::None => Fetch::None,
                    FetchArg::One => Fetch::One,
                    FetchArg::All => Fetch::All,
                }),
            };
            // One --sql is a string to Airflow's run, several a list.
            let sql = match <[String; 1]>::try_from(sql) {
                Ok([one]) => SqlInput::One(one),
                Err(many) => SqlInput::Many(many),
            };
            let results = hook.run(sql, params, options).await.map_err(err)?;
            if matches!(fetch, None | Some(FetchArg::None)) {
                let affected: u64 = results.iter().map(|r| r.row_count).sum();
                eprintln!("pghook: ok ({affected} rows affected)");
            } else {
                // Every result read before any is printed: a cell that cannot be read prints nothing.
                let shown: Vec<String> = results.into_iter().map(rowset_json).collect::<Result<_, _>>().map_err(err)?;
                for rowset in shown {
                    println!("{rowset}");
                }
            }
        }
        Command::Records { sql, params, format, first } => {
            let params = parse_params(params.as_deref())?;
            let records = if first { hook.get_first(&sql, params).await } else { hook.get_records(&sql, params).await }
                .map_err(err)?;
            let rows = records.rows.to_values().map_err(err)?;
            match format {
                // get_first gives the row itself or nothing, as Airflow's a tuple or None.
                Format::Json if first => {
                    let row = rows.into_iter().next();
                    let shown = row.map(|row| rows_json(records.shape, &records.columns, vec![row]));
                    let row = shown.as_deref().and_then(|rows| rows.strip_prefix('[')?.strip_suffix(']'));
                    println!("{}", row.unwrap_or("null"));
                }
                Format::Json => println!("{}", rows_json(records.shape, &records.columns, rows)),
                Format::Table => print_table(&records.columns, rows),
            }
        }
        Command::CopyExpert { sql, file } => {
            let outcome = hook.copy_expert(&sql, &file).await.map_err(err)?;
            if outcome.loaded {
                eprintln!("pghook: loaded {} rows from {file}", outcome.rows);
            } else {
                eprintln!("pghook: wrote {} lines to {file}", outcome.rows);
            }
        }
        Command::BulkLoad { table, file } => {
            let rows = hook.bulk_load(&table, &file).await.map_err(err)?;
            eprintln!("pghook: loaded {rows} rows into {table}");
        }
        Command::BulkDump { table, file } => {
            let rows = hook.bulk_dump(&table, &file).await.map_err(err)?;
            eprintln!("pghook: dumped {rows} rows of {table} to {file}");
        }
        Command::IamToken => {
            let token = hook.get_iam_token().await.map_err(err)?;
            println!("{}", serde_json::json!({"user": token.user, "password": token.password, "port": token.port}));
        }
        Command::Uri { show_password } => {
            let uri = hook.get_uri().await.map_err(err)?;
            println!("{}", if show_password { uri } else { mask_password(&uri) });
        }
        Command::InsertRows { table, file, target_fields, commit_every, replace, replace_index, fast } => {
            let rows = read_rows(&file)?;
            let options = InsertOptions { target_fields, commit_every, replace, replace_index, fast };
            let inserted = hook.insert_rows(&table, rows, options).await.map_err(err)?;
            eprintln!("pghook: inserted {inserted} rows into {table}");
        }
        Command::PrimaryKey { table, schema } => {
            let columns = hook.get_table_primary_key(&table, schema.as_deref()).await.map_err(err)?;
            println!("{}", serde_json::json!(columns));
        }
    }
    Ok(())
}

/// Why the CLI exits unsuccessfully.
struct Failure {
    message: String,
    interrupted: bool,
}

impl From<String> for Failure {
    /// The CLI's own failures; a `pghook::Error`'s message is one line already.
    fn from(message: String) -> Failure {
        Failure { message: one_line(&message), interrupted: false }
    }
}

impl From<pghook::Error> for Failure {
    fn from(e: pghook::Error) -> Failure {
        Failure { interrupted: e.kind() == ErrorKind::Interrupted, message: e.to_string() }
    }
}

/// Throw `interrupt` on SIGINT or SIGTERM, so the running call stops its
/// statement on the server and removes a half-written dump before exiting;
/// a second signal exits at once.
fn interrupt_on_signals(interrupt: Interrupt) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("watching for signals: {e}"))?;
    std::thread::Builder::new()
        .name("pghook-signals".into())
        .spawn(move || {
            for _ in signals.forever() {
                if interrupt.is_interrupted() {
                    std::process::exit(130);
                }
                interrupt.interrupt();
            }
        })
        .map_err(|e| format!("watching for signals: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Notices are info-level, as in Airflow: asking for them shows info.
    let level = if cli.verbose || cli.log_db_messages { log::LevelFilter::Info } else { log::LevelFilter::Warn };
    log::set_max_level(level);
    let _ = log::set_boxed_logger(Box::new(StderrLogger { level }));
    // One thread: the COPY data plane hands over a message per row, and
    // cross-thread wake-ups would cost more than they give.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pghook: error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A panic is a bug: one error line (the backtrace with -v), exit 1.
    let verbose = cli.verbose;
    std::panic::set_hook(Box::new(move |info| {
        let what = info.payload_as_str().unwrap_or("a panic");
        eprintln!("pghook: error: internal error, please report it: {}", one_line(what));
        if verbose {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let interrupt = Interrupt::new();
    if let Err(message) = interrupt_on_signals(interrupt.clone()) {
        eprintln!("pghook: error: {message}");
        return ExitCode::FAILURE;
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(execute(cli, interrupt))));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(failure)) => {
            eprintln!("pghook: error: {}", failure.message);
            // 130: the shell's code for a command stopped by Ctrl-C.
            if failure.interrupted { ExitCode::from(130) } else { ExitCode::FAILURE }
        }
        Err(_) => ExitCode::FAILURE,
    }
}
