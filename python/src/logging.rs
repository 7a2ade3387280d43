//! The host's and the guest's log records, in Python's `logging`: the
//! statements a hook runs, the server's notices (`enable_log_db_messages`),
//! warnings such as a missing `copy_expert` input, as Airflow's hook logs
//! them. Each record goes to the logger named by its target (`pghook`, or
//! the Rust module's path), taking the GIL for the moment it is handed over.

use pyo3::prelude::*;

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
        let message = record.args().to_string();
        let target = record.target().replace("::", ".");
        Python::with_gil(|py| {
            let logged = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", (target,)))
                .and_then(|logger| logger.call_method1("log", (level, message)));
            // A failing handler must not fail the call that logged.
            if let Err(e) = logged {
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
