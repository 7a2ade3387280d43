//! Files stay under the tenant's root whatever happens on disk meanwhile:
//! a directory swapped for a link out, FIFOs, failed and stopped dumps.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pghook::{ErrorKind, HookArgs, MapConnections, Policy, Value};
use pghook_tests::{Cluster, runtime, tenant};

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn mkfifo(path: &Path) {
    assert!(std::process::Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// A tenant on `root` whose calls stop after `limit`.
fn limited(root: &Path, connections: MapConnections, limit: Duration) -> pghook::Tenant {
    runtime().tenant(Policy::new(root).allow_host("127.0.0.1").with_connections(connections).with_call_timeout(limit))
}

/// Swap `root/sub` between the real directory and a link to `outside`, a
/// bounded number of times.
fn flip(root: PathBuf, outside: PathBuf) {
    let (sub, stash) = (root.join("sub"), root.join("stash"));
    for _ in 0..200 {
        std::fs::rename(&sub, &stash).unwrap();
        std::os::unix::fs::symlink(&outside, &sub).unwrap();
        std::thread::sleep(Duration::from_millis(3));
        std::fs::remove_file(&sub).unwrap();
        std::fs::rename(&stash, &sub).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_link_out_is_never_followed() {
    let pg = Cluster::plain();
    let db = pg.create_database("files_race");
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    // Over the Unix socket without a password: quick calls, so many race the flips.
    let socket =
        format!("postgres://postgres@{}:{}/{db}", pg.socket_dir.to_string_lossy().replace('/', "%2F"), pg.port);
    let hook = tenant(root.path(), &[("c", &socket)]).hook(HookArgs::conn_id("c"));
    let setup =
        ["create table loaded (line text)", "create table source as select 'dumped' from generate_series(1, 100)"];
    hook.run(&setup, None, Default::default()).await.unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    std::fs::write(root.path().join("sub/in.tsv"), "inside\n").unwrap();
    std::fs::write(outside.path().join("in.tsv"), "outside\n").unwrap();
    let flipper = std::thread::spawn({
        let (root, outside) = (root.path().to_path_buf(), outside.path().to_path_buf());
        move || flip(root, outside)
    });
    let (mut loads, mut dumps, mut failures) = (0i64, 0i64, 0);
    while !flipper.is_finished() {
        let (load, dump) =
            tokio::join!(hook.bulk_load("loaded", "sub/in.tsv"), hook.bulk_dump("source", "sub/out.tsv"));
        for outcome in [load.map(|_| &mut loads), dump.map(|_| &mut dumps)] {
            match outcome {
                Ok(count) => *count += 1,
                // Refused (a link out), or missing for a moment: never read or written outside.
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::Denied | ErrorKind::Io), "{e}");
                    failures += 1;
                }
            }
        }
    }
    flipper.join().unwrap();
    println!("{loads} loads and {dumps} dumps succeeded, {failures} calls failed");
    assert!(loads > 0 && dumps > 0);
    let lines = hook.get_first("select count(*), count(*) filter (where line <> 'inside') from loaded", None).await;
    assert_eq!(lines.unwrap().rows.to_values().unwrap()[0], [Value::Int(loads), Value::Int(0)]);
    assert_eq!(names(outside.path()), ["in.tsv"]);
    assert_eq!(std::fs::read_to_string(outside.path().join("in.tsv")).unwrap(), "outside\n");
    // No temporary file is left anywhere, and the dump is whole.
    assert_eq!(names(root.path()), ["sub"]);
    assert_eq!(names(&root.path().join("sub")), ["in.tsv", "out.tsv"]);
    assert_eq!(std::fs::read_to_string(root.path().join("sub/out.tsv")).unwrap(), "dumped\n".repeat(100));
}

#[tokio::test]
async fn a_fifo_fails_fast_as_copy_file_and_as_sslrootcert() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    mkfifo(&root.path().join("pipe"));
    let connections =
        MapConnections::new().with("c", pg.uri("")).with("tls", pg.uri("sslmode=verify-ca&sslrootcert=pipe"));
    let t = limited(root.path(), connections, Duration::from_secs(5));
    let hook = t.hook(HookArgs::conn_id("c"));
    let started = Instant::now();
    let refused = "pipe: is a FIFO (named pipe), not a regular file";
    for e in [
        hook.bulk_load("t", "pipe").await.unwrap_err(),
        hook.copy_expert("COPY (select 1) TO STDOUT", "pipe").await.unwrap_err(),
        t.hook(HookArgs::conn_id("tls")).test_connection().await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        assert!(e.message().contains(refused), "{e}");
    }
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(names(root.path()), ["pipe"]);
}

#[tokio::test]
async fn a_failed_or_stopped_dump_leaves_the_target_as_it_was() {
    let pg = Cluster::plain();
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("out.tsv");
    std::fs::write(&target, "keep\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let untouched = || {
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(names(root.path()), ["out.tsv"]);
    };
    let hook = tenant(root.path(), &[("c", &pg.uri(""))]).hook(HookArgs::conn_id("c"));
    let e = hook.copy_expert("COPY missing_table TO STDOUT", "out.tsv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Database, "{e}");
    untouched();
    // A dump the call's time limit stops, with its temporary file open.
    let hasty = limited(root.path(), MapConnections::new().with("c", pg.uri("")), Duration::from_secs(1));
    let slow = "COPY (select 1 from pg_sleep(5)) TO STDOUT";
    let e = hasty.hook(HookArgs::conn_id("c")).copy_expert(slow, "out.tsv").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    untouched();
    // A successful one replaces it, keeping its mode.
    assert_eq!(hook.copy_expert("COPY (select 2) TO STDOUT", "out.tsv").await.unwrap().rows, 1);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "2\n");
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
}
