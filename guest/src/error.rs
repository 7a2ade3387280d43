//! The guest's error type: the WIT `error` record with constructors.

use crate::bindings::types::{Error, ErrorKind};

/// Results of the policy modules.
pub type Result<T> = std::result::Result<T, Error>;

/// A `config` error: the connection, its extras or an argument is invalid.
pub fn config(message: impl Into<String>) -> Error {
    Error { kind: ErrorKind::Config, message: message.into(), sqlstate: None }
}

/// A `not-found` error: a connection id is not defined.
pub fn not_found(message: impl Into<String>) -> Error {
    Error { kind: ErrorKind::NotFound, message: message.into(), sqlstate: None }
}

/// A `denied` error: the tenant's sandbox does not reach what was named.
pub fn denied(message: impl Into<String>) -> Error {
    Error { kind: ErrorKind::Denied, message: message.into(), sqlstate: None }
}
