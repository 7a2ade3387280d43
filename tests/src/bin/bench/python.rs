//! pghook's Python package against Airflow's `PostgresHook` (psycopg2), each
//! call in a Python process of its own from the same virtualenv, on the same
//! cluster and tables: `get_records` of many rows of typical column types,
//! `bulk_load`/`bulk_dump` of the bench's file, and `insert_rows` of
//! generated rows, as Airflow's default (psycopg2's `executemany`) and with
//! `fast_executemany=True` (`execute_values`). The driver times the call
//! itself (making the hook included); the bench takes the process's peak
//! RSS. Each call runs five times a side, the sides taking turns, and the
//! tables show the medians: this machine's times move by a fifth between
//! runs. Results are checked alike: a hash of every row's `repr`, the dumps
//! by size and hash, the inserted tables by checksum.

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
    /// What the run left, as `both`'s `after` tells it.
    left: String,
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
    Ok(Run { process, call_seconds, summary: summary.to_string(), left: String::new() })
}

/// How many times each side runs each call: the tables show the medians.
const REPEATS: usize = 5;

/// Runs the driver for each side [`REPEATS`] times, the sides taking turns,
/// with `args`; `before` readies the cluster for each run, `after` tells
/// what the run left (a table's checksum, a dump's), which must be the same
/// each time, as must the driver's summary. Each side's result carries the
/// median call time and the median peak RSS.
fn both(
    cluster: &Cluster,
    dir: &Path,
    args: impl Fn(Side) -> Vec<String>,
    before: impl Fn(Side),
    after: impl Fn(Side) -> String,
) -> [Result<Run, String>; 2] {
    let sides = [Side::Pghook, Side::Airflow];
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    let mut failed: [Option<String>; 2] = [None, None];
    for round in 0..REPEATS {
        // Each side goes first in turn.
        for i in [round % 2, 1 - round % 2] {
            let side = sides[i];
            if failed[i].is_some() {
                continue;
            }
            before(side);
            let args = args(side);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match run(cluster, dir, side, &args) {
                Ok(mut done) => {
                    done.left = after(side);
                    runs[i].push(done);
                }
                Err(e) => failed[i] = Some(e),
            }
        }
    }
    let median = |runs: Vec<Run>, failed: Option<String>| -> Result<Run, String> {
        if let Some(e) = failed {
            return Err(e);
        }
        let first = &runs[0];
        if runs.iter().any(|r| r.summary != first.summary || r.left != first.left) {
            return Err("the runs disagree on their result".into());
        }
        let middle = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Ok(Run {
            process: Measure {
                seconds: middle(runs.iter().map(|r| r.process.seconds).collect()),
                peak_rss_kib: middle(runs.iter().map(|r| r.process.peak_rss_kib as f64).collect()) as u64,
            },
            call_seconds: middle(runs.iter().map(|r| r.call_seconds).collect()),
            summary: first.summary.clone(),
            left: first.left.clone(),
        })
    };
    let [ours, theirs] = runs;
    let [ours_failed, theirs_failed] = failed;
    [median(ours, ours_failed), median(theirs, theirs_failed)]
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
         pghook.PostgresHook vs Airflow's PostgresHook (psycopg2), each call in a process of its own, \
         {REPEATS} runs a side taking turns, medians shown",
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
    let mut lines = Vec::new();
    let mut alike = true;

    cluster.psql(&RECORDS_TABLE.replace("{rows}", &sizes.records.to_string()));
    cluster.psql("vacuum analyze g");
    let select = "select * from g order by id";
    let [ours, theirs] = both(cluster, dir, |_| vec!["get_records".into(), select.into()], |_| {}, |_| String::new());
    let same = matches!((&ours, &theirs), (Ok(o), Ok(t)) if o.summary == t.summary);
    let shown = |r: &Result<Run, String>| r.as_ref().map_or_else(|e| format!("failed: {e}"), |r| r.summary.clone());
    println!("get_records: pghook's {}; Airflow's {}; equal: {same}", shown(&ours), shown(&theirs));
    alike &= same;
    lines.push(Line { name: "get_records".into(), ours, theirs });

    let load = |_: Side| vec!["bulk_load".into(), "t".into(), load_file.into()];
    let truncate = |_: Side| drop(cluster.psql("truncate t"));
    // The table each load left: its rows' count and a sum of their hashes.
    let loaded = |_: Side| {
        cluster.psql("vacuum t");
        cluster.psql("select count(*) || ' rows, hash sum ' || coalesce(sum(hashtext(t::text)::bigint), 0) from t")
    };
    let [ours, theirs] = both(cluster, dir, load, truncate, loaded);
    let same = matches!((&ours, &theirs), (Ok(o), Ok(t)) if o.left == t.left);
    println!("bulk_load: tables identical: {same}");
    alike &= same;
    lines.push(Line { name: "bulk_load".into(), ours, theirs });
    let dump_file = |side: Side| format!("py-out-{}.tsv", side.arg());
    let read_dump = |side: Side| {
        let Ok(bytes) = std::fs::read(dir.join(dump_file(side))) else {
            return format!("no dump from {}", side.arg());
        };
        let _ = std::fs::remove_file(dir.join(dump_file(side)));
        let mut hash = std::hash::DefaultHasher::new();
        std::hash::Hasher::write(&mut hash, &bytes);
        format!("{} bytes, hash {:016x}", bytes.len(), std::hash::Hasher::finish(&hash))
    };
    let dump = |side: Side| vec!["bulk_dump".into(), "t".into(), dump_file(side)];
    let [ours, theirs] = both(cluster, dir, dump, |_| {}, read_dump);
    let same = matches!((&ours, &theirs), (Ok(o), Ok(t)) if o.left == t.left);
    println!("bulk_dump: dumps identical: {same}");
    alike &= same;
    lines.push(Line { name: "bulk_dump".into(), ours, theirs });

    let count = sizes.insert_rows.to_string();
    for op in ["insert_rows", "insert_rows_fast"] {
        let args = |_: Side| vec![op.into(), insert_rows::TABLE.into(), count.clone(), insert_rows::FIELDS.into()];
        let truncate = |_: Side| drop(cluster.psql(&format!("truncate {}", insert_rows::TABLE)));
        let [ours, theirs] = both(cluster, dir, args, truncate, |_| insert_rows::checksum(cluster));
        let left = |r: &Result<Run, String>| r.as_ref().map_or_else(|e| format!("failed: {e}"), |r| r.left.clone());
        let same = matches!((&ours, &theirs), (Ok(o), Ok(t)) if o.left == t.left);
        println!("{op}: pghook's table {}; Airflow's {}; identical: {same}", left(&ours), left(&theirs));
        alike &= same;
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
