//! Session reuse for busy services: an opt-in, bounded pool of idle
//! sessions per tenant, keyed by the connection settings the guest resolved.
//!
//! A session is reused only after `DISCARD ALL` succeeded on it, which also
//! proves it is not inside a transaction (PostgreSQL refuses `DISCARD ALL`
//! there) and not broken; otherwise it is closed. The reset runs off the
//! caller's path: the next call waits for it only if it is still running. Sessions live at most
//! [`MAX_AGE`], so an IAM login never outlives its token (15 minutes). The
//! pool belongs to one tenant: no tenant gets another's session. Airflow's
//! behaviour, a new connection per call, stays the default.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::bindings::postgres::ConnectConfig;
use crate::postgres::Session;

/// How long a session may be reused after it was opened.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// The idle sessions of one tenant.
pub struct SessionPool {
    /// Per key, sessions being reset or ready: a call takes one as soon as
    /// it was given back, and waits for its reset only if still running.
    idle: Mutex<HashMap<u64, Vec<Idle>>>,
    max_idle: usize,
}

/// A session given back.
enum Idle {
    /// Reset, ready for the next call.
    Ready(Session),
    /// Being reset; the sender is dropped if the reset fails.
    Resetting(oneshot::Receiver<Session>),
}

impl Idle {
    /// Settle a finished reset; whether the session is still worth keeping.
    fn keep(&mut self) -> bool {
        if let Idle::Resetting(reset) = self {
            match reset.try_recv() {
                Ok(session) => *self = Idle::Ready(session),
                Err(oneshot::error::TryRecvError::Empty) => return true,
                Err(oneshot::error::TryRecvError::Closed) => return false,
            }
        }
        matches!(self, Idle::Ready(session) if session.reusable(MAX_AGE))
    }
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

    /// How many sessions are idle in the pool, reset and ready.
    pub fn idle(&self) -> usize {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.values_mut().for_each(|sessions| sessions.retain_mut(Idle::keep));
        idle.values().flatten().filter(|s| matches!(s, Idle::Ready(_))).count()
    }

    /// An idle session opened with the settings of `key`, if one is fresh;
    /// waits for its reset if that is still running.
    pub(crate) async fn take(&self, key: u64) -> Option<Session> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&key)?.pop()?;
            let session = match idle {
                Idle::Ready(session) => session,
                Idle::Resetting(reset) => match reset.await {
                    Ok(session) => session,
                    Err(_) => continue,
                },
            };
            if session.reusable(MAX_AGE) {
                return Some(session);
            }
        }
    }

    /// Reset `session` off the caller's path and keep it for the next call
    /// with the same settings; a session that cannot be reset is closed.
    pub(crate) fn give_back(&self, key: u64, session: Session) {
        if !session.reusable(MAX_AGE) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, sessions| {
            sessions.retain_mut(Idle::keep);
            !sessions.is_empty()
        });
        if idle.values().map(Vec::len).sum::<usize>() >= self.max_idle {
            return;
        }
        let (reset, resetting) = oneshot::channel();
        tokio::spawn(async move {
            if session.reset().await {
                let _ = reset.send(session);
            }
        });
        idle.entry(key).or_default().push(Idle::Resetting(resetting));
    }
}
