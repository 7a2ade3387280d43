//! `insert_rows` side by side: `pghook insert-rows --fast` against Airflow's
//! `PostgresHook().insert_rows(..., commit_every=1000, fast_executemany=True)`
//! (psycopg2's `execute_values`), each one process reading the same
//! JSON-lines file of (int, text, numeric, date) rows into an empty table
//! with those columns, then the two tables compared by count and checksum.

use std::fmt::Write as _;
use std::path::Path;

use pghook_tests::Cluster;

use super::{Measure, airflow, last_line, pghook, try_measure};

/// The table both peers insert into (Python's insert_rows too), and the
/// columns they name.
pub const TABLE: &str = "r";
/// The columns of [`TABLE`] the rows fill, comma-separated.
pub const FIELDS: &str = "id,name,amount,day";

/// The `i`th of 366 days from 2024-01-01 (a leap year), as `YYYY-MM-DD`.
fn day_of_2024(i: usize) -> String {
    let mut day = i % 366;
    for (month, length) in [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31].into_iter().enumerate() {
        if day < length {
            return format!("2024-{:02}-{:02}", month + 1, day + 1);
        }
        day -= length;
    }
    unreachable!("366 days fit in 2024")
}

/// Row `i` as a JSON line: a name with a quote and a non-ASCII letter now and
/// then, and a null amount every hundredth row, so quoting and nulls are part
/// of the work.
fn row_line(i: usize) -> String {
    let name = if i.is_multiple_of(10) { format!("O'Neil Søn {i}") } else { format!("customer {i}") };
    let amount = if i % 100 == 7 { "null".to_string() } else { format!("{}.{:02}", (i * 7919) % 1_000_000, i % 100) };
    format!("[{i}, \"{name}\", {amount}, {{\"$date\": \"{}\"}}]\n", day_of_2024(i))
}

/// The table's row count and an md5 of all its rows in `id` order.
pub fn checksum(cluster: &Cluster) -> String {
    cluster
        .psql(&format!("select count(*) || ' rows, md5 ' || md5(string_agg(x::text, ',' order by id)) from {TABLE} x"))
}

/// What one peer did: its measure (or why it failed) and the table it left.
struct Outcome {
    measure: Result<Measure, String>,
    table: String,
}

fn run(cluster: &Cluster, cmd: &mut std::process::Command) -> Outcome {
    cluster.psql(&format!("truncate {TABLE}"));
    let measure = try_measure(cmd);
    Outcome { measure, table: checksum(cluster) }
}

/// Runs the comparison on `rows` rows in `dir` and prints it; true when
/// pghook succeeded and both tables (when Airflow ran) hold the same rows.
pub fn compare(cluster: &Cluster, dir: &Path, rows: usize, with_airflow: bool) -> bool {
    let mut data = String::with_capacity(rows * 64);
    for i in 1..=rows {
        data.push_str(&row_line(i));
    }
    std::fs::write(dir.join("rows.jsonl"), &data).unwrap();
    let megabytes = data.len() as f64 / 1e6;
    drop(data);
    cluster.psql(&format!(
        "create unlogged table {TABLE} (id int, name text, amount numeric, day date) with (autovacuum_enabled = off)"
    ));
    println!(
        "insert_rows: {rows} rows of (int, text, numeric, date), {megabytes:.0} MB of JSON lines, commit_every 1000: \
         pghook insert-rows --fast vs Airflow insert_rows(fast_executemany=True)"
    );

    let ours = run(
        cluster,
        &mut pghook(
            cluster,
            dir,
            &["insert-rows", "--table", TABLE, "--file", "rows.jsonl", "--target-fields", FIELDS, "--fast"],
        ),
    );
    let theirs = with_airflow
        .then(|| run(cluster, &mut airflow(cluster, dir, &["insert_rows", TABLE, "rows.jsonl", FIELDS, "timings"])));

    let ours_measure = match &ours.measure {
        Ok(m) => Some(m),
        Err(error) => {
            println!("pghook insert-rows failed: {}", last_line(error));
            None
        }
    };
    let theirs_measure = match theirs.as_ref().map(|t| &t.measure) {
        Some(Ok(m)) => Some(m),
        Some(Err(error)) => {
            println!("Airflow insert_rows failed: {}", last_line(error));
            None
        }
        None => None,
    };
    print_table(ours_measure, theirs_measure);
    if let (Some(ours), Some(theirs)) = (ours_measure, theirs_measure) {
        print_airflow_phases(dir, ours, theirs);
    }

    println!("pghook's table: {}", ours.table);
    let alike = match &theirs {
        Some(theirs) => {
            let alike = theirs.table == ours.table;
            println!("Airflow's table: {}; tables identical: {alike}", theirs.table);
            alike
        }
        None => true,
    };
    ours.measure.is_ok() && theirs.is_none_or(|t| t.measure.is_ok()) && alike
}

/// A row of the table: its name, the value it takes from a measure, and how
/// that value is shown.
type Quantity = (&'static str, fn(&Measure) -> f64, fn(f64) -> String);

/// Time and peak RSS, pghook beside Airflow and their ratio, in the layout
/// of the load/dump tables.
fn print_table(ours: Option<&Measure>, theirs: Option<&Measure>) {
    let mut table = format!("{:<9} {:>11} {:>11} {:>15}\n", "insert", "pghook", "Airflow", "pghook/Airflow");
    let rows: [Quantity; 2] = [
        ("time", |m| m.seconds, |s| format!("{s:.2}s")),
        ("peak RSS", |m| m.peak_rss_kib as f64, |kib| format!("{} MiB", kib as u64 / 1024)),
    ];
    for (quantity, value, show) in rows {
        let cell = |m: Option<&Measure>| m.map_or("-".to_string(), |m| show(value(m)));
        let ratio = match (ours, theirs) {
            (Some(o), Some(t)) => format!("{:.2}x", value(o) / value(t)),
            _ => "-".to_string(),
        };
        let _ = writeln!(table, "{quantity:<9} {:>11} {:>11} {ratio:>15}", cell(ours), cell(theirs));
    }
    print!("{table}");
}

/// Where Airflow's process spent its time (the driver writes it to
/// `timings`), and pghook's whole process against Airflow's `insert_rows`
/// call alone: without importing Airflow and without Python reading the file.
fn print_airflow_phases(dir: &Path, ours: &Measure, theirs: &Measure) {
    let Ok(text) = std::fs::read_to_string(dir.join("timings")) else { return };
    let phases: Vec<f64> = text.split_whitespace().filter_map(|s| s.parse().ok()).collect();
    let [import, read, call] = phases[..] else { return };
    println!(
        "Airflow's {:.2}s: {import:.2}s importing the hook, {read:.2}s reading the file into Python values, \
         {call:.2}s in insert_rows; pghook's whole process / that call alone: {:.2}x",
        theirs.seconds,
        ours.seconds / call
    );
}
