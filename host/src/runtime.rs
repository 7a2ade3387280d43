//! The runtime that embeds the guest component: one engine and compiled
//! component per process, a store and instance per call of a tenant's own
//! (kept warm for its next call only if the call returned cleanly), so a
//! trap or a timeout fails that call and nothing else.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{
    Config, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::Tenant;
use crate::bindings::hook::RowShape;
use crate::bindings::types::Error as WitError;
use crate::bindings::{Pghook, PghookPre};
use crate::ctx::{PghookCtx, PghookCtxView, PghookView};
use crate::error::{Error, ErrorKind};
use crate::interrupt::Interrupt;
use crate::policy::Policy;
use crate::postgres::{Records, ResultBudget, Rowset};
use crate::progress::Progress;

/// The guest component built from guest/ and embedded at compile time.
pub static GUEST_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pghook_guest.wasm"));

/// How often the epoch ticks: the granularity of time limits on guest code.
const EPOCH_TICK: Duration = Duration::from_millis(10);

fn setup_error(e: wasmtime::Error) -> Error {
    Error::new(ErrorKind::Guest, format!("loading the guest component: {e:#}")).with_source(e)
}

/// How many guest instances may run at once in one [`Runtime`]'s engine.
pub const MAX_CONCURRENT_CALLS: u32 = 1000;

/// The guest memory a pooled slot keeps resident between calls.
const KEEP_RESIDENT: usize = 4 << 20;

/// How a runtime's engine allocates guest instances.
#[derive(Clone, Copy)]
enum Allocation {
    /// A pool of preallocated slots: cheap instances for a long-lived service.
    Pooled,
    /// Allocate per instance: no set-up cost for a process making one call.
    OnDemand,
}

fn engine(allocation: Allocation) -> Result<Engine, Error> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if let Allocation::OnDemand = allocation {
        return Engine::new(&config).map_err(setup_error);
    }
    // Calls instantiate the guest often: a pool of preallocated slots makes
    // that cheap. Slots are only reserved address space until
    // used; each call's memory is still capped by its tenant's limiter.
    let mut pool = PoolingAllocationConfig::default();
    // A guest instance is one component of a few core instances (the
    // program and wit-component's shims): leave room for each.
    pool.total_component_instances(MAX_CONCURRENT_CALLS)
        .total_stacks(MAX_CONCURRENT_CALLS)
        .total_core_instances(4 * MAX_CONCURRENT_CALLS)
        .total_memories(2 * MAX_CONCURRENT_CALLS)
        .total_tables(4 * MAX_CONCURRENT_CALLS);
    // A call dirties a few MiB of guest memory: keep that resident and
    // reset just the pages it touched (found with PAGEMAP_SCAN where the
    // kernel has it), rather than unmapping memory and faulting it back in.
    pool.linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(setup_error)
}

/// Start the thread that ticks `engine`'s epoch, unless one already does:
/// one ticker per engine, however many runtimes share it. The thread ends
/// with the engine.
fn tick_epochs(engine: &Engine) -> Result<(), Error> {
    static TICKED: Mutex<Vec<EngineWeak>> = Mutex::new(Vec::new());
    let mut ticked = TICKED.lock().unwrap_or_else(|p| p.into_inner());
    ticked.retain(|weak| weak.upgrade().is_some());
    if ticked.iter().any(|weak| weak.upgrade().is_some_and(|e| Engine::same(&e, engine))) {
        return Ok(());
    }
    let weak = engine.weak();
    ticked.push(engine.weak());
    std::thread::Builder::new()
        .name("pghook-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .map_err(|e| Error::new(ErrorKind::Guest, format!("starting the epoch thread: {e}")).with_source(e))
}

/// Whether `path` exists, belongs to this process's user, and nobody else
/// may write to it.
fn private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(meta), Ok(me)) = (std::fs::symlink_metadata(path), std::fs::metadata("/proc/self")) else {
        return false;
    };
    meta.uid() == me.uid() && meta.mode() & 0o022 == 0
}

/// Write a compiled guest into the cache: a private directory, and a rename
/// so no reader sees half a file.
fn store_compiled(dir: &Path, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if !private(dir) {
        return Err(std::io::Error::other("the cache directory is not private to this user"));
    }
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, compiled)?;
    temp.persist(path)?;
    Ok(())
}

/// Caps a store's linear memory and remembers whether the cap was hit.
pub(crate) struct MemoryLimiter {
    limit: usize,
    hit: bool,
    /// The largest size a memory of the store has grown to.
    grown: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.limit;
        self.hit |= !allowed;
        if allowed {
            self.grown = self.grown.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything one call's store holds: the guest's handles, WASI for its
/// standard library (no files, no network, no environment), the memory cap
/// and pghook's context.
pub struct State {
    table: ResourceTable,
    wasi: WasiCtx,
    limiter: MemoryLimiter,
    pub(crate) pghook: PghookCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl State {
    /// Take a result the guest returned by handle out of the store.
    pub(crate) fn take_rowset(&mut self, handle: Resource<Rowset>) -> wasmtime::Result<Rowset> {
        Ok(self.table.delete(handle)?)
    }

    /// Take get_records' rows out of the store.
    pub(crate) fn take_records(&mut self, (shape, rows): (RowShape, Resource<Rowset>)) -> wasmtime::Result<Records> {
        let Rowset { columns, rows, .. } = self.take_rowset(rows)?;
        Ok(Records { shape, columns, rows })
    }
}

/// What a call returned, with what it handed back by handle taken out of
/// the store by `take` (on success only). A failed take is a wasmtime
/// error, which discards the store with whatever handles are left in it.
pub(crate) fn taking<T, U>(
    outcome: Result<T, WitError>,
    take: impl FnOnce(T) -> wasmtime::Result<U>,
) -> wasmtime::Result<Result<U, WitError>> {
    match outcome {
        Ok(value) => take(value).map(Ok),
        Err(e) => Ok(Err(e)),
    }
}

impl PghookView for State {
    fn pghook(&mut self) -> PghookCtxView<'_> {
        PghookCtxView { ctx: &mut self.pghook, table: &mut self.table }
    }
}

/// The compiled guest and its linker, shared by every tenant.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    pre: PghookPre<State>,
    /// How many instances all tenants keep warm, against [`MAX_WARM`].
    warm_total: Arc<AtomicUsize>,
}

/// The most guest instances a runtime keeps warm across its tenants: well
/// under [`MAX_CONCURRENT_CALLS`], so warm instances never starve calls of
/// pooled slots.
pub const MAX_WARM: usize = MAX_CONCURRENT_CALLS as usize / 4;

/// The most instances one tenant keeps warm.
const MAX_WARM_PER_TENANT: usize = 16;

/// A warm instance whose memory grew past this is dropped, not kept.
const MAX_WARM_MEMORY: usize = 16 << 20;

/// A guest instance and its store.
pub(crate) struct Instance {
    pub(crate) store: Store<State>,
    pub(crate) guest: Pghook,
}

/// One tenant's warm guest instances: an instance whose call returned
/// (with a result or an error of its own) and left nothing in its table
/// (no session, no result set) serves
/// the tenant's next call, skipping instantiation. One that trapped, ran
/// out of memory, was stopped or grew large is dropped. The guest keeps no
/// state between calls; instances are never shared between tenants.
pub(crate) struct WarmInstances {
    idle: Mutex<Vec<Instance>>,
    /// The runtime's count of warm instances, of all tenants.
    total: Arc<AtomicUsize>,
}

impl WarmInstances {
    fn take(&self) -> Option<Instance> {
        let warm = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()?;
        self.total.fetch_sub(1, Ordering::SeqCst);
        Some(warm)
    }
}

impl Drop for WarmInstances {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().unwrap_or_else(|p| p.into_inner());
        self.total.fetch_sub(idle.len(), Ordering::SeqCst);
    }
}

/// A call into a guest instance.
pub(crate) type GuestCall<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<Result<R, WitError>>> + Send + 'a>>;

impl Runtime {
    /// Compile the embedded guest component, for a long-lived service:
    /// instances come from a pool of preallocated slots, at most
    /// [`MAX_CONCURRENT_CALLS`] at once.
    pub fn new() -> Result<Runtime, Error> {
        Self::from_component(GUEST_COMPONENT)
    }

    /// Compile another build of the guest, e.g. one an embedder ships.
    pub fn from_component(bytes: &[u8]) -> Result<Runtime, Error> {
        let engine = engine(Allocation::Pooled)?;
        let component = Component::new(&engine, bytes).map_err(setup_error)?;
        Self::link(engine, component)
    }

    /// Compile the embedded guest with an embedder's own engine (its
    /// allocator, cache and settings). The engine needs epoch interruption
    /// for time limits to stop guest code that spins; pghook ticks each
    /// engine's epoch once, however many runtimes share it.
    pub fn with_engine(engine: &Engine) -> Result<Runtime, Error> {
        let component = Component::new(engine, GUEST_COMPONENT).map_err(setup_error)?;
        Self::link(engine.clone(), component)
    }

    /// A new, empty set of warm instances for one tenant.
    pub(crate) fn warm_instances(&self) -> WarmInstances {
        WarmInstances { idle: Mutex::new(Vec::new()), total: self.warm_total.clone() }
    }

    /// The engine this runtime compiles and runs the guest with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The user's cache of compiled guests, for [`Runtime::with_cache`]:
    /// `$XDG_CACHE_HOME/pghook`, else `~/.cache/pghook`; `None` when
    /// `PGHOOK_NO_CACHE` is set or no home is known. The CLI and the Python
    /// package use it.
    pub fn user_cache_dir() -> Option<PathBuf> {
        if std::env::var_os("PGHOOK_NO_CACHE").is_some_and(|v| !v.is_empty()) {
            return None;
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("pghook"))
    }

    /// For a short-lived process, such as the CLI: keeps the compiled guest
    /// in `cache_dir` (created private to this user) so the process skips
    /// compiling it, and allocates instances on demand rather than setting
    /// up a pool. A stale or unreadable entry is compiled afresh.
    pub fn with_cache(cache_dir: &Path) -> Result<Runtime, Error> {
        let engine = engine(Allocation::OnDemand)?;
        let mut hasher = std::hash::DefaultHasher::new();
        GUEST_COMPONENT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let path = cache_dir.join(format!("guest-{:016x}.cwasm", hasher.finish()));
        let cached = if private(cache_dir) && private(&path) {
            // SAFETY: the entry is native code; it is loaded only from a
            // file and directory this user owns and nobody else can write,
            // as `store_compiled` leaves them, and wasmtime checks its header.
            unsafe { Component::deserialize_file(&engine, &path) }.ok()
        } else {
            None
        };
        let component = match cached {
            Some(component) => component,
            None => {
                let compiled = engine.precompile_component(GUEST_COMPONENT).map_err(setup_error)?;
                // A cache that cannot be written only costs time.
                let _ = store_compiled(cache_dir, &path, &compiled);
                // SAFETY: these bytes were produced by this engine just now.
                unsafe { Component::deserialize(&engine, &compiled) }.map_err(setup_error)?
            }
        };
        Self::link(engine, component)
    }

    fn link(engine: Engine, component: Component) -> Result<Runtime, Error> {
        let mut linker: Linker<State> = Linker::new(&engine);
        // The guest's std imports a few WASI interfaces (clocks, random,
        // stdio); its context grants no files, no network and no environment.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup_error)?;
        crate::ctx::add_to_linker(&mut linker).map_err(setup_error)?;
        let pre = PghookPre::new(linker.instantiate_pre(&component).map_err(setup_error)?).map_err(setup_error)?;
        tick_epochs(&engine)?;
        Ok(Runtime { engine, pre, warm_total: Arc::new(AtomicUsize::new(0)) })
    }

    /// The interfaces the guest component imports, as `namespace:package/interface@version`.
    pub fn guest_imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        component.component_type().imports(&self.engine).map(|(name, _)| name.to_string()).collect()
    }

    /// Run one call under `tenant`'s policy and limits, with its sessions
    /// and AWS credentials, in a warm instance of the tenant's if one is
    /// idle, else a fresh one. A call over its time limit, or interrupted,
    /// is stopped: its statements are cancelled on the server, and it
    /// returns once the server is done.
    pub(crate) async fn call<R, F>(
        &self,
        tenant: &Tenant,
        progress: Arc<dyn Progress>,
        interrupt: &Interrupt,
        f: F,
    ) -> Result<R, Error>
    where
        F: for<'a> FnOnce(&'a Pghook, &'a mut Store<State>) -> GuestCall<'a, R>,
    {
        let warm = &*tenant.warm;
        let (store, guest) = match warm.take() {
            Some(Instance { mut store, guest }) => {
                store.data_mut().pghook = self.call_context(tenant, progress);
                (store, Some(guest))
            }
            None => (self.new_store(tenant, progress), None),
        };
        let (result, instance) = self.drive(&tenant.policy, store, guest, interrupt, f).await;
        if let Some(instance) = instance {
            self.keep_warm(warm, instance);
        }
        result
    }

    /// A store of `tenant`'s own, not yet instantiated, that no other call
    /// uses: for a guest resource that lives across calls (a connection).
    /// It never joins the tenant's warm instances.
    pub(crate) fn new_store(&self, tenant: &Tenant, progress: Arc<dyn Progress>) -> Store<State> {
        let state = State {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
            limiter: MemoryLimiter { limit: tenant.policy.memory_limit, hit: false, grown: 0 },
            pghook: self.call_context(tenant, progress),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        store
    }

    /// pghook's context for one call of `tenant`'s.
    fn call_context(&self, tenant: &Tenant, progress: Arc<dyn Progress>) -> PghookCtx {
        PghookCtx {
            pool: tenant.pool.clone(),
            ..PghookCtx::new(tenant.policy.clone())
                .with_progress(progress)
                .with_aws_credential_cache(tenant.aws_credentials.clone())
        }
    }

    /// Run `f` in `store` (instantiating the guest when `guest` is none)
    /// under `policy`'s time limit and `interrupt`. The instance comes back
    /// with the result when the call returned cleanly (with a result or an
    /// error of its own); one that trapped, ran out of memory or was
    /// stopped is dropped, its statements cancelled on the server first.
    pub(crate) async fn drive<R, F>(
        &self,
        policy: &Policy,
        mut store: Store<State>,
        guest: Option<Pghook>,
        interrupt: &Interrupt,
        f: F,
    ) -> (Result<R, Error>, Option<Instance>)
    where
        F: for<'a> FnOnce(&'a Pghook, &'a mut Store<State>) -> GuestCall<'a, R>,
    {
        let limit = policy.call_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        // Each call has the tenant's whole result limit.
        store.data_mut().pghook.result_budget = ResultBudget::new(policy.max_result_bytes);
        // What the guest hands the host in one import call (the statements
        // it rendered) is bounded by its memory: wasmtime's own cap on it
        // is set no lower, so the memory limit is the one that speaks.
        let fuel = HOSTCALL_FUEL.max(policy.memory_limit);
        store.set_hostcall_fuel(fuel);
        // Yield to tokio at every tick so the call's timeout can fire even
        // while guest code spins.
        store.epoch_deadline_async_yield_and_update(1);
        let stop = async {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => Stop::Timeout,
                _ = interrupt.thrown() => Stop::Interrupted,
            }
        };
        let outcome: wasmtime::Result<(Result<R, WitError>, Pghook)> = tokio::select! {
            biased;
            outcome = async {
                let guest = match guest {
                    Some(guest) => guest,
                    None => self.pre.instantiate_async(&mut store).await?,
                };
                let outcome = f(&guest, &mut store).await;
                wasmtime::Result::Ok((outcome?, guest))
            } => outcome,
            stop = stop => return (Err(abandon(store, stop, limit).await), None),
        };
        let failed = match outcome {
            Ok((result, guest)) => return (result.map_err(Error::from), Some(Instance { store, guest })),
            Err(_) if store.data().limiter.hit => Error::new(
                ErrorKind::Trap,
                format!("the guest ran out of memory (this tenant's limit is {} MiB)", policy.memory_limit >> 20),
            ),
            Err(trap) if trap.root_cause().to_string().contains("fuel allocated for hostcalls") => Error::new(
                ErrorKind::Limit,
                format!(
                    "the guest handed the host over {} MiB at once: send fewer rows per statement \
                     (a smaller commit_every with fast_executemany)",
                    fuel >> 20
                ),
            ),
            Err(trap) => {
                // The wasm backtrace is for developers: logged (-v), not returned.
                log::info!(target: "pghook", "guest trap: {trap:?}");
                Error::new(ErrorKind::Trap, format!("the guest failed: {}", trap.root_cause()))
            }
        };
        (Err(failed), None)
    }

    /// Keep an instance whose call returned for the tenant's next call, if
    /// it left nothing open, stayed small and there is room.
    fn keep_warm(&self, warm: &WarmInstances, instance: Instance) {
        let Instance { mut store, guest } = instance;
        let state = store.data_mut();
        if !state.table.is_empty() || state.limiter.grown > MAX_WARM_MEMORY {
            return;
        }
        // The call's context goes: its sessions are closed or pooled already.
        state.pghook = PghookCtx::new(state.pghook.policy.clone());
        let mut idle = warm.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= MAX_WARM_PER_TENANT {
            return;
        }
        let admitted =
            warm.total.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < MAX_WARM).then_some(n + 1)).is_ok();
        if admitted {
            idle.push(Instance { store, guest });
        }
    }
}

/// wasmtime's default cap on the bytes a guest hands the host in one call.
const HOSTCALL_FUEL: usize = 128 << 20;

/// Why a call was abandoned.
enum Stop {
    Timeout,
    Interrupted,
}

/// Stop an abandoned call: drop its instance and sessions, cancel the
/// statements still running and wait until the server has ended them, so
/// nothing of the call runs or commits after it returns.
async fn abandon(mut store: Store<State>, stop: Stop, limit: Duration) -> Error {
    let sessions = store.data_mut().pghook.take_stop();
    drop(store);
    let unconfirmed = if sessions.run().await { "" } else { "; the server did not confirm the statement ended" };
    match stop {
        Stop::Timeout => timed_out(limit, unconfirmed),
        Stop::Interrupted => Error::new(ErrorKind::Interrupted, format!("the call was interrupted{unconfirmed}")),
    }
}

/// The error of a call over its time limit.
fn timed_out(limit: Duration, unconfirmed: &str) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the call ran over this tenant's limit of {limit:?} and was stopped{unconfirmed}"),
    )
}
