//! `get_conn`'s connection for Python: pghook's [`pghook::Connection`]
//! behind the DB-API classes of `pghook._dbapi`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use pghook::{Interrupt, Rowset};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::{Core, block_on, parameters, python_error, python_rows, shape_name};

/// A statement's result as `pghook._dbapi` takes it: (column names and
/// type names, or None when the statement returns no rows; rows; row count).
type Outcome<'py> = (Option<Vec<(String, String)>>, Bound<'py, PyList>, u64);

/// One open connection. Calls on it are one at a time: a second thread's
/// call while one runs is refused.
#[pyclass(frozen, module = "pghook._pghook")]
pub(crate) struct ConnectionCore {
    /// None while a call has it, or once closed.
    connection: Mutex<Option<pghook::Connection>>,
    /// Thrown by Ctrl-C during a call: that call ends the session.
    interrupt: Interrupt,
    shape: &'static str,
    closed: AtomicBool,
    /// The process that opened the session: a child after `fork()` shares
    /// its socket with the parent and must not use it.
    pid: u32,
}

type Op<T> = Box<
    dyn for<'c> FnOnce(
            &'c mut pghook::Connection,
        ) -> Pin<Box<dyn Future<Output = Result<T, pghook::Error>> + Send + 'c>>
        + Send,
>;

impl ConnectionCore {
    /// Open `core`'s connection.
    pub(crate) fn open(py: Python<'_>, core: &Core) -> PyResult<ConnectionCore> {
        // The connection keeps the interrupt: Ctrl-C during any of its calls throws it.
        let interrupt = Interrupt::new();
        let connection = core.call_with(py, &interrupt, |h| Box::pin(async move { h.connection().await }))?;
        let shape = shape_name(connection.row_shape());
        Ok(ConnectionCore {
            connection: Mutex::new(Some(connection)),
            interrupt,
            shape,
            closed: AtomicBool::new(false),
            pid: std::process::id(),
        })
    }

    /// Run `op` on the connection with the GIL released.
    fn run<T: Send + 'static>(&self, py: Python<'_>, op: Op<T>) -> PyResult<T> {
        if self.pid != std::process::id() {
            return Err(crate::InterfaceError::new_err(
                "the connection was opened in another process (before fork()): open a new one with get_conn()",
            ));
        }
        let taken = match self.closed.load(Ordering::SeqCst) {
            true => None,
            false => self.connection.lock().unwrap_or_else(|p| p.into_inner()).take(),
        };
        let Some(mut connection) = taken else {
            return Err(crate::InterfaceError::new_err(match self.closed.load(Ordering::SeqCst) {
                true => "connection already closed",
                false => "the connection is busy with a call of another thread",
            }));
        };
        let work = async move {
            let result = op(&mut connection).await;
            (connection, result)
        };
        let ((connection, result), signal) = match block_on(py, &self.interrupt, work) {
            Ok(done) => done,
            Err(e) => {
                // The call failed without handing the session back (a
                // panic, a bug): the connection is closed, not left busy.
                self.closed.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        // Closed meanwhile by close() from another thread, or stopped by a
        // signal (the interrupt stays thrown, even if the call ended first):
        // the session ends here.
        let ended = connection.is_closed() || self.interrupt.is_interrupted();
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        match ended || self.closed.load(Ordering::SeqCst) {
            true => {
                self.closed.store(true, Ordering::SeqCst);
                drop(slot);
                drop(connection);
            }
            false => *slot = Some(connection),
        }
        match signal {
            Some(signal) => Err(signal),
            None => result.map_err(|e| python_error(py, e)),
        }
    }
}

fn python_result(py: Python<'_>, rowset: Rowset) -> PyResult<Outcome<'_>> {
    let described = (!rowset.columns.is_empty())
        .then(|| rowset.columns.iter().map(|c| (c.name.clone(), c.type_name.clone())).collect());
    let rows = python_rows(py, &rowset.columns, rowset.rows)?;
    Ok((described, rows, rowset.row_count))
}

#[pymethods]
impl ConnectionCore {
    /// The row shape of the `cursor` extra.
    #[getter]
    fn shape(&self) -> &'static str {
        self.shape
    }

    /// Whether the connection is closed.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// One `cursor.execute`: (description, rows, row count).
    #[pyo3(signature = (sql, parameters=None))]
    fn execute<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        parameters: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Outcome<'py>> {
        let params = self::parameters(parameters)?;
        let rowset = self.run(py, Box::new(move |c| Box::pin(async move { c.execute(&sql, params).await })))?;
        python_result(py, rowset)
    }

    /// Commit the open transaction, if any.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, Box::new(|c| Box::pin(c.commit())))
    }

    /// Roll back the open transaction, if any.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py, Box::new(|c| Box::pin(c.rollback())))
    }

    /// Whether a transaction is open.
    fn in_transaction(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, Box::new(|c| Box::pin(c.in_transaction())))
    }

    /// Whether statements commit on their own.
    fn autocommit(&self, py: Python<'_>) -> PyResult<bool> {
        self.run(py, Box::new(|c| Box::pin(c.autocommit())))
    }

    /// Set autocommit (refused inside a transaction).
    fn set_autocommit(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.run(py, Box::new(move |c| Box::pin(c.set_autocommit(on))))
    }

    /// (loaded, rows) of a COPY against `filename`, in the connection's transaction.
    fn copy_expert(&self, py: Python<'_>, sql: String, filename: String) -> PyResult<(bool, u64)> {
        let outcome = self.run(py, Box::new(move |c| Box::pin(async move { c.copy_expert(&sql, &filename).await })))?;
        Ok((outcome.loaded, outcome.rows))
    }

    /// Close the session, rolling back an open transaction; one busy with
    /// another thread's call closes when that call ends.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.connection.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}
