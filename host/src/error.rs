//! The host's error type: the WIT error kinds plus what only the runtime
//! can tell (a guest trap, a call over its time limit).

pub use tokio_postgres::error::SqlState;

use crate::bindings::types::{Error as WitError, ErrorKind as WitKind};

/// What went wrong, in a form a caller can branch on. New kinds may be
/// added: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection, its extras or a hook argument is invalid.
    Config,
    /// A connection id is not defined.
    NotFound,
    /// The connection source (a secrets backend) failed to answer.
    Secrets,
    /// The sandbox refused: a file outside the root, a host not allowed.
    Denied,
    /// The server could not be reached, or refused the login.
    Connect,
    /// TLS could not be set up, or the server's certificate was rejected.
    Tls,
    /// The server rejected a statement; [`Error::sqlstate`] is set.
    Database,
    /// A local file could not be read or written.
    Io,
    /// An AWS call failed.
    Aws,
    /// A result or resource went over a limit the host sets.
    Limit,
    /// The guest component could not be compiled, loaded or linked.
    Guest,
    /// The guest trapped (a bug, or it ran out of memory). Only this call failed.
    Trap,
    /// The call ran over its time limit and was stopped.
    Timeout,
    /// The call was stopped through an [`crate::Interrupt`].
    Interrupted,
    /// The [`crate::Connection`] is closed: by its owner, or by an earlier
    /// call that ended its session (a timeout, an interrupt, a trap).
    Closed,
}

/// A failed hook call: its kind, a one-line message naming what is wrong,
/// the server's SQLSTATE for database errors, and the underlying error
/// where there is one.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    sqlstate: Option<SqlState>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The longest message an error keeps, in characters: a 10 MB host name
/// must not become a 10 MB log line.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// A message fit for one log line: control characters escaped (a newline or
/// a terminal escape from a server or a connection string stays visible and
/// inert) and the length capped at [`MAX_MESSAGE_CHARS`].
pub fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 32));
    for (count, c) in message.chars().enumerate() {
        if count == MAX_MESSAGE_CHARS {
            let rest = message.chars().count() - count;
            out.push_str(&format!("... ({rest} more characters)"));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl Error {
    /// An error of `kind`; the message is made one bounded line ([`one_line`]).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: one_line(&message.into()), sqlstate: None, source: None }
    }

    /// The same error, caused by `source`.
    pub fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message, without the SQLSTATE.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server's SQLSTATE, for [`ErrorKind::Database`] errors and logins
    /// the server refused.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        self.sqlstate.as_ref()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(state) = &self.sqlstate {
            write!(f, " (SQLSTATE {})", state.code())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<WitError> for Error {
    fn from(e: WitError) -> Error {
        let kind = match e.kind {
            WitKind::Config => ErrorKind::Config,
            WitKind::NotFound => ErrorKind::NotFound,
            WitKind::Secrets => ErrorKind::Secrets,
            WitKind::Denied => ErrorKind::Denied,
            WitKind::Connect => ErrorKind::Connect,
            WitKind::Tls => ErrorKind::Tls,
            WitKind::Database => ErrorKind::Database,
            WitKind::Io => ErrorKind::Io,
            WitKind::Aws => ErrorKind::Aws,
            WitKind::Limit => ErrorKind::Limit,
        };
        let sqlstate = e.sqlstate.as_deref().map(SqlState::from_code);
        Error { kind, message: one_line(&e.message), sqlstate, source: None }
    }
}

/// Build the WIT error a host import returns.
pub(crate) fn wit(kind: WitKind, message: impl Into<String>) -> WitError {
    WitError { kind, message: message.into(), sqlstate: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_capped_line() {
        assert_eq!(one_line("a\nb\r\u{1b}[31mc\td"), "a\\nb\\r\\u{1b}[31mc\\td");
        let long = one_line(&"é".repeat(5000));
        assert!(long.starts_with(&"é".repeat(MAX_MESSAGE_CHARS)));
        assert!(long.ends_with("... (4000 more characters)"), "{long}");
        assert_eq!(one_line("plain, ünïcode"), "plain, ünïcode");
    }
}
