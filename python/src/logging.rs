//! The host's and the guest's log records, in Python's `logging`: the
//! statements a hook runs, the server's notices (`enable_log_db_messages`),
//! warnings such as a missing `copy_expert` input, as Airflow's hook logs
//! them. Each record goes to the logger named by its target (`pghook`, or
//! the Rust module's path), taking the GIL for the moment it is handed over.
//!
//! A thread driving a call ([`Deferring`]) keeps its records until the call
//! lets Python run again ([`emit_deferred`]): Python code run in the middle
//! of the call (a handler, or a signal handler Python runs beside it on the
//! main thread) could neither stop it nor call pghook itself.

use std::cell::RefCell;
use std::collections::VecDeque;

use pyo3::exceptions::PyException;
use pyo3::prelude::*;

/// A record for Python: its logger's name, level and message.
type Record = (String, i32, String);

thread_local! {
    /// How many calls this thread is driving, and the records they logged.
    static DEFERRED: RefCell<(usize, VecDeque<Record>)> = const { RefCell::new((0, VecDeque::new())) };
}

/// While alive, this thread's records wait for [`emit_deferred`].
pub(crate) struct Deferring(());

impl Deferring {
    pub(crate) fn start() -> Deferring {
        DEFERRED.with(|d| d.borrow_mut().0 += 1);
        Deferring(())
    }
}

impl Drop for Deferring {
    fn drop(&mut self) {
        DEFERRED.with(|d| d.borrow_mut().0 -= 1);
    }
}

/// Hand this thread's waiting records to Python's `logging`. A handler's
/// failure (an `Exception`) is printed, as `logging` prints its own; any
/// other exception (`KeyboardInterrupt` from a signal handler Python ran
/// meanwhile, `SystemExit`) is returned, for the call to stop on, and the
/// records after it wait for the next time.
pub(crate) fn emit_deferred(py: Python<'_>) -> Result<(), PyErr> {
    loop {
        let next = DEFERRED.with(|d| d.borrow_mut().1.pop_front());
        let Some(record) = next else { return Ok(()) };
        if let Err(e) = hand_over(py, record) {
            if !e.is_instance_of::<PyException>(py) {
                return Err(e);
            }
            e.print(py);
        }
    }
}

/// Hand over every waiting record, as [`emit_deferred`] does, to the last:
/// the first exception that is no `Exception` is returned, later ones are
/// printed.
pub(crate) fn emit_all(py: Python<'_>) -> Result<(), PyErr> {
    let mut first = None;
    while let Err(e) = emit_deferred(py) {
        match first {
            None => first = Some(e),
            Some(_) => e.print(py),
        }
    }
    first.map_or(Ok(()), Err)
}

fn hand_over(py: Python<'_>, (target, level, message): Record) -> PyResult<()> {
    let logger = py.import("logging")?.call_method1("getLogger", (target,))?;
    logger.call_method1("log", (level, message))?;
    Ok(())
}

/// Forwards pghook's `log` records of level info and above, and other
/// crates' warnings and errors, to Python's `logging`.
struct PythonLogging;

impl log::Log for PythonLogging {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("pghook");
        metadata.level() <= if ours { log::Level::Info } else { log::Level::Warn }
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Python's levels: WARNING is 30, INFO 20, ERROR 40.
        let level = match record.level() {
            log::Level::Error => 40,
            log::Level::Warn => 30,
            _ => 20,
        };
        let record = (record.target().replace("::", "."), level, record.args().to_string());
        // (`try_with`: a thread's last records may come as it ends.)
        if DEFERRED.try_with(|d| d.borrow().0 > 0).unwrap_or(false) {
            DEFERRED.with(|d| d.borrow_mut().1.push_back(record));
            return;
        }
        Python::with_gil(|py| {
            // A failing handler must not fail the call that logged.
            if let Err(e) = hand_over(py, record) {
                e.print(py);
            }
        });
    }

    fn flush(&self) {}
}

/// Install the bridge, once per process (a second call, or another
/// `log` logger already set, leaves things as they are).
pub(crate) fn install() {
    static LOGGER: PythonLogging = PythonLogging;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
