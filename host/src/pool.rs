//! Session reuse for busy services: an opt-in, bounded pool of idle
//! sessions per tenant, keyed by the connection settings the guest resolved.
//!
//! A session given back is reset: a transaction the call left open is
//! rolled back (as closing the connection would), then what `DISCARD ALL`
//! does, but for the statements the host prepared for its own type lookups
//! (see `RESET_SESSION` in the postgres module). The
//! reset is sent at once and travels ahead of the next call's statements,
//! which check that it succeeded before they use the session: the next call
//! does not wait for it. A session that is broken, busy, old or had a
//! statement fail is closed. Sessions live at most
//! [`MAX_AGE`], so an IAM login never outlives its token (15 minutes). The
//! pool belongs to one tenant: no tenant gets another's session. Airflow's
//! behaviour, a new connection per call, stays the default.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use crate::bindings::postgres::ConnectConfig;
use crate::postgres::Session;

/// How long a session may be reused after it was opened.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The idle sessions of one tenant.
pub struct SessionPool {
    /// Per key, sessions given back, their reset sent.
    idle: Mutex<HashMap<u64, Vec<Session>>>,
    max_idle: usize,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool").field("max_idle", &self.max_idle).finish_non_exhaustive()
    }
}

/// The pool key of a resolved connection: every setting counts, the
/// password (an IAM token) included.
pub(crate) fn key(config: &ConnectConfig) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    format!("{config:?}").hash(&mut hasher);
    hasher.finish()
}

impl SessionPool {
    /// A pool that keeps at most `max_idle` idle sessions.
    pub fn new(max_idle: usize) -> SessionPool {
        SessionPool { idle: Mutex::new(HashMap::new()), max_idle }
    }

    /// How many sessions are idle in the pool.
    pub fn idle(&self) -> usize {
        self.live().values().map(Vec::len).sum()
    }

    /// The idle sessions, those closed or grown old since dropped.
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Session>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, sessions| {
            sessions.retain(|s| s.reusable(MAX_AGE));
            !sessions.is_empty()
        });
        idle
    }

    /// An idle session opened with the settings of `key`, if one is fresh
    /// and its reset has not failed.
    pub(crate) async fn take(&self, key: u64) -> Option<Session> {
        loop {
            let session = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&key)?.pop()?;
            if session.reusable(MAX_AGE) && !session.reset_failed().await {
                return Some(session);
            }
        }
    }

    /// Keep `session` for the next call with the same settings, its reset
    /// sent; a session that is closed, busy, old, or over the pool's size
    /// is closed.
    pub(crate) fn give_back(&self, key: u64, session: Session) {
        if !session.reusable(MAX_AGE) {
            return;
        }
        let mut idle = self.live();
        if idle.values().map(Vec::len).sum::<usize>() < self.max_idle {
            session.start_reset();
            idle.entry(key).or_default().push(session);
        }
    }
}
