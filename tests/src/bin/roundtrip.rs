//! The main job: a real round trip through the `pghook` CLI against a
//! throwaway PostgreSQL it starts and stops itself. Creates a table,
//! bulk-loads a generated file, queries it, bulk-dumps it back and compares.
//!
//! `scripts/demo [ROWS]`, or `cargo build --release -p pghook -p pghook-tests`
//! then `target/release/roundtrip`: it runs the `pghook` binary built next to it.

use std::process::{Command, ExitCode};
use std::time::Instant;

use pghook_tests::{Cluster, sibling_pghook_binary};

fn main() -> ExitCode {
    let rows: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    println!("starting a throwaway PostgreSQL cluster from {}", pghook_tests::pg_bindir().display());
    let cluster = Cluster::start_plain();
    let result = round_trip(&cluster, rows);
    cluster.stop();
    println!("stopped the cluster");
    match result {
        Ok(()) => {
            println!("round trip OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("round trip FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn round_trip(cluster: &Cluster, rows: usize) -> Result<(), String> {
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let uri = cluster.uri("application_name=pghook-roundtrip");
    let pghook = |args: &[&str]| -> Result<String, String> {
        println!("$ pghook {}", args.join(" "));
        let out = Command::new(sibling_pghook_binary())
            .current_dir(work.path())
            .env("AIRFLOW_CONN_POSTGRES_DEFAULT", &uri)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.is_empty() {
            print!("{stderr}");
        }
        if !out.status.success() {
            return Err(format!("pghook {} failed", args.join(" ")));
        }
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !stdout.is_empty() {
            println!("{stdout}");
        }
        Ok(stdout)
    };
    let input = work.path().join("orders.tsv");
    let text: String = (0..rows)
        .map(|i| format!("{i}\tcustomer {}\t{}.{:02}\t2024-01-{:02}\n", i % 997, i % 500, i % 100, i % 28 + 1))
        .collect();
    std::fs::write(&input, &text).map_err(|e| e.to_string())?;
    println!("generated {} rows ({} bytes) in orders.tsv", rows, text.len());
    pghook(&["test-connection"])?;
    pghook(&[
        "run",
        "--sql",
        "drop table if exists orders; create table orders (id bigint primary key, customer text, amount numeric(10,2), day date)",
        "--split-statements",
    ])?;
    let started = Instant::now();
    pghook(&["bulk-load", "--table", "public.orders", "--file", "orders.tsv"])?;
    let load = started.elapsed();
    let count = pghook(&["records", "--sql", "select count(*), sum(amount)::text from orders"])?;
    let expected_sum: u64 = (0..rows as u64).map(|i| (i % 500) * 100 + i % 100).sum();
    let expected = format!("[[{rows},\"{}.{:02}\"]]", expected_sum / 100, expected_sum % 100);
    if count != expected {
        return Err(format!("query returned {count}, expected {expected}"));
    }
    pghook(&["records", "--format", "table", "--sql", "select * from orders order by id limit 3"])?;
    let started = Instant::now();
    pghook(&["bulk-dump", "--table", "orders", "--file", "orders.out.tsv"])?;
    let dump = started.elapsed();
    let dumped = std::fs::read(work.path().join("orders.out.tsv")).map_err(|e| e.to_string())?;
    if dumped != text.as_bytes() {
        return Err("the dumped file differs from the loaded one".into());
    }
    println!("the dumped file is identical to the loaded one");
    let mb = text.len() as f64 / 1e6;
    println!(
        "bulk_load {:.2}s ({:.0} MB/s), bulk_dump {:.2}s ({:.0} MB/s)",
        load.as_secs_f64(),
        mb / load.as_secs_f64(),
        dump.as_secs_f64(),
        mb / dump.as_secs_f64()
    );
    Ok(())
}
