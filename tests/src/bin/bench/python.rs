//! pghook's Python package against Airflow's `PostgresHook` (psycopg2), each
//! call in a Python process of its own from the same virtualenv, on the same
//! cluster and tables: `get_records` of many rows of typical column types,
//! `bulk_load`/`bulk_dump` of the bench's file, and `insert_rows` of
//! generated rows, as Airflow's default (psycopg2's `executemany`) and with
//! `fast_executemany=True` (`execute_values`). The driver times the call
//! itself (making the hook included); the bench takes the process's peak
//! RSS. Results are checked alike: a hash of every row's `repr`, the dumps
//! byte for byte, the inserted tables by checksum.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use pghook_tests::Cluster;

use super::{Measure, insert_rows, last_line, python_command, try_measure};

/// Runs one call with Airflow's hook or pghook's and writes `SECONDS
/// SUMMARY` to the file named by the first argument: the wall time from
/// making the hook to the call's return, and what the result was (for
/// `get_records`, the row count and a sha256 of every row's `repr`).
/// Arguments: `OUT airflow|pghook import|warm|get_records SQL|bulk_load TABLE
/// FILE|bulk_dump TABLE FILE|insert_rows TABLE ROWS FIELDS|insert_rows_fast
/// TABLE ROWS FIELDS`.
const DRIVER: &str = r#"
import sys, time
out, side, op, *args = sys.argv[1:]
if side == "airflow":
    import airflow.providers.postgres.hooks.postgres as postgres
    # With psycopg 3 installed too, the provider would pick it; pghook matches psycopg2.
    postgres.USE_PSYCOPG3 = False
    make_hook = postgres.PostgresHook
else:
    import os, pghook
    make_hook = lambda: pghook.PostgresHook(root=os.getcwd())
summary = ""
if op.startswith("insert_rows"):
    import datetime, decimal
    table, count, fields = args
    # The rows of insert_rows.rs: a quote and a non-ASCII letter every tenth
    # name, a null amount every hundredth row, days of 2024.
    first = datetime.date(2024, 1, 1)
    rows = [
        (
            i,
            f"O'Neil Søn {i}" if i % 10 == 0 else f"customer {i}",
            None if i % 100 == 7 else decimal.Decimal(f"{(i * 7919) % 1000000}.{i % 100:02}"),
            first + datetime.timedelta(days=i % 366),
        )
        for i in range(1, int(count) + 1)
    ]
    fast = op == "insert_rows_fast"
started = time.monotonic()
if op != "import":
    hook = make_hook()
if op == "warm":
    assert hook.test_connection()[0]
elif op == "get_records":
    rows = hook.get_records(args[0])
elif op in ("bulk_load", "bulk_dump"):
    getattr(hook, op)(*args)
elif op.startswith("insert_rows"):
    hook.insert_rows(table, rows, target_fields=fields.split(","), commit_every=1000, fast_executemany=fast)
seconds = time.monotonic() - started
if side == "airflow" and op != "import":
    assert type(hook.conn).__module__.startswith("psycopg2"), type(hook.conn)
if op == "get_records":
    import hashlib
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(row).encode())
    summary = f"{len(rows)} rows, sha256 of reprs {digest.hexdigest()[:16]}"
with open(out, "w") as f:
    f.write(f"{seconds} {summary}")
"#;

/// The table `get_records` reads: int, bigint, text, numeric, timestamp,
/// timestamptz, date and bool columns, a null now and then.
const RECORDS_TABLE: &str = "create unlogged table g with (autovacuum_enabled = off) as select \
     i as id, i::bigint * 1000003 as big, 'customer ' || i as name, \
     case when i % 100 = 7 then null else (i::bigint * 7919 % 1000000)::numeric / 100 end as amount, \
     timestamp '2024-01-01' + i * interval '1 second 1 millisecond' as at, \
     timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute' as at_tz, \
     date '2024-01-01' + i % 366 as day, i % 3 = 0 as flag \
     from generate_series(1, {rows}) i";

/// Which hook a process runs.
#[derive(Clone, Copy)]
enum Side {
    Pghook,
    Airflow,
}

impl Side {
    fn arg(self) -> &'static str {
        match self {
            Side::Pghook => "pghook",
            Side::Airflow => "airflow",
        }
    }
}

/// One process: its wall time and peak RSS, the call's own time and
/// summary.
struct Run {
    process: Measure,
    call_seconds: f64,
    summary: String,
}

/// Runs the driver for `side` with `args` in `dir`.
fn run(cluster: &Cluster, dir: &Path, side: Side, args: &[&str]) -> Result<Run, String> {
    let out = dir.join(format!("python-{}.out", side.arg()));
    let mut cmd: Command = python_command(cluster, dir, DRIVER);
    cmd.arg(&out).arg(side.arg()).args(args);
    let process = try_measure(&mut cmd).map_err(|e| last_line(&e).to_string())?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let (seconds, summary) = text.split_once(' ').unwrap_or((&text, ""));
    let call_seconds = seconds.parse().map_err(|_| format!("the driver wrote {text:?}"))?;
    Ok(Run { process, call_seconds, summary: summary.to_string() })
}

/// The sizes the comparison runs at.
pub struct Sizes {
    /// Rows `get_records` reads.
    pub records: usize,
    /// Rows `insert_rows` inserts.
    pub insert_rows: usize,
    /// Megabytes of `load_file`, for the header.
    pub megabytes: usize,
}

/// One line of the tables: the operation's name and both sides' runs.
struct Line {
    name: String,
    ours: Result<Run, String>,
    theirs: Result<Run, String>,
}

/// Runs the comparison in `dir`, loading `load_file` (a tab-delimited file
/// for the table `t`, which exists) and prints it; true when every run
/// succeeded and the results are alike. Skipped, with a line saying so,
/// when the virtualenv cannot import either hook.
pub fn compare(cluster: &Cluster, dir: &Path, load_file: &str, sizes: &Sizes) -> bool {
    println!(
        "Python: get_records of {} rows, bulk_load/bulk_dump of {} MB, insert_rows of {} rows; \
         pghook.PostgresHook vs Airflow's PostgresHook (psycopg2), each call in a process of its own",
        sizes.records, sizes.megabytes, sizes.insert_rows
    );
    let imports = [Side::Pghook, Side::Airflow].map(|side| run(cluster, dir, side, &["import"]));
    let (Ok(ours), Ok(theirs)) = (&imports[0], &imports[1]) else {
        let reasons: Vec<&str> = imports.iter().filter_map(|r| r.as_ref().err().map(String::as_str)).collect();
        println!("Python: skipped, the .venv cannot import a hook (scripts/bench installs both): {reasons:?}");
        return true;
    };
    println!(
        "importing alone: pghook {:.2}s and {} MiB, Airflow's hook {:.2}s and {} MiB (both included in peak RSS below)",
        ours.process.seconds,
        ours.process.peak_rss_kib / 1024,
        theirs.process.seconds,
        theirs.process.peak_rss_kib / 1024
    );
    // pghook compiles its guest on first use and caches it; measure it warm, as it runs deployed.
    if let Err(e) = run(cluster, dir, Side::Pghook, &["warm"]) {
        println!("pghook's warm-up failed: {e}");
        return false;
    }
    let mut alike = true;
    let mut lines = Vec::new();

    cluster.psql(&RECORDS_TABLE.replace("{rows}", &sizes.records.to_string()));
    cluster.psql("vacuum analyze g");
    let select = "select * from g order by id";
    let records = [Side::Pghook, Side::Airflow].map(|side| run(cluster, dir, side, &["get_records", select]));
    let [ours, theirs] = records;
    let same = matches!((&ours, &theirs), (Ok(o), Ok(t)) if o.summary == t.summary);
    let shown = |r: &Result<Run, String>| r.as_ref().map_or_else(|e| format!("failed: {e}"), |r| r.summary.clone());
    println!("get_records: pghook's {}; Airflow's {}; equal: {same}", shown(&ours), shown(&theirs));
    alike &= same;
    lines.push(Line { name: "get_records".into(), ours, theirs });

    let mut loads = Vec::new();
    let mut dumps = Vec::new();
    for side in [Side::Pghook, Side::Airflow] {
        cluster.psql("truncate t");
        loads.push(run(cluster, dir, side, &["bulk_load", "t", load_file]));
        cluster.psql("vacuum t");
        let dump_file = format!("py-out-{}.tsv", side.arg());
        dumps.push(run(cluster, dir, side, &["bulk_dump", "t", &dump_file]));
    }
    let [ours_dump, theirs_dump] = ["py-out-pghook.tsv", "py-out-airflow.tsv"].map(|f| std::fs::read(dir.join(f)).ok());
    let same = ours_dump.is_some() && ours_dump == theirs_dump;
    drop((ours_dump, theirs_dump));
    for f in ["py-out-pghook.tsv", "py-out-airflow.tsv"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    println!("bulk_dump: dumps identical: {same}");
    alike &= same;
    for (name, mut runs) in [("bulk_load", loads), ("bulk_dump", dumps)] {
        let theirs = runs.pop().expect("two sides");
        let ours = runs.pop().expect("two sides");
        lines.push(Line { name: name.into(), ours, theirs });
    }

    let count = sizes.insert_rows.to_string();
    for op in ["insert_rows", "insert_rows_fast"] {
        let mut tables = Vec::new();
        let mut runs = Vec::new();
        for side in [Side::Pghook, Side::Airflow] {
            cluster.psql(&format!("truncate {}", insert_rows::TABLE));
            runs.push(run(cluster, dir, side, &[op, insert_rows::TABLE, &count, insert_rows::FIELDS]));
            tables.push(insert_rows::checksum(cluster));
        }
        let same = tables[0] == tables[1];
        println!("{op}: pghook's table {}; Airflow's {}; identical: {same}", tables[0], tables[1]);
        alike &= same;
        let theirs = runs.pop().expect("two sides");
        let ours = runs.pop().expect("two sides");
        let name = if op == "insert_rows" { "insert_rows" } else { "insert_rows fast" };
        lines.push(Line { name: name.into(), ours, theirs });
    }

    print_tables(&lines);
    let ran = lines.iter().all(|l| l.ours.is_ok() && l.theirs.is_ok());
    for line in lines.iter().filter(|l| l.ours.is_err() || l.theirs.is_err()) {
        for (who, run) in [("pghook", &line.ours), ("Airflow", &line.theirs)] {
            if let Err(e) = run {
                println!("{} with {who} failed: {e}", line.name);
            }
        }
    }
    ran && alike
}

/// A table of the call's time, then one of the process's peak RSS: a row
/// per operation, pghook beside Airflow and their ratio.
fn print_tables(lines: &[Line]) {
    type Quantity = (&'static str, fn(&Run) -> f64, fn(f64) -> String);
    let quantities: [Quantity; 2] = [
        ("time", |r| r.call_seconds, |s| format!("{s:.2}s")),
        ("peak RSS", |r| r.process.peak_rss_kib as f64, |kib| format!("{} MiB", kib as u64 / 1024)),
    ];
    let mut table = String::new();
    for (quantity, value, show) in quantities {
        let _ = writeln!(table, "{quantity:<17} {:>11} {:>11} {:>15}", "pghook", "Airflow", "pghook/Airflow");
        for line in lines {
            let cell = |r: &Result<Run, String>| r.as_ref().map_or("-".to_string(), |r| show(value(r)));
            let ratio = match (&line.ours, &line.theirs) {
                (Ok(o), Ok(t)) => format!("{:.2}x", value(o) / value(t)),
                _ => "-".to_string(),
            };
            let _ =
                writeln!(table, "{:<17} {:>11} {:>11} {ratio:>15}", line.name, cell(&line.ours), cell(&line.theirs));
        }
    }
    print!("{table}");
    println!("time is the call's own (making the hook, then the call); peak RSS the whole process's; lower is better");
}
