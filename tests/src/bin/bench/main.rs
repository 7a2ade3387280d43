//! Speed and memory of pghook's data plane against `psql \copy` and against
//! Airflow's own `PostgresHook` (psycopg2), measured in the same run on the
//! same throwaway cluster, same table, same file. Prints ratios pghook / peer
//! for wall time and peak resident memory. Then the same for `insert_rows`
//! (see [`insert_rows`]), and pghook's Python package against Airflow's hook
//! in Python (see [`python`]).
//!
//! `scripts/bench [MEGABYTES] [ROWS] [RECORDS] [PYTHON_ROWS]` (default 300,
//! 1000000, 1000000 and 100000: the file loaded and dumped, the rows the CLI's
//! insert-rows inserts, the rows Python's get_records reads and its
//! insert_rows inserts), or `cargo build --release -p pghook -p pghook-tests`
//! then `target/release/bench`: it runs the `pghook` binary built next to it,
//! and Airflow and pghook's Python package from the `.venv` that
//! `scripts/setup` makes (skipped, with a line saying so, when that cannot
//! import them; `PGHOOK_PYTHON` names another Python).

mod insert_rows;
mod python;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pghook_tests::{Cluster, SUPERUSER, pg_bindir, sibling_pghook_binary};

/// Airflow's `PostgresHook` run as a task would run it, the connection read
/// from `AIRFLOW_CONN_POSTGRES_DEFAULT` (no metadata database involved).
/// Arguments: `bulk_load|bulk_dump TABLE FILE`, or `insert_rows TABLE FILE
/// FIELDS TIMINGS` (see [`insert_rows`]); none only imports the hook.
const AIRFLOW_DRIVER: &str = r#"
import sys, time
started = time.monotonic()
import airflow.providers.postgres.hooks.postgres as postgres
# With psycopg 3 installed too, the provider would pick it; pghook matches psycopg2.
postgres.USE_PSYCOPG3 = False
if len(sys.argv) > 1 and sys.argv[1] == "insert_rows":
    import datetime, decimal, json
    table, path, fields, timings = sys.argv[2:]
    imported = time.monotonic()
    def typed(value):
        # pghook's typed values: {"$date": "2024-02-29"} is a datetime.date.
        if isinstance(value, dict):
            (tag, text), = value.items()
            return {"$date": datetime.date.fromisoformat}[tag](text)
        return value
    # Numbers with a point are Decimals, as pghook reads them as numeric.
    with open(path) as f:
        rows = [tuple(map(typed, json.loads(line, parse_float=decimal.Decimal))) for line in f]
    read = time.monotonic()
    hook = postgres.PostgresHook()
    hook.insert_rows(table, rows, target_fields=fields.split(","), commit_every=1000, fast_executemany=True)
    assert type(hook.conn).__module__.startswith("psycopg2"), type(hook.conn)
    done = time.monotonic()
    with open(timings, "w") as out:
        out.write(f"{imported - started} {read - imported} {done - read}")
elif len(sys.argv) > 1:
    method, table, path = sys.argv[1:]
    hook = postgres.PostgresHook()
    getattr(hook, method)(table, path)
    assert type(hook.conn).__module__.startswith("psycopg2"), type(hook.conn)
"#;

/// The two halves of the job every peer runs: load `in.tsv` into `t`, then
/// dump `t`.
#[derive(Clone, Copy)]
enum Job {
    Load,
    Dump,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Load => "load",
            Job::Dump => "dump",
        }
    }
}

/// Wall time and peak resident memory of one command.
struct Measure {
    seconds: f64,
    peak_rss_kib: u64,
}

/// One way of running the job.
#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Psql,
    Pghook,
    Airflow,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Psql => "psql \\copy",
            Peer::Pghook => "pghook",
            Peer::Airflow => "Airflow",
        }
    }

    /// The name in a ratio's header, `pghook/<short name>`.
    fn short_name(self) -> &'static str {
        match self {
            Peer::Psql => "psql",
            _ => self.name(),
        }
    }

    /// The command that runs `job` on `file` (in `dir`) against the table `t`.
    fn command(self, cluster: &Cluster, dir: &Path, job: Job, file: &str) -> Command {
        match (self, job) {
            (Peer::Psql, Job::Load) => psql(cluster, dir, &format!("\\copy t from '{file}'")),
            (Peer::Psql, Job::Dump) => psql(cluster, dir, &format!("\\copy t to '{file}'")),
            (Peer::Pghook, Job::Load) => pghook(cluster, dir, &["bulk-load", "--table", "t", "--file", file]),
            (Peer::Pghook, Job::Dump) => pghook(cluster, dir, &["bulk-dump", "--table", "t", "--file", file]),
            (Peer::Airflow, Job::Load) => airflow(cluster, dir, &["bulk_load", "t", file]),
            (Peer::Airflow, Job::Dump) => airflow(cluster, dir, &["bulk_dump", "t", file]),
        }
    }
}

/// A peer's measures of the load and of the dump, and where it dumped.
struct Results {
    peer: Peer,
    load: Measure,
    dump: Measure,
    dump_file: PathBuf,
}

impl Results {
    fn of(&self, job: Job) -> &Measure {
        match job {
            Job::Load => &self.load,
            Job::Dump => &self.dump,
        }
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd`, sampling its peak RSS every 10 ms; its stderr on failure.
fn try_measure(cmd: &mut Command) -> Result<Measure, String> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| e.to_string())?;
    // Drained on a thread so that a chatty child never blocks on a full pipe.
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stderr = stderr.join().unwrap_or_default();
    if status.success() { Ok(Measure { seconds, peak_rss_kib: peak }) } else { Err(format!("{status}: {stderr}")) }
}

fn measure(cmd: &mut Command) -> Measure {
    try_measure(cmd).unwrap_or_else(|e| panic!("{cmd:?} failed: {e}"))
}

fn psql(cluster: &Cluster, dir: &Path, command: &str) -> Command {
    let mut cmd = Command::new(pg_bindir().join("psql"));
    cmd.current_dir(dir)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", SUPERUSER, "-d", "postgres"])
        .args(["-p", &cluster.port.to_string(), "-c", command])
        .env("PGPASSWORD", pghook_tests::PASSWORD)
        .env("PGSSLMODE", "disable");
    cmd
}

fn pghook(cluster: &Cluster, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(sibling_pghook_binary());
    cmd.current_dir(dir).env("AIRFLOW_CONN_POSTGRES_DEFAULT", cluster.uri("sslmode=disable")).args(args);
    cmd
}

/// The virtualenv's Python running `script`, in `dir`, with an
/// `AIRFLOW_HOME` of its own there and the cluster as
/// `AIRFLOW_CONN_POSTGRES_DEFAULT` (which pghook reads too).
fn python_command(cluster: &Cluster, dir: &Path, script: &str) -> Command {
    let mut cmd = Command::new(pghook_tests::airflow::python());
    cmd.current_dir(dir)
        .env("AIRFLOW_HOME", dir.join("airflow-home"))
        .env("AIRFLOW_CONN_POSTGRES_DEFAULT", cluster.uri("sslmode=disable"))
        .args(["-c", script]);
    cmd
}

/// [`AIRFLOW_DRIVER`] with `args`.
fn airflow(cluster: &Cluster, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = python_command(cluster, dir, AIRFLOW_DRIVER);
    cmd.args(args);
    cmd
}

/// The last line of a process's stderr that says something.
fn last_line(text: &str) -> &str {
    text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default()
}

fn main() -> ExitCode {
    let arg = |n: usize, default: usize| std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (megabytes, insert_rows) = (arg(1, 300), arg(2, 1_000_000));
    let python_sizes = python::Sizes { records: arg(3, 1_000_000), insert_rows: arg(4, 100_000), megabytes };
    let cluster = Cluster::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let line = "123456\tsome customer name\t1234.56\t2024-01-01\tpadding padding padding padding\n";
    let rows = megabytes * 1_000_000 / line.len();
    let mut data = String::with_capacity(rows * line.len());
    for _ in 0..rows {
        data.push_str(line);
    }
    std::fs::write(dir.join("in.tsv"), &data).unwrap();
    drop(data);
    // No autovacuum: it would start at a moment of its own, in some peer's measure.
    cluster.psql(
        "create unlogged table t (id int, name text, amount numeric, day date, pad text) with (autovacuum_enabled = off)",
    );
    println!("{megabytes} MB, {rows} rows, PostgreSQL from {}", pg_bindir().display());

    // The CLI compiles the guest on its first run and caches it; measure it warm, as it runs deployed.
    measure(&mut pghook(&cluster, dir, &["test-connection"]));
    let mut peers = vec![Peer::Psql, Peer::Pghook];
    let with_airflow = match try_measure(&mut airflow(&cluster, dir, &[])) {
        Ok(import) => {
            println!(
                "Airflow's PostgresHook (psycopg2): importing it alone takes {:.2}s and {} MiB",
                import.seconds,
                import.peak_rss_kib / 1024
            );
            peers.push(Peer::Airflow);
            true
        }
        Err(error) => {
            let reason = last_line(&error);
            println!("Airflow's PostgresHook: skipped, .venv cannot import it (scripts/setup installs it): {reason}");
            false
        }
    };

    // Each peer loads into an empty table, then dumps what it loaded. The
    // vacuum between, unmeasured, sets the hint bits the dump's scan would
    // otherwise write: the dump measures reading.
    let results: Vec<Results> = peers
        .into_iter()
        .enumerate()
        .map(|(i, peer)| {
            cluster.psql("truncate t");
            let load = measure(&mut peer.command(&cluster, dir, Job::Load, "in.tsv"));
            cluster.psql("vacuum t");
            let dump_file = format!("out-{i}.tsv");
            let dump = measure(&mut peer.command(&cluster, dir, Job::Dump, &dump_file));
            Results { peer, load, dump, dump_file: dir.join(dump_file) }
        })
        .collect();

    let first_dump = std::fs::read(&results[0].dump_file).unwrap();
    let same = results[1..].iter().all(|r| std::fs::read(&r.dump_file).unwrap() == first_dump);
    print_table(&results, "time", |m| m.seconds, |s| format!("{s:.2}s"));
    print_table(&results, "peak RSS", |m| m.peak_rss_kib as f64, |kib| format!("{} MiB", kib as u64 / 1024));
    println!("ratios are pghook / peer: lower is better; dumps identical: {same}");
    for r in &results {
        let _ = std::fs::remove_file(&r.dump_file);
    }

    println!();
    let inserted_alike = insert_rows::compare(&cluster, dir, insert_rows, with_airflow);
    println!();
    let python_alike = python::compare(&cluster, dir, "in.tsv", &python_sizes);
    cluster.stop();
    if same && inserted_alike && python_alike { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One table of `quantity`: a column per peer, then pghook / peer for each
/// other peer; a row per job.
fn print_table(results: &[Results], quantity: &str, value: fn(&Measure) -> f64, show: fn(f64) -> String) {
    let ours = results.iter().find(|r| r.peer == Peer::Pghook).expect("pghook is measured");
    let others: Vec<&Results> = results.iter().filter(|r| r.peer != Peer::Pghook).collect();
    let mut header = format!("{quantity:<9}");
    for r in results {
        header += &format!(" {:>11}", r.peer.name());
    }
    for r in &others {
        header += &format!(" {:>15}", format!("pghook/{}", r.peer.short_name()));
    }
    println!("{header}");
    for job in [Job::Load, Job::Dump] {
        let mut row = format!("{:<9}", job.name());
        for r in results {
            row += &format!(" {:>11}", show(value(r.of(job))));
        }
        for r in &others {
            row += &format!(" {:>14.2}x", value(ours.of(job)) / value(r.of(job)));
        }
        println!("{row}");
    }
}
