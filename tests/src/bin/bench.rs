//! Speed and memory of pghook's data plane against `psql \copy`, measured in
//! the same run on the same throwaway cluster. Prints ratios (pghook / psql).
//!
//! `scripts/bench [MEGABYTES]` (default 200), or `cargo build --release -p pghook
//! -p pghook-tests` then `target/release/bench`: it runs the `pghook` binary
//! built next to it.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pghook_tests::{Cluster, SUPERUSER, pg_bindir, sibling_pghook_binary};

/// Wall time and peak resident memory of one command.
struct Measure {
    seconds: f64,
    peak_rss_kib: u64,
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn measure(cmd: &mut Command) -> Measure {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawning");
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("waiting") {
            assert!(status.success(), "{cmd:?} failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Measure { seconds: started.elapsed().as_secs_f64(), peak_rss_kib: peak }
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

fn main() -> ExitCode {
    let megabytes: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(200);
    let cluster = Cluster::start_plain();
    let dir = tempfile::tempdir().unwrap();
    let line = "123456\tsome customer name\t1234.56\t2024-01-01\tpadding padding padding padding\n";
    let rows = megabytes * 1_000_000 / line.len();
    let mut data = String::with_capacity(rows * line.len());
    for _ in 0..rows {
        data.push_str(line);
    }
    std::fs::write(dir.path().join("in.tsv"), &data).unwrap();
    drop(data);
    cluster.psql("create unlogged table t (id int, name text, amount numeric, day date, pad text)");
    println!("{megabytes} MB, {rows} rows, PostgreSQL from {}", pg_bindir().display());

    let mut results = Vec::new();
    for (what, sql) in [("load", "\\copy t from 'in.tsv'"), ("dump", "\\copy t to 'out-psql.tsv'")] {
        cluster.psql("truncate t");
        if what == "dump" {
            measure(&mut psql(&cluster, dir.path(), "\\copy t from 'in.tsv'"));
        }
        let peer = measure(&mut psql(&cluster, dir.path(), sql));
        cluster.psql("truncate t");
        let ours = if what == "load" {
            measure(&mut pghook(&cluster, dir.path(), &["bulk-load", "--table", "t", "--file", "in.tsv"]))
        } else {
            measure(&mut psql(&cluster, dir.path(), "\\copy t from 'in.tsv'"));
            measure(&mut pghook(&cluster, dir.path(), &["bulk-dump", "--table", "t", "--file", "out-pghook.tsv"]))
        };
        results.push((what, peer, ours));
    }
    cluster.stop();
    let same = std::fs::read(dir.path().join("out-psql.tsv")).unwrap()
        == std::fs::read(dir.path().join("out-pghook.tsv")).unwrap();
    println!(
        "{:<6} {:>12} {:>12} {:>8} {:>14} {:>14}",
        "", "psql \\copy", "pghook", "time", "psql peak RSS", "pghook peak RSS"
    );
    for (what, peer, ours) in &results {
        println!(
            "{:<6} {:>11.2}s {:>11.2}s {:>7.2}x {:>11} MiB {:>11} MiB",
            what,
            peer.seconds,
            ours.seconds,
            ours.seconds / peer.seconds,
            peer.peak_rss_kib / 1024,
            ours.peak_rss_kib / 1024
        );
    }
    println!("time ratio = pghook / psql (lower is better); dumps identical: {same}");
    if same { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
