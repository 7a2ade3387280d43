//! Embedding pghook in your own wasmtime: your engine (here with the pooling
//! allocator), your store data, pghook's imports linked into your linker with
//! `pghook::add_to_linker`, and two tenants under different policies.
//!
//! `cargo run -p pghook --example embed -- 'postgres://user:pw@127.0.0.1:5432/db'`

use std::sync::Arc;

use pghook::bindings::PghookPre;
use pghook::{HookArgs, MapConnections, PghookCtx, PghookCtxView, PghookView, Policy};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The embedder's own store data: its WASI context, its resource table,
/// and pghook's context beside them.
struct Plugin {
    table: ResourceTable,
    wasi: WasiCtx,
    pghook: PghookCtx,
}

impl WasiView for Plugin {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl PghookView for Plugin {
    fn pghook(&mut self) -> PghookCtxView<'_> {
        PghookCtxView { ctx: &mut self.pghook, table: &mut self.table }
    }
}

/// What each tenant's `get_records("select current_user")` returned.
type Outcome = Result<String, String>;

/// Run `select current_user` for two tenants sharing one engine: `trusted`
/// may reach the server of `uri`, `sandboxed` may reach no host at all.
async fn run(uri: &str) -> anyhow::Result<Vec<(&'static str, Outcome)>> {
    // The embedder's engine: instances come from a pool of preallocated slots.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(8).total_memories(8).total_tables(8).max_memory_size(64 << 20);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;

    // Its linker: WASI for the guest's standard library, then pghook.
    let mut linker: Linker<Plugin> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    pghook::add_to_linker(&mut linker)?;
    let component = Component::new(&engine, pghook::runtime::GUEST_COMPONENT)?;
    let pre = PghookPre::new(linker.instantiate_pre(&component)?)?;

    let root = std::env::temp_dir();
    let connections = MapConnections::new().with("warehouse", uri);
    let tenants = [
        ("trusted", Policy::new(&root).allow_host("*").with_connections(connections.clone())),
        ("sandboxed", Policy::new(&root).with_connections(connections)),
    ];
    let mut outcomes = Vec::new();
    for (name, policy) in tenants {
        let pghook = PghookCtx::new(Arc::new(policy));
        let mut store =
            Store::new(&engine, Plugin { table: ResourceTable::new(), wasi: WasiCtx::builder().build(), pghook });
        let guest = pre.instantiate_async(&mut store).await?;
        let records = guest
            .pghook_hook_hook()
            .call_get_records(&mut store, &HookArgs::conn_id("warehouse"), "select current_user", None)
            .await?;
        let outcome = match records {
            // The rows stay in the host: the guest hands back a handle to
            // them in the store's table, as the server sent them.
            Ok((_shape, rows)) => Ok(format!("{:?}", store.data_mut().table.delete(rows)?.rows.to_values()?)),
            Err(e) => Err(e.message),
        };
        outcomes.push((name, outcome));
    }
    Ok(outcomes)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let uri = std::env::args().nth(1).unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    for (tenant, outcome) in run(&uri).await? {
        match outcome {
            Ok(rows) => println!("{tenant}: {rows}"),
            Err(message) => println!("{tenant}: refused: {message}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn two_tenants_in_the_embedders_own_engine() {
        let pg = pghook_tests::Cluster::plain();
        let outcomes = super::run(&pg.uri("")).await.unwrap();
        assert_eq!(outcomes[0].0, "trusted");
        assert_eq!(outcomes[0].1.as_deref(), Ok(r#"[[Value::Text("postgres")]]"#));
        assert_eq!(outcomes[1].0, "sandboxed");
        let refused = outcomes[1].1.as_ref().unwrap_err();
        assert!(refused.contains("not allowed by this tenant's policy"), "{refused}");
    }
}
