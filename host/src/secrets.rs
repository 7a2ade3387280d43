//! Where Airflow connections come from: the host side of the `secrets`
//! import. Each source maps a connection id to its stored form, a URI or a
//! JSON object, exactly as Airflow stores it; the guest parses it.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::bindings::types::{Error as WitError, ErrorKind as WitKind};
use crate::error::{Error, ErrorKind, wit};

/// What a [`ConnectionSource`] lookup returns: in time, the stored form of
/// the connection, or `None` when the source lacks it.
pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, Error>> + Send + 'a>>;

/// A source of Airflow connections. Implement it to plug in a secrets store;
/// the lookup is async, so a vault or secrets-manager call blocks no thread.
pub trait ConnectionSource: Send + Sync {
    /// The stored form of `conn_id`, or `None` when this source lacks it.
    fn get<'a>(&'a self, conn_id: &'a str) -> Lookup<'a>;
}

/// Airflow's environment-variables backend: `AIRFLOW_CONN_<CONN_ID>`, the id
/// upper-cased.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvConnections;

impl EnvConnections {
    /// The variable that holds `conn_id`.
    pub fn variable(conn_id: &str) -> String {
        format!("AIRFLOW_CONN_{}", conn_id.to_uppercase())
    }
}

impl ConnectionSource for EnvConnections {
    fn get<'a>(&'a self, conn_id: &'a str) -> Lookup<'a> {
        let found = std::env::var(Self::variable(conn_id)).ok();
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// Connections held in memory, for embedders and tests.
#[derive(Clone, Default)]
pub struct MapConnections(HashMap<String, String>);

impl MapConnections {
    /// An empty set of connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a connection in its stored form.
    pub fn with(mut self, conn_id: impl Into<String>, stored: impl Into<String>) -> Self {
        self.0.insert(conn_id.into(), stored.into());
        self
    }
}

impl ConnectionSource for MapConnections {
    fn get<'a>(&'a self, conn_id: &'a str) -> Lookup<'a> {
        Box::pin(std::future::ready(Ok(self.0.get(conn_id).cloned())))
    }
}

/// A JSON file of connections, as Airflow's local-filesystem secrets backend
/// reads them: `{"conn_id": "postgres://..." | {"conn_type": ..., ...}}`.
pub fn file_connections(path: &Path) -> Result<MapConnections, Error> {
    let fail = |why: String| Error::new(ErrorKind::Config, format!("connections file {}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    let serde_json::Value::Object(entries) = parsed else {
        return Err(fail("expected a JSON object of conn_id -> connection".into()));
    };
    let mut connections = MapConnections::new();
    for (conn_id, value) in entries {
        let stored = match value {
            serde_json::Value::String(uri) => uri,
            object @ serde_json::Value::Object(_) => object.to_string(),
            other => {
                return Err(fail(format!("{conn_id}: expected a URI string or an object, got {other}")));
            }
        };
        connections = connections.with(conn_id, stored);
    }
    Ok(connections)
}

/// Several sources, asked in order; the first that has the id wins.
#[derive(Clone, Default)]
pub struct ChainConnections(Vec<Arc<dyn ConnectionSource>>);

impl ChainConnections {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask `source` after the sources already in the chain.
    pub fn then(mut self, source: impl ConnectionSource + 'static) -> Self {
        self.0.push(Arc::new(source));
        self
    }
}

impl ConnectionSource for ChainConnections {
    fn get<'a>(&'a self, conn_id: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            for source in &self.0 {
                if let Some(stored) = source.get(conn_id).await? {
                    return Ok(Some(stored));
                }
            }
            Ok(None)
        })
    }
}

impl crate::bindings::secrets::Host for crate::ctx::PghookCtxView<'_> {
    async fn get_connection(&mut self, conn_id: String) -> Result<Option<String>, WitError> {
        if !self.policy.conn_id_allowed(&conn_id) {
            return Err(wit(WitKind::Denied, format!("connection `{conn_id}` is not allowed for this tenant")));
        }
        self.policy.connections.get(&conn_id).await.map_err(|e| {
            wit(WitKind::Secrets, format!("the connection source failed to look up `{conn_id}`: {}", e.message()))
        })
    }
}
