//! Stopping calls from outside: Ctrl-C at the command line, a cancelled job in
//! a service. An interrupted call stops like a timed-out one: its statement
//! is cancelled on the server and the call returns only once the server is
//! done with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A switch shared by the hooks given it ([`crate::Hook::with_interrupt`]).
/// Once thrown it stays thrown: every running and later call of those hooks
/// fails with [`crate::ErrorKind::Interrupted`].
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    thrown: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// A switch not yet thrown.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Stop every call of the hooks holding this switch.
    pub fn interrupt(&self) {
        self.inner.thrown.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`Interrupt::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.inner.thrown.load(Ordering::SeqCst)
    }

    /// Resolves once the switch is thrown.
    pub(crate) async fn thrown(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a throw in between is not missed.
            notified.as_mut().enable();
            if self.is_interrupted() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_throw_wakes_waiters_and_stays() {
        let switch = Interrupt::new();
        let waiter = tokio::spawn({
            let switch = switch.clone();
            async move { switch.thrown().await }
        });
        tokio::task::yield_now().await;
        switch.interrupt();
        waiter.await.unwrap();
        // Later waiters return at once.
        switch.thrown().await;
        assert!(switch.is_interrupted());
    }
}
