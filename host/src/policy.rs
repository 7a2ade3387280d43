//! The sandbox around one tenant: which connections, files and hosts its
//! hooks may touch, and how much memory and time each call gets.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

use crate::files::FileRootSource;
use crate::secrets::{ConnectionSource, EnvConnections};

/// A tenant's limits. Build one with [`Policy::new`] and the `with_*` methods.
#[derive(Clone)]
pub struct Policy {
    /// The directory every file path is confined to.
    pub file_root: PathBuf,
    /// If set, opens the file root instead of `file_root`: an embedder's
    /// hook, asked when a call first touches a file.
    pub file_root_source: Option<Arc<dyn FileRootSource>>,
    /// Host patterns a session or AWS call may reach: `*` (any host name or
    /// address), `*.suffix`, or an exact host name or IP address. They never
    /// match a Unix socket directory.
    pub allowed_hosts: Vec<String>,
    /// Unix socket directories a session may reach, each matched exactly
    /// after lexical normalization (no patterns).
    pub allowed_socket_dirs: Vec<PathBuf>,
    /// Where connections come from.
    pub connections: Arc<dyn ConnectionSource>,
    /// If set, asked about every server a session is about to reach, after
    /// the allow-lists accepted it.
    pub connect_check: Option<Arc<dyn ConnectCheck>>,
    /// If set, the only connection ids the guest may read.
    pub allowed_conn_ids: Option<HashSet<String>>,
    /// The most linear memory one call's guest may grow to.
    pub memory_limit: usize,
    /// The longest one call may take, I/O included.
    pub call_timeout: Duration,
    /// The most bytes of rows one call may keep in the host (counted as
    /// decoded values), all its statements together.
    pub max_result_bytes: usize,
    /// How many idle sessions the tenant keeps for reuse; 0 (the default,
    /// as Airflow) opens a new session for every call.
    pub session_reuse: usize,
    /// Whether connections take libpq's defaults from the host's
    /// environment (`PGHOST`, `PGUSER`, `PGPASSWORD`...) for what they leave
    /// unset, as libpq does. Off by default, like ambient AWS.
    pub libpq_environment: bool,
    /// Places libpq's own files (password and service files, certificates,
    /// keys, CRLs) may also be read from, read-only, by absolute path: each
    /// a file, or a directory whose files all may be read (e.g.
    /// `~/.pgpass` and `~/.postgresql`). Files under the file root need no
    /// entry. None by default.
    pub config_paths: Vec<PathBuf>,
    /// Whether AWS calls may use the host's own AWS environment: its
    /// default credential chain (AWS_* variables, `~/.aws` files, a web
    /// identity token, container and instance metadata), a profile the
    /// connection names, its region. Off by default.
    pub ambient_aws: bool,
    /// The variables the host's AWS environment is read from instead of the
    /// process's (AWS_*, `HOME` for `~/.aws`), when ambient AWS is allowed:
    /// an embedder can give a tenant AWS settings of its own. `None`: the
    /// process's environment.
    pub aws_environment: Option<Arc<HashMap<String, String>>>,
    /// Where the default local server's socket is: what the guest's
    /// `default-socket` endpoint (a connection without a host) leads to.
    pub default_socket_dir: PathBuf,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("file_root", &self.file_root)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_socket_dirs", &self.allowed_socket_dirs)
            .field("allowed_conn_ids", &self.allowed_conn_ids)
            .field("memory_limit", &self.memory_limit)
            .field("call_timeout", &self.call_timeout)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("ambient_aws", &self.ambient_aws)
            .field("aws_environment", &self.aws_environment.as_ref().map(|vars| vars.keys().collect::<Vec<_>>()))
            .field("libpq_environment", &self.libpq_environment)
            .field("config_paths", &self.config_paths)
            .field("session_reuse", &self.session_reuse)
            .field("default_socket_dir", &self.default_socket_dir)
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// libpq's standard Unix socket directory: the default local server's.
    pub const STANDARD_SOCKET_DIR: &'static str = "/var/run/postgresql";

    /// A policy confined to `file_root`, reaching no host and no socket, reading
    /// connections from `AIRFLOW_CONN_*`, with 256 MiB of guest memory,
    /// 64 MiB of rows per statement and an hour per call.
    pub fn new(file_root: impl AsRef<Path>) -> Policy {
        Policy {
            file_root: file_root.as_ref().to_path_buf(),
            file_root_source: None,
            allowed_hosts: Vec::new(),
            allowed_socket_dirs: Vec::new(),
            connections: Arc::new(EnvConnections),
            connect_check: None,
            allowed_conn_ids: None,
            memory_limit: 256 << 20,
            call_timeout: Duration::from_secs(3600),
            max_result_bytes: 64 << 20,
            ambient_aws: false,
            aws_environment: None,
            libpq_environment: false,
            config_paths: Vec::new(),
            session_reuse: 0,
            default_socket_dir: PathBuf::from(Policy::STANDARD_SOCKET_DIR),
        }
    }

    /// Allow sessions and AWS calls to hosts matching `pattern`: `*`,
    /// `*.suffix`, or an exact host name or IP address (`::1` and `[::1]`
    /// alike). Socket directories need [`Policy::allow_socket_dir`].
    pub fn allow_host(mut self, pattern: impl Into<String>) -> Policy {
        self.allowed_hosts.push(pattern.into());
        self
    }

    /// Allow sessions over the Unix sockets in `dir`, and only that directory
    /// (compared after lexical normalization: `//`, `.` and `..` resolved).
    /// The default local server's directory needs this rule too.
    pub fn allow_socket_dir(mut self, dir: impl AsRef<Path>) -> Policy {
        self.allowed_socket_dirs.push(dir.as_ref().to_path_buf());
        self
    }

    /// Open each call's file root from `source` rather than `file_root`.
    pub fn with_file_root_source(mut self, source: impl FileRootSource + 'static) -> Policy {
        self.file_root_source = Some(Arc::new(source));
        self
    }

    /// Read connections from `source`.
    pub fn with_connections(mut self, source: impl ConnectionSource + 'static) -> Policy {
        self.connections = Arc::new(source);
        self
    }

    /// Ask `check` about every server a session is about to reach.
    pub fn with_connect_check(mut self, check: impl ConnectCheck + 'static) -> Policy {
        self.connect_check = Some(Arc::new(check));
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

    /// Cap the bytes of rows one call keeps in the host.
    pub fn with_max_result_bytes(mut self, bytes: usize) -> Policy {
        self.max_result_bytes = bytes;
        self
    }

    /// Keep up to `max_idle` idle sessions for reuse by this tenant's later
    /// calls with the same resolved connection (see [`crate::pool`]); 0 turns
    /// reuse off.
    pub fn with_session_reuse(mut self, max_idle: usize) -> Policy {
        self.session_reuse = max_idle;
        self
    }

    /// Let connections take libpq's defaults from the host's environment.
    pub fn with_libpq_environment(mut self, allowed: bool) -> Policy {
        self.libpq_environment = allowed;
        self
    }

    /// Let libpq's own files be read at `path` too (see
    /// [`Policy::config_paths`]): a file, or a directory and everything in
    /// it. A relative path is taken from the current directory; the path
    /// is compared lexically after normalization, and read through a
    /// handle on its directory that cannot leave it.
    pub fn allow_config_path(mut self, path: impl AsRef<Path>) -> Policy {
        let path = path.as_ref();
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        self.config_paths.push(normalize(&absolute));
        self
    }

    /// Let connections read the files libpq reads by default, where the
    /// host's environment puts them: `~/.pgpass`, `~/.pg_service.conf`,
    /// `~/.postgresql/`, `$PGSYSCONFDIR/pg_service.conf`, and the files
    /// the `PGPASSFILE`, `PGSERVICEFILE`, `PGSSLROOTCERT`, `PGSSLCERT`,
    /// `PGSSLKEY`, `PGSSLCRL` and `PGSSLCRLDIR` variables name: what the
    /// CLI allows. Never a whole home directory.
    pub fn allow_libpq_default_files(mut self) -> Policy {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(home) = var("HOME") {
            for name in [".pgpass", ".pg_service.conf", ".postgresql"] {
                self = self.allow_config_path(home.join(name));
            }
        }
        if let Some(dir) = var("PGSYSCONFDIR") {
            self = self.allow_config_path(dir.join("pg_service.conf"));
        }
        for name in ["PGPASSFILE", "PGSERVICEFILE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSSLCRLDIR"]
        {
            if let Some(path) = var(name).filter(|p| p.as_os_str() != "system") {
                self = self.allow_config_path(path);
            }
        }
        self
    }

    /// Allow or forbid the host's own AWS environment (see
    /// [`Policy::ambient_aws`]).
    pub fn with_ambient_aws(mut self, allowed: bool) -> Policy {
        self.ambient_aws = allowed;
        self
    }

    /// Read the host's AWS environment from `vars` instead of the process's
    /// environment variables (see [`Policy::aws_environment`]). It is used
    /// only where ambient AWS is allowed.
    pub fn with_aws_environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Policy {
        self.aws_environment = Some(Arc::new(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect()));
        self
    }

    /// Where the default local server's socket lives.
    pub fn with_default_socket_dir(mut self, dir: impl AsRef<Path>) -> Policy {
        self.default_socket_dir = dir.as_ref().to_path_buf();
        self
    }

    /// Whether `host` (a name, an address or a socket directory) may be reached.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allows(&Destination::parse(host))
    }

    /// Whether `destination` may be reached.
    pub fn allows(&self, destination: &Destination) -> bool {
        match destination {
            Destination::Socket(dir) => {
                self.allowed_socket_dirs.iter().any(|allowed| allowed.is_absolute() && normalize(allowed) == *dir)
            }
            Destination::Ip(ip) => self.allowed_hosts.iter().any(|pattern| {
                pattern == "*" || unbracket(pattern).is_some_and(|allowed| allowed.to_canonical() == ip.to_canonical())
            }),
            Destination::Name(name) => self.allowed_hosts.iter().any(|pattern| {
                let pattern = pattern.to_ascii_lowercase();
                match pattern.strip_prefix("*.") {
                    _ if pattern == "*" => true,
                    Some(suffix) => name.strip_suffix(suffix).is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                    None => *name == pattern,
                }
            }),
        }
    }

    /// `destination` back if the policy lets it be reached, else a message
    /// naming it.
    pub fn check(&self, destination: Destination) -> Result<Destination, String> {
        if self.allows(&destination) { Ok(destination) } else { Err(destination.refusal()) }
    }

    /// Whether the guest may read connection `conn_id`.
    pub fn conn_id_allowed(&self, conn_id: &str) -> bool {
        self.allowed_conn_ids.as_ref().is_none_or(|ids| ids.contains(conn_id))
    }
}

/// A server a session is about to reach: what a [`ConnectCheck`] is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Where it leads, as the allow-lists saw it.
    pub destination: Destination,
    /// The address connected to instead of resolving the name (`hostaddr`).
    pub address: Option<IpAddr>,
    /// The TCP port, or the number in the socket file's name.
    pub port: u16,
    /// The database user the session logs in as.
    pub user: String,
    /// The database.
    pub dbname: String,
}

/// What a [`ConnectCheck`] answers, in time.
pub type Checked<'a> = Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>>;

/// An embedder's say over outbound connections, like `wasmtime-wasi-http`'s
/// request hook: asked about each server of a session before any socket
/// opens, after the tenant's allow-lists accepted it (so it can only narrow
/// them), e.g. to consult an egress service or to audit. Its error reaches
/// the caller as `denied`. AWS calls are checked by the allow-list alone.
pub trait ConnectCheck: Send + Sync {
    /// `Ok` to let the session reach `outbound`.
    fn check<'a>(&'a self, outbound: &'a Outbound) -> Checked<'a>;
}

/// Where a connection endpoint or an AWS call leads, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Unix socket directory (a host starting with `/`), lexically normalized.
    Socket(PathBuf),
    /// An IP address, written bare or in brackets.
    Ip(IpAddr),
    /// A host name, lower-cased.
    Name(String),
}

impl Destination {
    /// Classify `host`: a socket directory, an IP address or a host name.
    pub fn parse(host: &str) -> Destination {
        if host.starts_with('/') {
            Destination::socket(Path::new(host))
        } else if let Some(ip) = unbracket(host) {
            Destination::Ip(ip)
        } else {
            Destination::Name(host.to_ascii_lowercase())
        }
    }

    /// The socket directory `dir`, lexically normalized.
    pub fn socket(dir: &Path) -> Destination {
        Destination::Socket(normalize(dir))
    }

    /// Why the policy refuses this destination, naming it.
    pub fn refusal(&self) -> String {
        match self {
            Destination::Socket(dir) => format!(
                "Unix socket directory {} is not allowed by this tenant's policy \
                 (socket directories need their own rule: allow_socket_dir, or --allow-socket)",
                dir.display()
            ),
            Destination::Ip(ip) => format!("host {ip} is not allowed by this tenant's policy"),
            Destination::Name(name) => format!("host {name} is not allowed by this tenant's policy"),
        }
    }
}

/// `host` as an IP address, bare (`::1`) or bracketed (`[::1]`).
fn unbracket(host: &str) -> Option<IpAddr> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.parse().ok()
}

/// An absolute path with `//`, `.` and `..` resolved lexically. The caller
/// connects to this very path, so a symbolic link under a `..` cannot lead
/// somewhere other than what was checked.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
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
        assert!(!p.host_allowed("evilexample.com"));
        assert!(p.host_allowed("[::1]"));
        assert!(Policy::new("/").allow_host("*").host_allowed("anything"));
        assert!(!Policy::new("/").host_allowed("localhost"));
    }

    #[test]
    fn addresses_compare_as_addresses() {
        for pattern in ["::1", "[::1]", "0:0:0:0:0:0:0:1"] {
            let p = Policy::new("/").allow_host(pattern);
            for host in ["::1", "[::1]", "0:0:0:0:0:0:0:1", "[0::1]"] {
                assert!(p.host_allowed(host), "{pattern} should allow {host}");
            }
            assert!(!p.host_allowed("::2"));
            assert!(!p.host_allowed("[::1"));
        }
        let v4 = Policy::new("/").allow_host("127.0.0.1");
        assert!(v4.host_allowed("::ffff:127.0.0.1"));
        assert!(!v4.host_allowed("127.1"), "inet_aton shorthand is a name here, not 127.0.0.1");
        // Suffix patterns are for names: they never match an address.
        assert!(!Policy::new("/").allow_host("*.0.0.1").host_allowed("127.0.0.1"));
        assert!(Policy::new("/").allow_host("*").host_allowed("[::1]"));
    }

    #[test]
    fn socket_dirs_need_their_own_rule() {
        let p = Policy::new("/").allow_host("*").allow_host("*.example.com").allow_host("/srv/evil.example.com");
        assert!(!p.host_allowed("/srv/evil.example.com"));
        assert!(!p.host_allowed("/tmp"));
        let p = Policy::new("/").allow_socket_dir("/srv/pg/").allow_socket_dir("relative/dir");
        for host in ["/srv/pg", "/srv/pg/", "//srv//pg", "/srv/./pg", "/srv/x/../pg", "/../srv/pg"] {
            assert_eq!(Destination::parse(host), Destination::Socket("/srv/pg".into()));
            assert!(p.host_allowed(host), "{host}");
        }
        for host in ["/srv", "/srv/pg/sub", "/srv/pg/..", "/srv/pgx", "/relative/dir"] {
            assert!(!p.host_allowed(host), "{host}");
        }
        let refusal = p.check(Destination::parse("/srv/evil")).unwrap_err();
        assert!(refusal.contains("Unix socket directory /srv/evil is not allowed"), "{refusal}");
        assert_eq!(p.check(Destination::parse("/srv//pg/.")).unwrap(), Destination::Socket("/srv/pg".into()));
    }
}
