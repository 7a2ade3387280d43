//! The sandbox around one tenant: which connections, files and hosts its
//! hooks may touch, and how much memory and time each call gets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::secrets::{ConnectionSource, EnvConnections};

/// A tenant's limits. Build one with [`Policy::new`] and the `with_*` methods.
#[derive(Clone)]
pub struct Policy {
    /// The directory every file path is confined to.
    pub file_root: PathBuf,
    /// Host patterns a session or AWS call may reach: `*` (any), `*.suffix`,
    /// or an exact host name, address or Unix socket directory.
    pub allowed_hosts: Vec<String>,
    /// Where connections come from.
    pub connections: Arc<dyn ConnectionSource>,
    /// If set, the only connection ids the guest may read.
    pub allowed_conn_ids: Option<HashSet<String>>,
    /// The most linear memory one call's guest may grow to.
    pub memory_limit: usize,
    /// The longest one call may take, I/O included.
    pub call_timeout: Duration,
    /// The most bytes of rows one statement may hand to the guest.
    pub max_result_bytes: usize,
    /// Whether AWS calls may fall back to the host's own AWS environment
    /// (AWS_* variables) when the AWS connection gives no credentials or region.
    pub ambient_aws: bool,
    /// Where libpq's default local server listens when a connection has no host.
    pub default_socket_dir: PathBuf,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("file_root", &self.file_root)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_conn_ids", &self.allowed_conn_ids)
            .field("memory_limit", &self.memory_limit)
            .field("call_timeout", &self.call_timeout)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("ambient_aws", &self.ambient_aws)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// A policy confined to `file_root`, reaching no host, reading
    /// connections from `AIRFLOW_CONN_*`, with 256 MiB of guest memory,
    /// 64 MiB of rows per statement and an hour per call.
    pub fn new(file_root: impl AsRef<Path>) -> Policy {
        Policy {
            file_root: file_root.as_ref().to_path_buf(),
            allowed_hosts: Vec::new(),
            connections: Arc::new(EnvConnections),
            allowed_conn_ids: None,
            memory_limit: 256 << 20,
            call_timeout: Duration::from_secs(3600),
            max_result_bytes: 64 << 20,
            ambient_aws: false,
            default_socket_dir: PathBuf::from("/var/run/postgresql"),
        }
    }

    /// Allow sessions and AWS calls to hosts matching `pattern`.
    pub fn allow_host(mut self, pattern: impl Into<String>) -> Policy {
        self.allowed_hosts.push(pattern.into());
        self
    }

    /// Read connections from `source`.
    pub fn with_connections(mut self, source: impl ConnectionSource + 'static) -> Policy {
        self.connections = Arc::new(source);
        self
    }

    /// Let the guest read only these connection ids.
    pub fn allow_conn_ids<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Policy {
        self.allowed_conn_ids = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Cap each call's guest memory.
    pub fn with_memory_limit(mut self, bytes: usize) -> Policy {
        self.memory_limit = bytes;
        self
    }

    /// Cap each call's duration.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Policy {
        self.call_timeout = timeout;
        self
    }

    /// Cap the rows one statement hands to the guest.
    pub fn with_max_result_bytes(mut self, bytes: usize) -> Policy {
        self.max_result_bytes = bytes;
        self
    }

    /// Allow or forbid the host's own AWS environment as a fallback.
    pub fn with_ambient_aws(mut self, allowed: bool) -> Policy {
        self.ambient_aws = allowed;
        self
    }

    /// Where the default local server's socket lives.
    pub fn with_default_socket_dir(mut self, dir: impl AsRef<Path>) -> Policy {
        self.default_socket_dir = dir.as_ref().to_path_buf();
        self
    }

    /// Whether `host` (a name, an address or a socket directory) may be reached.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.allowed_hosts.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                _ if pattern == "*" => true,
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == pattern,
            }
        })
    }

    /// Whether the guest may read connection `conn_id`.
    pub fn conn_id_allowed(&self, conn_id: &str) -> bool {
        self.allowed_conn_ids.as_ref().is_none_or(|ids| ids.contains(conn_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p = Policy::new("/tmp").allow_host("db.internal").allow_host("*.example.com").allow_host("::1");
        assert!(p.host_allowed("DB.internal"));
        assert!(p.host_allowed("a.b.example.com"));
        assert!(!p.host_allowed("example.com"));
        assert!(!p.host_allowed("evil.com"));
        assert!(p.host_allowed("[::1]"));
        assert!(Policy::new("/").allow_host("*").host_allowed("anything"));
        assert!(!Policy::new("/").host_allowed("localhost"));
    }
}
