//! pghook as a wasmtime capability: the per-store context, the view an
//! embedder's store data offers, and [`add_to_linker`], shaped like
//! `wasmtime-wasi-http`'s `WasiHttpCtx`, `WasiHttpView` and
//! `add_to_linker_async`.
//!
//! An embedder with its own engine, linker and store data links the guest's
//! `pghook:hook/*` imports with [`add_to_linker`] (and WASI with
//! `wasmtime_wasi::p2::add_to_linker_async`, for the guest's std), keeps a
//! [`PghookCtx`] in its store data and implements [`PghookView`]. The host
//! imports then run under that context's [`Policy`]. [`crate::Runtime`] is
//! the same wiring, ready made.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::aws::CredentialCache;
use crate::files::{FileRoot, LazyRoot};
use crate::policy::Policy;
use crate::pool::SessionPool;
use crate::postgres::{ResultBudget, Stopper};
use crate::progress::{NoProgress, Progress};

/// What pghook's imports need in one store: the tenant's policy, its file
/// root, where COPY progress goes, the sessions the guest opened, and the
/// tenant's AWS credentials.
pub struct PghookCtx {
    pub(crate) policy: Arc<Policy>,
    /// Opened the first time the guest touches a file.
    pub(crate) files: LazyRoot,
    pub(crate) progress: Arc<dyn Progress>,
    /// How to stop each session this store opened, should its call be abandoned.
    pub(crate) stoppers: Vec<Arc<Stopper>>,
    /// What is left of the tenant's result limit in this store.
    pub(crate) result_budget: ResultBudget,
    /// The tenant's idle sessions, if it reuses them.
    pub(crate) pool: Option<Arc<SessionPool>>,
    /// The tenant's AWS credentials, kept between its calls.
    pub(crate) aws_credentials: Arc<CredentialCache>,
}

impl PghookCtx {
    /// A context under `policy`. Its file root is opened the first time the
    /// guest touches a file: from the policy's [`FileRootSource`] if it has
    /// one, else its `file_root` directory.
    ///
    /// [`FileRootSource`]: crate::files::FileRootSource
    pub fn new(policy: Arc<Policy>) -> PghookCtx {
        let result_budget = ResultBudget::new(policy.max_result_bytes);
        let files = LazyRoot::for_policy(&policy);
        PghookCtx {
            policy,
            files,
            progress: Arc::new(NoProgress),
            stoppers: Vec::new(),
            result_budget,
            pool: None,
            aws_credentials: Arc::new(CredentialCache::new()),
        }
    }

    /// Confine this store's files to `root`, already opened, instead.
    pub fn with_file_root(mut self, root: FileRoot) -> PghookCtx {
        self.files = LazyRoot::opened(root);
        self
    }

    /// Reuse sessions from `pool` (one pool per tenant, never shared between
    /// tenants) instead of opening one per call.
    pub fn with_session_pool(mut self, pool: Arc<SessionPool>) -> PghookCtx {
        self.pool = Some(pool);
        self
    }

    /// Keep AWS credentials (assumed roles, the default chain's) in `cache`
    /// between calls, renewing them before they expire, instead of asking
    /// for them in every call. One cache per tenant, never shared between
    /// tenants.
    pub fn with_aws_credential_cache(mut self, cache: Arc<CredentialCache>) -> PghookCtx {
        self.aws_credentials = cache;
        self
    }

    /// Report COPY progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> PghookCtx {
        self.progress = progress;
        self
    }

    /// The policy this context enforces.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Take what it needs to stop this store's sessions. Call it when a call
    /// is abandoned (a timeout, a cancelled task), then drop the store, then
    /// run [`SessionStop::run`]: the statements still running are cancelled
    /// on the server, and it returns once the server has ended them.
    pub fn take_stop(&mut self) -> SessionStop {
        let stoppers = std::mem::take(&mut self.stoppers);
        let busy = stoppers.iter().map(|s| s.take_busy()).collect();
        SessionStop { stoppers, busy }
    }
}

/// The sessions of an abandoned store, to stop once the store is dropped
/// (see [`PghookCtx::take_stop`]).
pub struct SessionStop {
    stoppers: Vec<Arc<Stopper>>,
    busy: Vec<bool>,
}

impl SessionStop {
    /// Cancel the statements that were running and wait until the server
    /// has ended them and closed each connection. Returns whether the server
    /// confirmed in time for every session.
    pub async fn run(self) -> bool {
        let mut confirmed = true;
        for (stopper, was_busy) in self.stoppers.iter().zip(self.busy) {
            confirmed &= stopper.stop(was_busy).await;
        }
        confirmed
    }
}

/// The two parts of a store's data the imports use: pghook's context and the
/// store's resource table (where sessions live).
pub struct PghookCtxView<'a> {
    /// pghook's per-store context.
    pub ctx: &'a mut PghookCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

impl Deref for PghookCtxView<'_> {
    type Target = PghookCtx;

    fn deref(&self) -> &PghookCtx {
        self.ctx
    }
}

impl DerefMut for PghookCtxView<'_> {
    fn deref_mut(&mut self) -> &mut PghookCtx {
        self.ctx
    }
}

/// Implemented by an embedder's store data to give pghook's imports their
/// context, as `wasmtime_wasi::WasiView` does for WASI.
pub trait PghookView: Send {
    /// pghook's context and the store's resource table.
    fn pghook(&mut self) -> PghookCtxView<'_>;
}

struct HasPghook;

impl HasData for HasPghook {
    type Data<'a> = PghookCtxView<'a>;
}

/// Add the `pghook:hook/*` imports (secrets, log, files, postgres, aws) to
/// an embedder's linker. The guest also needs WASI for its standard library:
/// add it with `wasmtime_wasi::p2::add_to_linker_async`. The engine must
/// have async support (the default) and, if the embedder uses epoch
/// deadlines for time limits, epoch interruption.
pub fn add_to_linker<T: PghookView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    crate::bindings::Pghook::add_to_linker::<T, HasPghook>(linker, T::pghook)
}

impl crate::bindings::types::Host for PghookCtxView<'_> {}

impl crate::bindings::log::Host for PghookCtxView<'_> {
    async fn log(&mut self, level: crate::bindings::log::Level, message: String) {
        use crate::bindings::log::Level;
        let level = match level {
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warning => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log!(target: "pghook", level, "{message}");
    }
}
