//! Where Airflow connections come from: the host side of the `secrets`
//! import. Each source maps a connection id to its stored form, a URI or a
//! JSON object, exactly as Airflow stores it; the guest parses it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, ErrorKind};

/// A source of Airflow connections. Implement it to plug in a secrets store.
pub trait ConnectionSource: Send + Sync {
    /// The stored form of `conn_id`, or `None` when this source lacks it.
    fn get(&self, conn_id: &str) -> Result<Option<String>, Error>;
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
    fn get(&self, conn_id: &str) -> Result<Option<String>, Error> {
        Ok(std::env::var(Self::variable(conn_id)).ok())
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
    fn get(&self, conn_id: &str) -> Result<Option<String>, Error> {
        Ok(self.0.get(conn_id).cloned())
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
    fn get(&self, conn_id: &str) -> Result<Option<String>, Error> {
        for source in &self.0 {
            if let Some(stored) = source.get(conn_id)? {
                return Ok(Some(stored));
            }
        }
        Ok(None)
    }
}
