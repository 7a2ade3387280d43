//! Airflow's own `PostgresHook` (providers-postgres on psycopg2), run from the
//! virtualenv scripts/setup makes, so tests can run an operation through it
//! and through pghook and compare the results value by value.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Runs the snippet on stdin with `hook`, a `PostgresHook` on the connection
/// `compared` (from `AIRFLOW_CONN_COMPARED`), in scope, and writes the value
/// of its last expression, tagged by Python type, as JSON to the file named
/// by the first argument (Airflow logs on stdout).
const DRIVER: &str = r#"
import ast, datetime, decimal, json, os, sys, uuid
import airflow.providers.postgres.hooks.postgres as postgres
# With psycopg 3 installed too, the provider would pick it; pghook matches psycopg2.
postgres.USE_PSYCOPG3 = False
import psycopg2.extras

def tag(v):
    if v is None:
        return None
    if type(v).__name__ == "NAType":  # pandas' missing value of its nullable dtypes
        return {"NA": None}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, datetime.datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, datetime.date):
        return {"date": v.isoformat()}
    if isinstance(v, datetime.time):
        return {"time": v.isoformat()}
    if isinstance(v, datetime.timedelta):
        return {"timedelta": [v.days, v.seconds, v.microseconds]}
    if isinstance(v, uuid.UUID):
        return {"uuid": str(v)}
    if isinstance(v, psycopg2.extras.Range):
        if v.isempty:
            return {"range": "empty"}
        return {"range": [v.lower_inc, tag(v.lower), tag(v.upper), v.upper_inc]}
    if isinstance(v, dict):
        return {"dict": {str(k): tag(x) for k, x in v.items()}}
    if isinstance(v, (list, tuple)):
        return [tag(x) for x in v]
    raise TypeError(f"no tag for {type(v).__module__}.{type(v).__qualname__}: {v!r}")

if os.environ.get("COMPARED_HOOK") == "pghook":
    import pghook
    hook = pghook.PostgresHook(postgres_conn_id="compared")
else:
    hook = postgres.PostgresHook(postgres_conn_id="compared")
tree = ast.parse(sys.stdin.read())
last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
scope = {"hook": hook}
exec(compile(tree, "<snippet>", "exec"), scope)
result = eval(compile(ast.Expression(last.value), "<snippet>", "eval"), scope) if last else None
conn = getattr(hook, "conn", None)
if os.environ.get("COMPARED_HOOK") != "pghook":
    assert conn is None or type(conn).__module__.startswith("psycopg2"), f"not psycopg2: {type(conn)}"
with open(sys.argv[1], "w") as out:
    json.dump(tag(result), out)
"#;

/// The virtualenv's Python that has Airflow's PostgresHook:
/// `PGHOOK_PYTHON`, else `.venv/bin/python` of this tree (scripts/setup).
pub fn python() -> PathBuf {
    std::env::var("PGHOOK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

/// Run `snippet` (Python statements) with `hook`, Airflow's `PostgresHook`
/// on the connection `uri` (an Airflow URI), in scope, forced onto psycopg2,
/// and return the value of its last expression statement (`None` if it ends
/// otherwise) as JSON with every Python value tagged by its type:
/// `{"int": "123"}`, `{"float": repr}`, `{"decimal": "1.50"}`, `{"str": ...}`,
/// `{"bytes": hex}`, `{"bool": b}`, `null`, `{"date"|"time"|"datetime":
/// isoformat}`, `{"timedelta": [days, seconds, microseconds]}`, `{"uuid":
/// ...}`, `{"range": "empty" | [lower_inc, lower, upper, upper_inc]}`, lists
/// and tuples as arrays, dicts as `{"dict": {...}}` in their order, pandas'
/// `NA` as `{"NA": null}` (its `Timestamp` and `NaT` are datetimes).
///
/// Panics with Python's error if the snippet raises, and with a pointer to
/// scripts/setup if the virtualenv lacks Airflow.
pub fn airflow_hook(uri: &str, snippet: &str) -> serde_json::Value {
    python_hook(Compared::Airflow, uri, snippet)
}

/// Which `PostgresHook` a snippet runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compared {
    /// Airflow's own, on psycopg2.
    Airflow,
    /// pghook's Python package (`from pghook import PostgresHook`), built
    /// into the same virtualenv by scripts/test.
    Pghook,
}

/// [`airflow_hook`], with `hook` the `PostgresHook` of `which`.
pub fn python_hook(which: Compared, uri: &str, snippet: &str) -> serde_json::Value {
    let python = python();
    assert!(
        python.exists(),
        "{} not found: run scripts/setup to install Airflow's PostgresHook (or set PGHOOK_PYTHON)",
        python.display()
    );
    let home = tempfile::tempdir().unwrap();
    let result = home.path().join("result.json");
    let mut child = Command::new(&python)
        .current_dir(home.path())
        .env("AIRFLOW_HOME", home.path())
        .env("AIRFLOW_CONN_COMPARED", uri)
        .env("COMPARED_HOOK", if which == Compared::Pghook { "pghook" } else { "airflow" })
        .arg("-c")
        .arg(DRIVER)
        .arg(&result)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    use std::io::Write;
    child.stdin.take().unwrap().write_all(snippet.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") && stderr.contains("airflow") {
        panic!(
            "{} cannot import Airflow's PostgresHook: run scripts/setup to install it (or set PGHOOK_PYTHON)\n{stderr}",
            python.display()
        );
    }
    assert!(
        out.status.success(),
        "{which:?}'s PostgresHook failed on {snippet:?}:\n{stderr}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = std::fs::read_to_string(&result).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the driver's JSON {text:?}: {e}"))
}
