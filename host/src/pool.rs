//! Session reuse for busy services: an opt-in, bounded pool of idle
//! sessions per tenant, keyed by the connection settings the guest resolved.
//!
//! A session goes back only after `DISCARD ALL` succeeded on it, which also
//! proves it is not inside a transaction (PostgreSQL refuses `DISCARD ALL`
//! there) and not broken; otherwise it is closed. Sessions live at most
//! [`MAX_AGE`], so an IAM login never outlives its token (15 minutes). The
//! pool belongs to one tenant: no tenant gets another's session. Airflow's
//! behaviour, a new connection per call, stays the default.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bindings::postgres::ConnectConfig;
use crate::postgres::Session;

/// How long a session may be reused after it was opened.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The idle sessions of one tenant.
pub struct SessionPool {
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
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }

    /// An idle session opened with the settings of `key`, if one is fresh.
    pub(crate) fn take(&self, key: u64) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let sessions = idle.get_mut(&key)?;
        while let Some(session) = sessions.pop() {
            if session.reusable(MAX_AGE) {
                return Some(session);
            }
        }
        None
    }

    /// Reset `session` and keep it for the next call with the same settings,
    /// off the caller's path; a session that cannot be reset is closed.
    pub(crate) fn give_back(self: &Arc<Self>, key: u64, session: Session) {
        if !session.reusable(MAX_AGE) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            if !session.reset().await {
                return;
            }
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|_, sessions| {
                sessions.retain(|s| s.reusable(MAX_AGE));
                !sessions.is_empty()
            });
            if idle.values().map(Vec::len).sum::<usize>() < pool.max_idle {
                idle.entry(key).or_default().push(session);
            }
        });
    }
}
