//! `pghook._pghook`: the pghook host as a Python extension module. The
//! Python package `pghook` wraps it in Airflow's `PostgresHook` interface.
//!
//! Every call runs on one tokio runtime shared by the process, with the GIL
//! released; the calling thread wakes every few milliseconds to let Python
//! deliver signals, so Ctrl-C cancels the running statement on the server
//! and raises `KeyboardInterrupt`.

mod arrow;
mod connection;
mod datetime_api;
mod logging;
mod temporal;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt;
use pghook::values::{Kind, Type};
use pghook::{
    ChainConnections, ConnectionSource, Element, EnvConnections, ErrorKind, Fetch, HookArgs, InsertOptions, Interrupt,
    Lookup, MapConnections, Param, Parameters, Policy, RawCell, RowRef, RowShape, Rows, RunOptions, SqlInput, Value,
    file_connections,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};

create_exception!(pghook._pghook, Error, PyException, "A failed pghook call; `.kind` names what went wrong.");
create_exception!(pghook._pghook, ConfigError, Error, "The connection, its extras or an argument is invalid.");
create_exception!(pghook._pghook, ConnectionNotFound, Error, "The connection id is not defined anywhere.");
create_exception!(pghook._pghook, SecretsError, Error, "The connection source failed to answer.");
create_exception!(pghook._pghook, SandboxDenied, Error, "The sandbox refused: a file outside the root, a host.");
create_exception!(pghook._pghook, ConnectError, Error, "The server could not be reached, or refused the login.");
create_exception!(pghook._pghook, TlsError, ConnectError, "TLS could not be set up, or the certificate was rejected.");
create_exception!(pghook._pghook, DatabaseError, Error, "The server rejected a statement; `.sqlstate` says why.");
create_exception!(pghook._pghook, FileError, Error, "A local file could not be read or written.");
create_exception!(pghook._pghook, AwsError, Error, "An AWS call failed.");
create_exception!(pghook._pghook, LimitError, Error, "A result or resource went over the sandbox's limit.");
create_exception!(pghook._pghook, GuestError, Error, "The hook's core failed to load, or trapped (a bug).");
create_exception!(pghook._pghook, InterfaceError, Error, "The connection is closed, or busy with a call.");
create_exception!(pghook._pghook, CallTimeout, Error, "The call ran over its time limit and was stopped.");

/// The process's tokio runtime and pghook runtime.
struct Runtimes {
    /// The process they were made in.
    pid: u32,
    tokio: tokio::runtime::Runtime,
    pghook: pghook::Runtime,
}

/// This process's runtimes, made on first use, and again on first use in a
/// child after `fork()` (Airflow's task runners and Celery fork): the
/// parent's worker and epoch threads do not exist in the child, so a call
/// there would wait forever. The parent's runtimes are left untouched in
/// the child, never dropped (that would wait for threads it has not).
fn runtimes() -> PyResult<&'static Runtimes> {
    static CURRENT: Mutex<Option<&'static Runtimes>> = Mutex::new(None);
    let mut current = CURRENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let pid = std::process::id();
    if let Some(made) = *current
        && made.pid == pid
    {
        return Ok(made);
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("pghook")
        .build()
        .map_err(|e| GuestError::new_err(format!("starting pghook's runtime: {e}")))?;
    let runtime = tokio.block_on(async {
        match pghook::Runtime::user_cache_dir() {
            Some(dir) => pghook::Runtime::with_cache(&dir),
            None => pghook::Runtime::new(),
        }
    });
    let pghook = runtime.map_err(|e| GuestError::new_err(e.to_string()))?;
    let made: &'static Runtimes = Box::leak(Box::new(Runtimes { pid, tokio, pghook }));
    *current = Some(made);
    Ok(made)
}

/// A pghook error as the Python exception of its kind.
fn python_error(py: Python<'_>, e: pghook::Error) -> PyErr {
    let message = e.message().to_string();
    let err = match e.kind() {
        ErrorKind::Config => ConfigError::new_err(message),
        ErrorKind::NotFound => ConnectionNotFound::new_err(message),
        ErrorKind::Secrets => SecretsError::new_err(message),
        ErrorKind::Denied => SandboxDenied::new_err(message),
        ErrorKind::Connect => ConnectError::new_err(message),
        ErrorKind::Tls => TlsError::new_err(message),
        ErrorKind::Database => DatabaseError::new_err(message),
        ErrorKind::Io => FileError::new_err(message),
        ErrorKind::Aws => AwsError::new_err(message),
        ErrorKind::Limit => LimitError::new_err(message),
        ErrorKind::Timeout => CallTimeout::new_err(message),
        ErrorKind::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(message),
        ErrorKind::Closed => InterfaceError::new_err(message),
        _ => GuestError::new_err(message),
    };
    let value = err.value(py);
    let _ = value.setattr("kind", format!("{:?}", e.kind()).to_lowercase());
    let _ = value.setattr("sqlstate", e.sqlstate().map(|s| s.code().to_string()));
    err
}

/// A connection source that asks a Python callable (e.g. Airflow's own
/// connection lookup): `conn_id -> str | None`.
struct PythonSource(std::sync::Arc<Py<PyAny>>);

impl ConnectionSource for PythonSource {
    fn get<'a>(&'a self, conn_id: &'a str) -> Lookup<'a> {
        let callable = self.0.clone();
        let conn_id = conn_id.to_string();
        Box::pin(async move {
            // Off the runtime's few workers: the callable may block, or call
            // pghook again (a secrets backend using a hook), whose call then
            // needs a free worker.
            let asked = tokio::task::spawn_blocking(move || Python::with_gil(|py| ask(py, &callable, &conn_id)));
            asked
                .await
                .map_err(|e| pghook::Error::new(ErrorKind::Secrets, format!("the connection source failed: {e}")))?
        })
    }
}

/// One question to a Python connection source.
fn ask(py: Python<'_>, callable: &Py<PyAny>, conn_id: &str) -> Result<Option<String>, pghook::Error> {
    let found = callable
        .call1(py, (conn_id,))
        .map_err(|e| pghook::Error::new(ErrorKind::Secrets, format!("looking up connection `{conn_id}`: {e}")))?;
    found
        .extract::<Option<String>>(py)
        .map_err(|_| pghook::Error::new(ErrorKind::Secrets, "the connection source must return a string or None"))
}

type Call<T> = Pin<Box<dyn Future<Output = Result<T, pghook::Error>> + Send>>;

/// The core of one `PostgresHook`: its sandbox and arguments.
#[pyclass(frozen, module = "pghook._pghook")]
struct Core {
    policy: Policy,
    /// The policy's tenant in this process's runtime, and that process:
    /// a child after `fork()` makes its own.
    tenant: Mutex<(u32, pghook::Tenant)>,
    args: HookArgs,
}

/// Run `work` on this thread, in pghook's tokio runtime, with the GIL
/// released, waking every few milliseconds to let Python deliver signals.
/// On Ctrl-C (any signal handler raising), `interrupt` is thrown, which
/// stops the call (its statement is cancelled on the server); the work's
/// output still comes back, with the signal's exception to raise. (Driving
/// the call here, as the CLI does, rather than on a worker, spares a
/// thread's wake-up per batch of a COPY's rows.)
fn block_on<O: Send + 'static>(
    py: Python<'_>,
    interrupt: &Interrupt,
    work: impl Future<Output = O> + Send + 'static,
) -> PyResult<(O, Option<PyErr>)> {
    let tokio = &runtimes()?.tokio;
    // A panic (a bug) fails the call, as a task's would, rather than unwind into Python.
    let mut held = InRuntime { tokio, work: Some(Box::pin(AssertUnwindSafe(work).catch_unwind())) };
    let work = held.work.as_mut().expect("the work, until dropped");
    // Python runs only between slices: signals, then the call's log records.
    let deferring = logging::Deferring::start();
    let (output, signal) = loop {
        // The timer is made inside the runtime, which it needs.
        let slice = py.allow_threads(|| {
            tokio.block_on(async { tokio::time::timeout(Duration::from_millis(20), &mut *work).await })
        });
        let signal = py.check_signals().err().or_else(|| logging::emit_deferred(py).err());
        match (slice, signal) {
            (Ok(output), signal) => break (output, signal),
            (Err(_elapsed), None) => {}
            (Err(_elapsed), Some(signal)) => {
                interrupt.interrupt();
                break (py.allow_threads(|| tokio.block_on(&mut *work)), Some(signal));
            }
        }
    };
    // What the call logged last, whichever way it ended.
    let late = logging::emit_all(py);
    drop(deferring);
    let output = output.map_err(|_panic| GuestError::new_err("the call ended without a result"))?;
    Ok((output, signal.or(late.err())))
}

/// A call's future, dropped in the runtime's context even after a panic: a
/// session it holds then cancels its statement on the server. (The context
/// is entered only for the drop: Python code run between slices must not
/// find pghook's runtime current.)
struct InRuntime<'a, F> {
    tokio: &'a tokio::runtime::Runtime,
    work: Option<Pin<Box<F>>>,
}

impl<F> Drop for InRuntime<'_, F> {
    fn drop(&mut self) {
        let _context = self.tokio.enter();
        self.work.take();
    }
}

impl Core {
    /// The hook's tenant in this process's runtime.
    fn tenant(&self) -> PyResult<pghook::Tenant> {
        let runtimes = runtimes()?;
        let mut held = self.tenant.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.0 != runtimes.pid {
            // Forked: the parent's tenant (its sessions, warm instances) stays the parent's.
            let parents = std::mem::replace(&mut *held, (runtimes.pid, runtimes.pghook.tenant(self.policy.clone())));
            std::mem::forget(parents);
        }
        Ok(held.1.clone())
    }

    /// Run `call` with the GIL released; Ctrl-C stops it (the statement is
    /// cancelled on the server) and raises `KeyboardInterrupt`.
    fn call<T: Send + 'static>(&self, py: Python<'_>, call: impl FnOnce(pghook::Hook) -> Call<T>) -> PyResult<T> {
        self.call_with(py, &Interrupt::new(), call)
    }

    /// get_records, or get_first when `first`, as Python records.
    fn records<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        parameters: Option<&Bound<'py, PyAny>>,
        first: bool,
    ) -> PyResult<PyRecords<'py>> {
        let params = self::parameters(parameters)?;
        let records = self.call(py, move |h| {
            Box::pin(async move {
                match first {
                    true => h.get_first(&sql, params).await,
                    false => h.get_records(&sql, params).await,
                }
            })
        })?;
        python_records(py, records)
    }

    /// [`Core::call`] with the hook holding `interrupt`, which Ctrl-C throws.
    fn call_with<T: Send + 'static>(
        &self,
        py: Python<'_>,
        interrupt: &Interrupt,
        call: impl FnOnce(pghook::Hook) -> Call<T>,
    ) -> PyResult<T> {
        let hook = self.tenant()?.hook(self.args.clone()).with_interrupt(interrupt.clone());
        match block_on(py, interrupt, call(hook))? {
            (_, Some(signal)) => Err(signal),
            (result, None) => result.map_err(|e| python_error(py, e)),
        }
    }
}

/// How each column's values become Python objects: `None` keeps the
/// plain conversion, else a Python converter of the text (dates, uuids,
/// json, arrays...), from `pghook._values`, told whether the type is
/// PostgreSQL's own: a type of another schema may share a built-in's name
/// (an enum `json`, or `interval` whose array is `_interval`).
fn converters(py: Python<'_>, columns: &[pghook::Column], types: &[&Type]) -> PyResult<Vec<Option<Py<PyAny>>>> {
    let values = py.import("pghook._values")?;
    let converter = values.getattr("converter")?;
    columns
        .iter()
        .zip(types)
        .map(|(c, ty)| {
            // An array lives in its element type's schema.
            let builtin = ty.schema() == "pg_catalog";
            if !builtin && !matches!(ty.kind(), Kind::Array(_)) {
                return Ok(None);
            }
            let found = converter.call1((c.type_name.as_str(), builtin))?;
            Ok((!found.is_none()).then(|| found.unbind()))
        })
        .collect()
}

/// One value as psycopg2 would return it.
fn python_value<'py>(
    py: Python<'py>,
    value: Value,
    converter: Option<&Py<PyAny>>,
    decimal: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Boolean(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(f) => f.into_pyobject(py)?.into_any(),
        Value::Numeric(text) => decimal.call1((text,))?,
        Value::Bytes(bytes) => PyBytes::new(py, &bytes).into_any(),
        // An interval's text, read as psycopg2 reads it (`_values.to_interval`).
        Value::Text(text) | Value::Json(text) | Value::Interval(pghook::Interval { text, .. }) => match converter {
            Some(convert) => convert.bind(py).call1((text,))?,
            None => PyString::new(py, &text).into_any(),
        },
    })
}

/// How many rows are made Python objects between [`release_freed_memory`] calls.
const RELEASE_EVERY: usize = 1 << 16;

/// Give the pages of rows already made Python objects back to the system.
/// The host kept them on its worker threads, in those threads' malloc
/// arenas, which Python's own allocator never reuses: without this a
/// result's rows and its Python objects would both be held whole at the
/// end.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The columns whose cells become Python objects straight from the
/// server's bytes, without a [`Value`] between: PostgreSQL's own types,
/// told by their type (a type of another schema may share a name).
#[derive(Clone, Copy, PartialEq)]
enum Direct {
    Int2,
    Int4,
    Int8,
    Oid,
    Text,
    Numeric,
    Bool,
    Float,
    /// Dates and timestamps, by [`temporal::Temporal`].
    Temporal,
    /// Any other: decoded into a [`Value`] first.
    No,
}

impl Direct {
    fn of(ty: &Type) -> Direct {
        match *ty {
            Type::INT2 => Direct::Int2,
            Type::INT4 => Direct::Int4,
            Type::INT8 => Direct::Int8,
            Type::OID => Direct::Oid,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Direct::Text,
            Type::NUMERIC => Direct::Numeric,
            Type::BOOL => Direct::Bool,
            Type::FLOAT8 => Direct::Float,
            Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ => Direct::Temporal,
            _ => Direct::No,
        }
    }
}

/// How one result's cells become Python objects.
struct Maker<'py> {
    direct: Vec<Direct>,
    converters: Vec<Option<Py<PyAny>>>,
    temporal: temporal::Temporal,
    decimal: Bound<'py, PyAny>,
}

impl<'py> Maker<'py> {
    fn new(py: Python<'py>, columns: &[pghook::Column], rows: &Rows) -> PyResult<Maker<'py>> {
        let types: Vec<&Type> = (0..columns.len()).map(|i| rows.column_type(i)).collect();
        Ok(Maker {
            direct: types.iter().map(|ty| Direct::of(ty)).collect(),
            converters: converters(py, columns, &types)?,
            temporal: temporal::Temporal::new(&types),
            decimal: py.import("decimal")?.getattr("Decimal")?,
        })
    }

    /// Cell `column` of `row` as psycopg2 would return it.
    fn cell(&mut self, py: Python<'py>, row: &RowRef<'_>, column: usize) -> PyResult<Bound<'py, PyAny>> {
        let direct = self.direct[column];
        let made = match row.cell(column) {
            RawCell::Null => return Ok(py.None().into_bound(py)),
            RawCell::Text(text) => self.read_text(py, direct, column, text)?,
            RawCell::Binary(bytes) => self.read_binary(py, direct, column, bytes)?,
        };
        if let Some(made) = made {
            return Ok(made);
        }
        // The long way, which also names a cell the server sent malformed.
        let value = row.value(column).map_err(|e| python_error(py, e))?;
        match self.temporal.convert(py, column, value)? {
            Ok(read) => Ok(read),
            Err(value) => python_value(py, value, self.converters[column].as_ref(), &self.decimal),
        }
    }

    fn read_text(
        &mut self,
        py: Python<'py>,
        direct: Direct,
        column: usize,
        text: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match direct {
            Direct::Int2 | Direct::Int4 | Direct::Int8 | Direct::Oid => {
                text.parse::<i64>().ok().map(|i| i.into_pyobject(py).map(Bound::into_any)).transpose()?
            }
            Direct::Text => Some(PyString::new(py, text).into_any()),
            Direct::Numeric => Some(self.decimal.call1((text,))?),
            Direct::Bool => match text {
                "t" => Some(true.into_pyobject(py)?.to_owned().into_any()),
                "f" => Some(false.into_pyobject(py)?.to_owned().into_any()),
                _ => None,
            },
            Direct::Temporal => self.temporal.read_text(py, column, text)?,
            Direct::Float | Direct::No => None,
        })
    }

    fn read_binary(
        &self,
        py: Python<'py>,
        direct: Direct,
        column: usize,
        bytes: &[u8],
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(match (direct, bytes.len()) {
            (Direct::Int2, 2) => Some(i16::from_be_bytes([bytes[0], bytes[1]]).into_pyobject(py)?.into_any()),
            (Direct::Oid, 4) => {
                Some(u32::from_be_bytes(bytes.try_into().expect("4 bytes")).into_pyobject(py)?.into_any())
            }
            (Direct::Int4, 4) => {
                Some(i32::from_be_bytes(bytes.try_into().expect("4 bytes")).into_pyobject(py)?.into_any())
            }
            (Direct::Int8, 8) => {
                Some(i64::from_be_bytes(bytes.try_into().expect("8 bytes")).into_pyobject(py)?.into_any())
            }
            (Direct::Float, 8) => {
                Some(f64::from_be_bytes(bytes.try_into().expect("8 bytes")).into_pyobject(py)?.into_any())
            }
            (Direct::Bool, 1) if bytes[0] <= 1 => Some((bytes[0] == 1).into_pyobject(py)?.to_owned().into_any()),
            (Direct::Text, _) => std::str::from_utf8(bytes).ok().map(|text| PyString::new(py, text).into_any()),
            (Direct::Temporal, _) => self.temporal.read_binary(py, column, bytes),
            _ => None,
        })
    }
}

/// Rows as lists of tuples. Each run of rows the host kept is freed once
/// made into objects, so a large result is not held twice.
fn python_rows<'py>(py: Python<'py>, columns: &[pghook::Column], rows: Rows) -> PyResult<Bound<'py, PyList>> {
    let mut maker = Maker::new(py, columns, &rows)?;
    let list = PyList::empty(py);
    let mut made = 0;
    for chunk in rows.into_chunks() {
        for row in chunk.iter() {
            let cells = (0..row.len()).map(|column| maker.cell(py, &row, column)).collect::<PyResult<Vec<_>>>()?;
            list.append(PyTuple::new(py, cells)?)?;
        }
        made += chunk.len();
        drop(chunk);
        if made >= RELEASE_EVERY {
            release_freed_memory();
            made = 0;
        }
    }
    Ok(list)
}

/// Records as the Python package takes them: (shape, column names, rows).
type PyRecords<'py> = (&'static str, Vec<String>, Bound<'py, PyList>);

fn python_records(py: Python<'_>, records: pghook::Records) -> PyResult<PyRecords<'_>> {
    let rows = python_rows(py, &records.columns, records.rows)?;
    Ok((shape_name(records.shape), column_names(&records.columns), rows))
}

fn column_names(columns: &[pghook::Column]) -> Vec<String> {
    columns.iter().map(|c| c.name.clone()).collect()
}

fn shape_name(shape: RowShape) -> &'static str {
    match shape {
        RowShape::Tuple => "tuple",
        RowShape::Dict => "dict",
        RowShape::RealDict => "real_dict",
        RowShape::NamedTuple => "named_tuple",
    }
}

/// Classes of the standard library that parameters are checked against,
/// each looked up once.
static DATETIME: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static DATE: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static TIME: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static TIMEDELTA: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static UUID: GILOnceCell<Py<PyType>> = GILOnceCell::new();
static DECIMAL: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// None, bool, int, float and str: the commonest parameters, told apart
/// without asking about any other class.
fn plain(value: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if value.is_none() {
        return Ok(Some(Value::Null));
    }
    if let Ok(b) = value.downcast::<pyo3::types::PyBool>() {
        return Ok(Some(Value::Boolean(b.is_true())));
    }
    if value.downcast::<pyo3::types::PyInt>().is_ok() {
        return Ok(Some(match value.extract::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Numeric(value.str()?.to_string()),
        }));
    }
    if value.downcast::<pyo3::types::PyFloat>().is_ok() {
        return Ok(Some(Value::Float(value.extract()?)));
    }
    if value.downcast::<PyString>().is_ok() {
        return Ok(Some(Value::Text(value.extract()?)));
    }
    Ok(None)
}

/// A Python value that is not [`plain`] as a scalar parameter: bytes,
/// Decimal, psycopg2's Json.
fn other_scalar(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = value.py();
    if let Ok(b) = value.downcast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if value.downcast::<pyo3::types::PyByteArray>().is_ok() || value.is_instance_of::<pyo3::types::PyMemoryView>() {
        let bytes = py.import("builtins")?.getattr("bytes")?.call1((value,))?;
        return Ok(Value::Bytes(bytes.downcast::<PyBytes>()?.as_bytes().to_vec()));
    }
    if value.is_instance(DECIMAL.import(py, "decimal", "Decimal")?)? {
        return Ok(Value::Numeric(value.str()?.to_string()));
    }
    // psycopg2.extras.Json and its like: an `adapted` object sent as JSON.
    if let Ok(adapted) = value.getattr("adapted") {
        let text = py.import("json")?.getattr("dumps")?.call1((adapted,))?;
        return Ok(Value::Json(text.extract()?));
    }
    Err(PyTypeError::new_err(format!("can't adapt type '{}'", value.get_type().name()?)))
}

/// A Python value as a parameter, adapted as psycopg2 adapts it.
fn param(value: &Bound<'_, PyAny>) -> PyResult<Param> {
    let py = value.py();
    if let Some(plain) = plain(value)? {
        return Ok(Param::Value(plain));
    }
    let text = |v: &Bound<'_, PyAny>| -> PyResult<String> { v.call_method1("isoformat", (" ",))?.extract() };
    if value.is_instance(DATETIME.import(py, "datetime", "datetime")?)? {
        let aware = !value.call_method0("utcoffset")?.is_none();
        return Ok(if aware { Param::Timestamptz(text(value)?) } else { Param::Timestamp(text(value)?) });
    }
    if value.is_instance(DATE.import(py, "datetime", "date")?)? {
        return Ok(Param::Date(value.call_method0("isoformat")?.extract()?));
    }
    if value.is_instance(TIME.import(py, "datetime", "time")?)? {
        return Ok(Param::Time(value.call_method0("isoformat")?.extract()?));
    }
    if value.is_instance(TIMEDELTA.import(py, "datetime", "timedelta")?)? {
        let (days, seconds, micros): (i64, i64, i64) = (
            value.getattr("days")?.extract()?,
            value.getattr("seconds")?.extract()?,
            value.getattr("microseconds")?.extract()?,
        );
        return Ok(Param::Interval(format!("{days} days {seconds}.{micros:06} seconds")));
    }
    if value.is_instance(UUID.import(py, "uuid", "UUID")?)? {
        return Ok(Param::Uuid(value.str()?.to_string()));
    }
    if let Ok(list) = value.downcast::<PyList>() {
        return Ok(Param::Array(list.iter().map(|v| element(&v)).collect::<PyResult<_>>()?));
    }
    if let Ok(tuple) = value.downcast::<PyTuple>() {
        return Ok(Param::Tuple(tuple.iter().map(|v| element(&v)).collect::<PyResult<_>>()?));
    }
    Ok(Param::Value(other_scalar(value)?))
}

/// An item of a list or tuple parameter: adapted as on its own.
fn element(value: &Bound<'_, PyAny>) -> PyResult<Element> {
    Element::try_from(param(value)?).map_err(|_| {
        PyTypeError::new_err(
            "a list or tuple parameter cannot hold another (multidimensional arrays are not supported)",
        )
    })
}

/// `parameters` as psycopg2 takes them: a mapping for `%(name)s`, a
/// sequence for `%s`.
fn parameters(parameters: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Parameters>> {
    let Some(parameters) = parameters.filter(|p| !p.is_none()) else { return Ok(None) };
    if let Ok(mapping) = parameters.downcast::<PyDict>() {
        let named =
            mapping.iter().map(|(k, v)| Ok((k.str()?.to_string(), param(&v)?))).collect::<PyResult<Vec<_>>>()?;
        return Ok(Some(Parameters::Named(named)));
    }
    if parameters.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err("parameters must be a sequence or a mapping, not a string"));
    }
    let positional = parameters.try_iter()?.map(|v| param(&v?)).collect::<PyResult<Vec<_>>>()?;
    Ok(Some(Parameters::Positional(positional)))
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (
        conn_id=None, database=None, options=None, enable_log_db_messages=false, *,
        root=None, allow_hosts=None, allow_sockets=None, config_paths=None, connections=None,
        connections_file=None, connection_source=None, timeout=None, max_result_mb=1024, max_memory_mb=2048, libpq_environment=true,
        ambient_aws=true, session_reuse=0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        conn_id: Option<String>,
        database: Option<String>,
        options: Option<String>,
        enable_log_db_messages: bool,
        root: Option<PathBuf>,
        allow_hosts: Option<Vec<String>>,
        allow_sockets: Option<Vec<PathBuf>>,
        config_paths: Option<Vec<PathBuf>>,
        connections: Option<Vec<(String, String)>>,
        connections_file: Option<PathBuf>,
        connection_source: Option<Py<PyAny>>,
        timeout: Option<f64>,
        max_result_mb: usize,
        max_memory_mb: usize,
        libpq_environment: bool,
        ambient_aws: bool,
        session_reuse: usize,
    ) -> PyResult<Core> {
        let runtimes = runtimes()?;
        let root = match root {
            Some(root) => root,
            None => std::env::current_dir().map_err(|e| FileError::new_err(format!("current directory: {e}")))?,
        };
        let mut source = ChainConnections::new();
        if let Some(connections) = connections {
            source = source.then(connections.into_iter().fold(MapConnections::new(), |m, (id, c)| m.with(id, c)));
        }
        // As the CLI's --connections: after the mapping, before AIRFLOW_CONN_*.
        if let Some(file) = connections_file {
            source = source.then(file_connections(&file).map_err(|e| python_error(py, e))?);
        }
        source = source.then(EnvConnections);
        if let Some(callable) = connection_source {
            source = source.then(PythonSource(std::sync::Arc::new(callable)));
        }
        let mut policy = Policy::new(root)
            .with_connections(source)
            .with_max_result_bytes(max_result_mb.saturating_mul(1 << 20))
            .with_memory_limit(max_memory_mb.saturating_mul(1 << 20))
            .with_ambient_aws(ambient_aws)
            .with_libpq_environment(libpq_environment)
            .with_session_reuse(session_reuse);
        if let Some(seconds) = timeout {
            let limit =
                Duration::try_from_secs_f64(seconds).map_err(|e| ConfigError::new_err(format!("timeout: {e}")))?;
            policy = policy.with_call_timeout(limit);
        }
        for host in allow_hosts.unwrap_or_else(|| vec!["*".into()]) {
            policy = policy.allow_host(host);
        }
        let sockets = allow_sockets.unwrap_or_else(|| vec![PathBuf::from(Policy::STANDARD_SOCKET_DIR)]);
        for dir in sockets {
            policy = policy.allow_socket_dir(dir);
        }
        policy = policy.allow_libpq_default_files();
        for path in config_paths.unwrap_or_default() {
            policy = policy.allow_config_path(path);
        }
        let args = HookArgs { conn_id, database, options, enable_log_db_messages };
        let tenant = Mutex::new((runtimes.pid, runtimes.pghook.tenant(policy.clone())));
        Ok(Core { policy, tenant, args })
    }

    /// The keyword arguments get_conn would pass to psycopg2.connect, as JSON.
    fn explain(&self, py: Python<'_>) -> PyResult<String> {
        let explained = self.call(py, |h| Box::pin(async move { h.explain().await }))?;
        Ok(explained.to_string())
    }

    /// Airflow's test_connection message.
    fn test_connection(&self, py: Python<'_>) -> PyResult<String> {
        self.call(py, |h| Box::pin(async move { h.test_connection().await }))
    }

    /// (shape, column names, rows as tuples).
    #[pyo3(signature = (sql, parameters=None))]
    fn get_records<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRecords<'py>> {
        self.records(py, sql, parameters, false)
    }

    /// (shape, column names, rows): at most the first row.
    #[pyo3(signature = (sql, parameters=None))]
    fn get_first<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRecords<'py>> {
        self.records(py, sql, parameters, true)
    }

    /// Each statement's (column names, rows), and the row shape.
    #[pyo3(signature = (sql, parameters=None, autocommit=false, split_statements=false, return_last=true, fetch="all"))]
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn run<'py>(
        &self,
        py: Python<'py>,
        sql: &Bound<'py, PyAny>,
        parameters: Option<&Bound<'py, PyAny>>,
        autocommit: bool,
        split_statements: bool,
        return_last: bool,
        fetch: &str,
    ) -> PyResult<(&'static str, Vec<(Vec<String>, Bound<'py, PyList>)>)> {
        let input = match sql.extract::<String>() {
            Ok(one) => SqlInput::One(one),
            Err(_) => SqlInput::Many(sql.extract::<Vec<String>>()?),
        };
        let fetch = match fetch {
            "none" => Fetch::None,
            "one" => Fetch::One,
            "all" => Fetch::All,
            other => return Err(ConfigError::new_err(format!("fetch must be none, one or all, not {other}"))),
        };
        let options = RunOptions {
            autocommit: Some(autocommit),
            split_statements: Some(split_statements),
            return_last: Some(return_last),
            fetch: Some(fetch),
        };
        let params = self::parameters(parameters)?;
        let shape = shape_name(self.call(py, |h| Box::pin(async move { h.row_shape().await }))?);
        let results = self.call(py, move |h| Box::pin(async move { h.run(input, params, options).await }))?;
        let results = results
            .into_iter()
            .map(|set| Ok((column_names(&set.columns), python_rows(py, &set.columns, set.rows)?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok((shape, results))
    }

    /// (loaded, rows) of a COPY FROM STDIN / TO STDOUT against `filename`.
    fn copy_expert(&self, py: Python<'_>, sql: String, filename: String) -> PyResult<(bool, u64)> {
        let outcome = self.call(py, move |h| Box::pin(async move { h.copy_expert(&sql, &filename).await }))?;
        Ok((outcome.loaded, outcome.rows))
    }

    /// Rows loaded from a tab-delimited file.
    fn bulk_load(&self, py: Python<'_>, table: String, filename: String) -> PyResult<u64> {
        self.call(py, move |h| Box::pin(async move { h.bulk_load(&table, &filename).await }))
    }

    /// Lines written to a tab-delimited file.
    fn bulk_dump(&self, py: Python<'_>, table: String, filename: String) -> PyResult<u64> {
        self.call(py, move |h| Box::pin(async move { h.bulk_dump(&table, &filename).await }))
    }

    /// The SQLAlchemy URI.
    fn get_uri(&self, py: Python<'_>) -> PyResult<String> {
        self.call(py, |h| Box::pin(async move { h.get_uri().await }))
    }

    /// Rows inserted.
    #[pyo3(signature = (table, rows, target_fields=None, commit_every=1000, replace=false, replace_index=None, fast=false))]
    #[allow(clippy::too_many_arguments)]
    fn insert_rows(
        &self,
        py: Python<'_>,
        table: String,
        rows: &Bound<'_, PyAny>,
        target_fields: Option<Vec<String>>,
        commit_every: u32,
        replace: bool,
        replace_index: Option<Vec<String>>,
        fast: bool,
    ) -> PyResult<u64> {
        let rows = rows
            .try_iter()?
            .map(|row| row?.try_iter()?.map(|v| param(&v?)).collect::<PyResult<Vec<_>>>())
            .collect::<PyResult<Vec<_>>>()?;
        let options = InsertOptions { target_fields, commit_every: Some(commit_every), replace, replace_index, fast };
        self.call(py, move |h| Box::pin(async move { h.insert_rows(&table, rows, options).await }))
    }

    /// The primary key's columns, or None.
    #[pyo3(signature = (table, schema=None))]
    fn get_table_primary_key(
        &self,
        py: Python<'_>,
        table: String,
        schema: Option<String>,
    ) -> PyResult<Option<Vec<String>>> {
        self.call(py, move |h| Box::pin(async move { h.get_table_primary_key(&table, schema.as_deref()).await }))
    }

    /// get_conn's connection, for `pghook._dbapi`.
    fn get_conn(&self, py: Python<'_>) -> PyResult<connection::ConnectionCore> {
        connection::ConnectionCore::open(py, self)
    }

    /// (login, token, port).
    fn get_iam_token(&self, py: Python<'_>) -> PyResult<(String, String, u16)> {
        let token = self.call(py, |h| Box::pin(async move { h.get_iam_token().await }))?;
        Ok((token.user, token.password, token.port))
    }
}

/// The extension module.
#[pymodule]
fn _pghook(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    logging::install();
    m.add_class::<Core>()?;
    arrow::register(m)?;
    m.add_class::<connection::ConnectionCore>()?;
    for (name, class) in [
        ("Error", py.get_type::<Error>()),
        ("ConfigError", py.get_type::<ConfigError>()),
        ("ConnectionNotFound", py.get_type::<ConnectionNotFound>()),
        ("SecretsError", py.get_type::<SecretsError>()),
        ("SandboxDenied", py.get_type::<SandboxDenied>()),
        ("ConnectError", py.get_type::<ConnectError>()),
        ("TlsError", py.get_type::<TlsError>()),
        ("DatabaseError", py.get_type::<DatabaseError>()),
        ("FileError", py.get_type::<FileError>()),
        ("AwsError", py.get_type::<AwsError>()),
        ("LimitError", py.get_type::<LimitError>()),
        ("GuestError", py.get_type::<GuestError>()),
        ("CallTimeout", py.get_type::<CallTimeout>()),
        ("InterfaceError", py.get_type::<InterfaceError>()),
    ] {
        m.add(name, class)?;
    }
    // Defaults for errors raised without a pghook error behind them (a
    // closed or busy connection): every error has `.kind` and `.sqlstate`.
    py.get_type::<Error>().setattr("kind", "error")?;
    py.get_type::<Error>().setattr("sqlstate", py.None())?;
    py.get_type::<InterfaceError>().setattr("kind", "interface")?;
    Ok(())
}
