//! `cargo bench -p pghook --bench calls`: what a hook call costs a busy
//! service, measured side by side with native tokio-postgres on the same
//! throwaway cluster in the same run, printed as ratios.

use std::time::{Duration, Instant};

use pghook::{HookArgs, MapConnections, Policy, Runtime, Tenant};
use pghook_tests::Cluster;

/// Time per operation of `op`, over `rounds` runs after a warm-up.
async fn per_op<F, Fut>(rounds: u32, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..rounds / 10 {
        op().await;
    }
    let started = Instant::now();
    for _ in 0..rounds {
        op().await;
    }
    started.elapsed() / rounds
}

/// Calls per second of `callers` concurrent loops of `select 1` for `window`.
async fn throughput(tenant: &Tenant, callers: usize, window: Duration) -> f64 {
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let hook = tenant.hook(HookArgs::conn_id("c"));
        tasks.push(tokio::spawn(async move {
            let mut calls = 0u64;
            while Instant::now() < deadline {
                hook.get_records("select 1", None).await.unwrap();
                calls += 1;
            }
            calls
        }));
    }
    let mut calls = 0;
    for task in tasks {
        calls += task.await.unwrap();
    }
    calls as f64 / window.as_secs_f64()
}

fn micros(d: Duration) -> String {
    format!("{:>9.1} µs", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() {
    let pg = Cluster::plain();
    let uri = pg.uri("");
    let root = tempfile::tempdir().unwrap();
    let runtime = Runtime::new().unwrap();
    let policy =
        || Policy::new(root.path()).allow_host("127.0.0.1").with_connections(MapConnections::new().with("c", &uri));
    let fresh = runtime.tenant(policy());
    let reusing = runtime.tenant(policy().with_session_reuse(64));

    // Native tokio-postgres: an open connection, and connect + query + close.
    let native_config =
        format!("host=127.0.0.1 port={} user=postgres password='s3cret pw/:@' dbname=postgres", pg.port);
    let (client, connection) = tokio_postgres::connect(&native_config, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let native_open = per_op(2000, || async {
        client.query("select 1", &[]).await.unwrap();
    })
    .await;
    // What get_records does, natively: BEGIN, the query, COMMIT, as
    // Airflow's hook runs every statement in a transaction.
    let native_transaction = per_op(2000, || async {
        let (begun, prepared) =
            futures_util::future::join(client.batch_execute("BEGIN"), client.prepare("select 1")).await;
        begun.unwrap();
        client.query(&prepared.unwrap(), &[]).await.unwrap();
        client.batch_execute("COMMIT").await.unwrap();
    })
    .await;
    let native_connect = per_op(200, || async {
        let (client, connection) = tokio_postgres::connect(&native_config, tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(connection);
        client.query("select 1", &[]).await.unwrap();
        drop(client);
        driver.await.unwrap().unwrap();
    })
    .await;

    let explain_hook = fresh.hook(HookArgs::conn_id("c"));
    let explain = per_op(20000, || async {
        explain_hook.explain().await.unwrap();
    })
    .await;
    let fresh_hook = fresh.hook(HookArgs::conn_id("c"));
    let records_fresh = per_op(200, || async {
        fresh_hook.get_records("select 1", None).await.unwrap();
    })
    .await;
    let reuse_hook = reusing.hook(HookArgs::conn_id("c"));
    let records_reused = per_op(2000, || async {
        reuse_hook.get_records("select 1", None).await.unwrap();
    })
    .await;

    println!("one call                                   time  ratio");
    println!("explain (no I/O)                     {}", micros(explain));
    println!("native query on an open connection   {}  1.00x", micros(native_open));
    println!(
        "native BEGIN, query, COMMIT          {}  {:.2}x   (the round trips of get_records)",
        micros(native_transaction),
        native_transaction.as_secs_f64() / native_open.as_secs_f64()
    );
    println!(
        "pghook get_records, session reused   {}  {:.2}x   ({:.2}x native BEGIN, query, COMMIT)",
        micros(records_reused),
        records_reused.as_secs_f64() / native_open.as_secs_f64(),
        records_reused.as_secs_f64() / native_transaction.as_secs_f64()
    );
    println!("native connect + query + close       {}  1.00x", micros(native_connect));
    println!(
        "pghook get_records, new session      {}  {:.2}x native connect",
        micros(records_fresh),
        records_fresh.as_secs_f64() / native_connect.as_secs_f64()
    );

    let window = Duration::from_secs(3);
    let per_call = throughput(&fresh, 32, window).await;
    let pooled = throughput(&reusing, 32, window).await;
    println!("32 concurrent callers          calls/s  ratio");
    println!("new session per call      {per_call:>12.0}  1.00x");
    println!("sessions reused           {pooled:>12.0}  {:.2}x", pooled / per_call);
}
