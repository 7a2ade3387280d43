//! From an Airflow connection to libpq parameters: which extras pass to
//! libpq and which the hook consumes ([`ConnArgs::build`]), and the host's
//! orders: every libpq rule and default applied ([`ConnArgs::connect_config`]),
//! the servers to try (`Params::endpoints`) and what to do about TLS
//! ([`encryption`], [`verification`], [`TlsFiles`]).

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::bindings::files::{ConfigFile, ConfigRead};
use crate::bindings::hook::RowShape;
use crate::bindings::postgres::{
    ChannelBinding, ConnectConfig, Encrypt, Endpoint, IpAddress, Keepalives, Roots, Server, TargetSession, TcpServer,
    TlsConfig, TlsVersion, Verify,
};
use crate::connection::Connection;
use crate::error::{Result, config};

mod client_encoding;
pub mod passfile;
mod require_auth;
pub mod service;
mod tls_files;

pub use tls_files::TlsFiles;

/// libpq's own files as the guest reaches them: through the host's `files`
/// import, under the tenant's file rules, or from a table in tests.
pub trait LibpqFiles {
    /// What is at `path`: the file, nothing, or a place out of the
    /// tenant's reach.
    fn read(&self, path: &str) -> Result<ConfigRead>;

    /// A file the connection names: out of reach is an error.
    fn read_named(&self, path: &str) -> Result<Option<ConfigFile>> {
        match self.read(path)? {
            ConfigRead::Found(file) => Ok(Some(file)),
            ConfigRead::Missing => Ok(None),
            ConfigRead::OutOfReach => Err(crate::error::denied(format!(
                "{path}: outside the file root and the places opened for libpq's files (the CLI's --allow-config-path)"
            ))),
        }
    }

    /// A file libpq reads by default: out of reach, it is not there for
    /// this tenant.
    fn read_default(&self, path: &str) -> Result<Option<ConfigFile>> {
        match self.read(path)? {
            ConfigRead::Found(file) => Ok(Some(file)),
            ConfigRead::Missing | ConfigRead::OutOfReach => Ok(None),
        }
    }

    /// The regular files directly in the directory `path` (name, file), in
    /// name order; `None` if there is no such directory.
    fn read_dir(&self, path: &str) -> Result<Option<Vec<(String, ConfigFile)>>>;
    /// Pass on a warning libpq would print, e.g. about a password file.
    fn warn(&self, message: &str);
}

/// No file at all: every file is missing.
pub struct NoFiles;

impl LibpqFiles for NoFiles {
    fn read(&self, _: &str) -> Result<ConfigRead> {
        Ok(ConfigRead::Missing)
    }

    fn read_dir(&self, _: &str) -> Result<Option<Vec<(String, ConfigFile)>>> {
        Ok(None)
    }

    fn warn(&self, _: &str) {}
}

/// Extras the hook consumes instead of passing to libpq: Airflow's
/// `ignored_extra_options`, plus `enable_log_db_messages`.
pub const CONSUMED_EXTRAS: &[&str] = &[
    "iam",
    "redshift",
    "redshift-serverless",
    "cursor",
    "cluster-identifier",
    "workgroup-name",
    "aws_conn_id",
    "sqlalchemy_scheme",
    "sqlalchemy_query",
    "enable_log_db_messages",
];

/// libpq keywords whose value is a secret: `explain` shows them as `***`.
/// pghook refuses all but `password`; they are masked all the same.
const SECRET_KEYWORDS: &[&str] =
    &["password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"];

/// How pghook treats a libpq keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    /// Honoured, with libpq's meaning.
    Yes,
    /// Accepted without effect: GSSAPI and Kerberos settings (pghook never
    /// uses GSSAPI) and the obsolete sslcompression.
    NoEffect,
    /// Refused with a clear error rather than silently ignored.
    No,
}

/// Every keyword libpq (PostgreSQL 18) knows; anything else is refused the
/// way libpq refuses it. Keywords whose support depends on the value
/// (gssencmode, sslnegotiation...) are checked where they are read.
const LIBPQ_KEYWORDS: &[(&str, Support)] = {
    use Support::{No, NoEffect, Yes};
    &[
        ("host", Yes),
        ("hostaddr", Yes),
        ("port", Yes),
        ("dbname", Yes),
        ("user", Yes),
        ("password", Yes),
        ("passfile", Yes),
        ("require_auth", Yes),
        ("channel_binding", Yes),
        ("connect_timeout", Yes),
        ("client_encoding", Yes),
        ("options", Yes),
        ("application_name", Yes),
        ("fallback_application_name", Yes),
        ("keepalives", Yes),
        ("keepalives_idle", Yes),
        ("keepalives_interval", Yes),
        ("keepalives_count", Yes),
        ("tcp_user_timeout", Yes),
        ("replication", No),
        ("gssencmode", Yes),
        ("sslmode", Yes),
        ("sslnegotiation", Yes),
        ("requiressl", Yes),
        ("sslcompression", NoEffect),
        ("sslcert", Yes),
        ("sslkey", Yes),
        ("sslpassword", No),
        ("sslcertmode", Yes),
        ("sslrootcert", Yes),
        ("sslcrl", Yes),
        ("sslcrldir", Yes),
        ("sslsni", Yes),
        ("requirepeer", No),
        ("ssl_min_protocol_version", Yes),
        ("ssl_max_protocol_version", Yes),
        ("min_protocol_version", No),
        ("max_protocol_version", No),
        ("krbsrvname", NoEffect),
        ("gsslib", NoEffect),
        ("gssdelegation", NoEffect),
        ("service", Yes),
        ("target_session_attrs", Yes),
        ("load_balance_hosts", Yes),
        ("sslkeylogfile", No),
        ("oauth_issuer", No),
        ("oauth_client_id", No),
        ("oauth_client_secret", No),
        ("oauth_scope", No),
        ("scram_client_key", No),
        ("scram_server_key", No),
    ]
};

/// The keyword arguments Airflow's `get_conn` hands to `psycopg2.connect`,
/// in the same order, with the cursor extra read off.
#[derive(Clone)]
pub struct ConnArgs {
    /// libpq keyword -> value, as Airflow builds it (values as the connection
    /// stores them; `null` means "not passed").
    pub params: Map<String, Value>,
    /// The row type the `cursor` extra asks for.
    pub shape: RowShape,
    /// `params` in the typed form the host connects with, but for libpq's
    /// user default, which needs the OS user: an empty `user` or `dbname`
    /// is unset, as in libpq, until [`ConnArgs::connect_config`]; TLS is
    /// left unverified and the password file unread until then, too.
    config: ConnectConfig,
    /// The certificate files TLS would use, read on connecting.
    tls_files: TlsFiles,
    /// The password file to consult for servers without a password, and
    /// whether the connection named it (else it is libpq's default).
    passfile: Option<(String, bool)>,
    /// Each endpoint's host and port as the password file is matched
    /// against them: libpq compares the text given, not the address.
    password_keys: Vec<(String, String)>,
}

/// The port libpq uses when none is given.
const DEFAULT_PORT: u16 = 5432;

/// libpq's sslmode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain only.
    Disable,
    /// Plain first, TLS if the server insists.
    Allow,
    /// TLS first, plain if the server has none (the default).
    Prefer,
    /// TLS; the chain is checked only if sslrootcert is given.
    Require,
    /// TLS, the chain checked.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// Whether the mode insists on checking the server's certificate.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Whether TLS is used for `mode`, as libpq does: `sockets_only` says every
/// endpoint is a Unix socket, where libpq never uses TLS.
pub fn encryption(mode: SslMode, sockets_only: bool) -> Encrypt {
    match mode {
        _ if sockets_only => Encrypt::Never,
        SslMode::Disable => Encrypt::Never,
        SslMode::Allow => Encrypt::TryPlainFirst,
        SslMode::Prefer => Encrypt::TryTlsFirst,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Encrypt::Always,
    }
}

/// What to check of the server's certificate for `mode`, given the roots
/// found (sslrootcert's, or the default file's): as in libpq, `require`
/// checks the chain once there are roots. A mode that checks the chain
/// without roots was refused before.
pub fn verification(mode: SslMode, roots: Option<Roots>) -> Verify {
    match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => Verify::ChainAndName(roots),
        (SslMode::VerifyCa | SslMode::Require, Some(roots)) => Verify::Chain(roots),
        _ => Verify::None,
    }
}

/// The environment variables libpq reads a default from, by keyword
/// (libpq's `PQconninfoOptions`).
const ENVIRONMENT: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("service", "PGSERVICE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("client_encoding", "PGCLIENTENCODING"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("require_auth", "PGREQUIREAUTH"),
    ("sslmode", "PGSSLMODE"),
    ("requiressl", "PGREQUIRESSL"),
    ("sslnegotiation", "PGSSLNEGOTIATION"),
    ("sslcompression", "PGSSLCOMPRESSION"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcertmode", "PGSSLCERTMODE"),
    ("sslsni", "PGSSLSNI"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("requirepeer", "PGREQUIREPEER"),
    ("gssencmode", "PGGSSENCMODE"),
    ("krbsrvname", "PGKRBSRVNAME"),
    ("gsslib", "PGGSSLIB"),
    ("gssdelegation", "PGGSSDELEGATION"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("load_balance_hosts", "PGLOADBALANCEHOSTS"),
];

/// The name of the per-user service file in the home directory.
const USER_SERVICE_FILE: &str = ".pg_service.conf";

/// The name of the per-user password file in the home directory.
const USER_PASSWORD_FILE: &str = ".pgpass";

/// Reads libpq parameters as libpq would: a parameter the connection leaves
/// unset (absent, null or empty) takes its service's setting, else its
/// environment variable, if any.
struct Params<'a> {
    given: &'a Map<String, Value>,
    /// The settings of the connection's service (`service`, `PGSERVICE`).
    service: Vec<(String, String)>,
    environment: &'a [(String, String)],
}

/// The value of environment variable `name` in `environment`, if set and
/// not empty.
fn variable<'a>(environment: &'a [(String, String)], name: &str) -> Option<&'a str> {
    environment.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
}

/// `name` in the home directory, if the environment tells where that is.
fn in_home(environment: &[(String, String)], name: &str) -> Option<String> {
    variable(environment, "HOME").map(|home| format!("{}/{name}", home.trim_end_matches('/')))
}

/// Whether libpq knows `key`.
fn is_keyword(key: &str) -> bool {
    LIBPQ_KEYWORDS.iter().any(|(known, _)| *known == key)
}

impl std::fmt::Debug for ConnArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.explain())
    }
}

/// A hook's own arguments that change the connection.
#[derive(Debug, Clone, Default)]
pub struct HookOverrides {
    /// The hook's `database`: overrides the connection's schema.
    pub database: Option<String>,
    /// The hook's `options`.
    pub options: Option<String>,
}

/// Map the `cursor` extra to a row shape, with Airflow's error for others.
pub fn row_shape(cursor: Option<&Value>) -> Result<RowShape> {
    let name = match cursor {
        None | Some(Value::Null) => return Ok(RowShape::Tuple),
        Some(Value::Bool(false)) => return Ok(RowShape::Tuple),
        Some(Value::String(s)) if s.is_empty() => return Ok(RowShape::Tuple),
        Some(Value::String(s)) => s.to_lowercase(),
        Some(other) => other.to_string(),
    };
    match name.as_str() {
        "dictcursor" => Ok(RowShape::Dict),
        "realdictcursor" => Ok(RowShape::RealDict),
        "namedtuplecursor" => Ok(RowShape::NamedTuple),
        _ => Err(config(format!(
            "Invalid cursor passed {name}. Valid options are: dictcursor, realdictcursor, namedtuplecursor"
        ))),
    }
}

impl ConnArgs {
    /// Build the arguments as `PostgresHook.get_conn` does: the plain fields
    /// first, then the hook's options, then every extra not consumed by the
    /// hook (an extra overrides a plain field of the same name).
    pub fn build(conn: &Connection, hook: &HookOverrides) -> Result<ConnArgs> {
        Self::build_in(conn, hook, &[], &NoFiles)
    }

    /// [`ConnArgs::build`], with what libpq reads besides the connection:
    /// its `environment` variables (name, value, and `HOME`) and its own
    /// `files` (the service file here; the others on connecting). A
    /// parameter the connection leaves unset takes its service's setting,
    /// else its environment variable.
    pub fn build_in(
        conn: &Connection,
        hook: &HookOverrides,
        environment: &[(String, String)],
        files: &dyn LibpqFiles,
    ) -> Result<ConnArgs> {
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let dbname = hook.database.clone().filter(|d| !d.is_empty()).or_else(|| conn.schema.clone());
        let mut params = Map::new();
        params.insert("host".into(), text(&conn.host));
        params.insert("user".into(), text(&conn.login));
        params.insert("password".into(), text(&conn.password));
        params.insert("dbname".into(), text(&dbname));
        params.insert("port".into(), conn.port.map_or(Value::Null, Value::from));
        if let Some(options) = hook.options.as_ref().filter(|o| !o.is_empty()) {
            params.insert("options".into(), Value::String(options.clone()));
        }
        for (key, value) in &conn.extra {
            if !CONSUMED_EXTRAS.contains(&key.as_str()) {
                params.insert(key.clone(), value.clone());
            }
        }
        let shape = row_shape(conn.extra.get("cursor"))?;
        let mut reader = Params { given: &params, service: Vec::new(), environment };
        reader.service = reader.service_settings(files)?;
        // Invalid parameters fail here, as psycopg2.connect would.
        let config = reader.connect_config()?;
        let tls_files = reader.tls_files()?;
        let passfile = match reader.get_set("passfile") {
            Some(path) => Some((path, true)),
            None => in_home(environment, USER_PASSWORD_FILE).map(|path| (path, false)),
        };
        let password_keys = reader.password_keys()?;
        Ok(ConnArgs { params, shape, config, tls_files, passfile, password_keys })
    }

    /// The settings the host connects with, libpq's defaults applied: the
    /// user is the login, else the OS user (`os_user`, asked only then); the
    /// database is named after the user unless given. As libpq does on
    /// connecting, it reads through `files` the certificates TLS needs
    /// (if TLS may be used) and, for servers without a password, the
    /// password file.
    pub fn connect_config(
        &self,
        os_user: impl FnOnce() -> Option<String>,
        files: &dyn LibpqFiles,
    ) -> Result<ConnectConfig> {
        let mut config = self.config.clone();
        if config.user.is_empty() {
            config.user = os_user()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| crate::error::config("no user: set the connection's login"))?;
        }
        if config.dbname.is_empty() {
            config.dbname = config.user.clone();
        }
        if config.tls.encrypt != Encrypt::Never {
            let resolved = self.tls_files.read(files)?;
            config.tls.verify = resolved.verify;
            config.tls.client_cert = resolved.client_cert;
            config.tls.crls = resolved.crls;
        }
        if config.password.as_deref().unwrap_or_default().is_empty() {
            self.passwords_from_file(&mut config, files);
        }
        Ok(config)
    }

    /// Give each endpoint the password file's password for it, if any, as
    /// libpq does for a connection without a password. A password file
    /// that cannot be read, or that others may read, is passed over with
    /// a warning, as libpq does.
    fn passwords_from_file(&self, config: &mut ConnectConfig, files: &dyn LibpqFiles) {
        let Some((path, named)) = &self.passfile else { return };
        let read = if *named { files.read_named(path) } else { files.read_default(path) };
        let file = match read {
            Ok(Some(file)) => file,
            Ok(None) => return,
            Err(e) => return files.warn(&format!("password file \"{path}\" not read: {}", e.message)),
        };
        if file.mode.is_some_and(|mode| mode & 0o077 != 0) {
            return files.warn(&format!(
                "password file \"{path}\" has group or world access; permissions should be u=rw (0600) or less"
            ));
        }
        let text = String::from_utf8_lossy(&file.contents);
        for (endpoint, (host, port)) in config.endpoints.iter_mut().zip(&self.password_keys) {
            let host = passfile::host_for(Some(host));
            // An empty password is none: libpq never sends one.
            endpoint.password =
                passfile::lookup(&text, host, port, &config.dbname, &config.user).filter(|p| !p.is_empty());
        }
    }

    /// The arguments as one JSON object, every secret ([`SECRET_KEYWORDS`])
    /// shown as `***`, whichever field or extra it came from.
    pub fn explain(&self) -> String {
        let mut shown = self.params.clone();
        for (key, value) in &mut shown {
            if SECRET_KEYWORDS.contains(&key.as_str()) && !value.is_null() {
                *value = Value::String("***".into());
            }
        }
        Value::Object(shown).to_string()
    }
}

impl Params<'_> {
    /// A parameter as libpq would see it: `None` when absent or null.
    fn get(&self, key: &str) -> Option<String> {
        let given = self.given_value(key);
        match given {
            Some(value) if !value.is_empty() => Some(value),
            // Unset or empty: the service's setting, else libpq's environment variable, else as given.
            given => {
                let service = self.service.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
                service.or_else(|| self.environment_default(key)).or(given)
            }
        }
    }

    /// A parameter as the connection gives it.
    fn given_value(&self, key: &str) -> Option<String> {
        match self.given.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) => Some(if *b { "1" } else { "0" }.into()),
            Some(other) => Some(other.to_string()),
        }
    }

    /// The settings of the connection's service, as libpq looks it up: the
    /// user's service file (`PGSERVICEFILE`, else `~/.pg_service.conf`),
    /// then the system's (`$PGSYSCONFDIR/pg_service.conf`).
    fn service_settings(&self, files: &dyn LibpqFiles) -> Result<Vec<(String, String)>> {
        let given = self.given_value("service").filter(|s| !s.is_empty());
        let Some(name) = given.or_else(|| self.environment_default("service").filter(|s| !s.is_empty())) else {
            return Ok(Vec::new());
        };
        let user_file = variable(self.environment, "PGSERVICEFILE")
            .map(str::to_string)
            .or_else(|| in_home(self.environment, USER_SERVICE_FILE));
        let system_file = variable(self.environment, "PGSYSCONFDIR")
            .map(|dir| format!("{}/pg_service.conf", dir.trim_end_matches('/')));
        for path in [user_file, system_file].into_iter().flatten() {
            let Some(file) = files.read_default(&path)? else { continue };
            let text = String::from_utf8_lossy(&file.contents);
            if let Some(settings) = service::section(&text, &path, &name, is_keyword)? {
                return Ok(settings);
            }
        }
        Err(config(format!("definition of service \"{name}\" not found")))
    }

    /// libpq's default for `key` from its environment variable.
    fn environment_default(&self, key: &str) -> Option<String> {
        let (_, variable) = ENVIRONMENT.iter().find(|(keyword, _)| *keyword == key)?;
        self.environment.iter().find(|(name, _)| name == variable).map(|(_, value)| value.clone())
    }

    /// A parameter that is absent, null or empty counts as unset, as in libpq.
    fn get_set(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty())
    }

    fn integer(&self, key: &str) -> Result<Option<i64>> {
        match self.get_set(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| config(format!("invalid integer value \"{v}\" for connection option \"{key}\""))),
        }
    }

    fn seconds(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.integer(key)?.map(|n| n.clamp(0, u32::MAX as i64) as u32))
    }

    /// The typed settings the host connects with.
    fn connect_config(&self) -> Result<ConnectConfig> {
        for key in self.given.keys() {
            if !is_keyword(key) {
                return Err(config(format!("invalid dsn: invalid connection option \"{key}\"")));
            }
        }
        self.refuse_unsupported()?;
        let endpoints = self.endpoints()?;
        let is_socket = |e: &Endpoint| matches!(e.server, Server::UnixSocket(_) | Server::DefaultSocket);
        let sockets_only = endpoints.iter().all(is_socket);
        let require_auth = self.get_set("require_auth").map(|text| require_auth::read(&text)).transpose()?.flatten();
        Ok(ConnectConfig {
            // Unset until connect_config applies libpq's defaults.
            user: self.get_set("user").unwrap_or_default(),
            // An empty password is none: libpq never sends one.
            password: self.get("password").filter(|p| !p.is_empty()),
            dbname: self.get_set("dbname").unwrap_or_default(),
            options: self.get_set("options"),
            application_name: self.get_set("application_name").or_else(|| self.get_set("fallback_application_name")),
            connect_timeout_seconds: match self.integer("connect_timeout")? {
                None | Some(..=0) => None,
                // libpq waits at least two seconds.
                Some(n) => Some(n.clamp(2, u32::MAX as i64) as u32),
            },
            keepalives: match self.integer("keepalives")? {
                Some(0) => None,
                _ => Some(Keepalives {
                    idle_seconds: self.seconds("keepalives_idle")?,
                    interval_seconds: self.seconds("keepalives_interval")?,
                    count: self.seconds("keepalives_count")?,
                }),
            },
            tcp_user_timeout_ms: self.seconds("tcp_user_timeout")?.filter(|ms| *ms > 0),
            target_session: target_session(self.get_set("target_session_attrs").as_deref())?,
            load_balance_hosts: match self.get_set("load_balance_hosts").as_deref() {
                None | Some("disable") => false,
                Some("random") => true,
                Some(v) => {
                    return Err(config(format!("invalid load_balance_hosts value: \"{v}\"")));
                }
            },
            tls: self.tls(sockets_only)?,
            endpoints,
            require_auth,
        })
    }

    /// Refuse the libpq keywords, and values, pghook cannot honour.
    fn refuse_unsupported(&self) -> Result<()> {
        for (key, _) in LIBPQ_KEYWORDS.iter().filter(|(_, support)| *support == Support::No) {
            if self.get_set(key).is_some() {
                return Err(config(format!("connection option \"{key}\" is not supported by pghook")));
            }
        }
        if let Some(name) = self.get_set("client_encoding") {
            client_encoding::check(&name)?;
        }
        match self.get_set("gssencmode").as_deref() {
            None | Some("disable" | "prefer") => {}
            Some("require") => {
                return Err(config("gssencmode \"require\" is not supported by pghook: it has no GSSAPI"));
            }
            Some(v) => return Err(config(format!("invalid gssencmode value: \"{v}\""))),
        }
        match self.get_set("sslnegotiation").as_deref() {
            None | Some("postgres") => {}
            Some("direct") => {
                return Err(config("sslnegotiation \"direct\" is not supported by pghook"));
            }
            Some(v) => return Err(config(format!("invalid sslnegotiation value: \"{v}\""))),
        }
        Ok(())
    }

    /// A comma-separated parameter (`host`, `hostaddr`, `port`) as its
    /// trimmed entries; none when unset.
    fn list(&self, key: &str) -> Vec<String> {
        self.get_set(key).map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
    }

    /// Each server's host and port as libpq matches them in the password
    /// file: the host as given, else the hostaddr (an empty one is the
    /// default host); the port as given, else 5432. In the order of
    /// `endpoints`, which has checked the lists pair up.
    fn password_keys(&self) -> Result<Vec<(String, String)>> {
        let (hosts, hostaddrs, ports) = (self.list("host"), self.list("hostaddr"), self.list("port"));
        let count = hosts.len().max(hostaddrs.len()).max(1);
        Ok((0..count)
            .map(|i| {
                let host = hosts.get(i).filter(|h| !h.is_empty()).or_else(|| hostaddrs.get(i));
                let port = match ports.len() {
                    0 => None,
                    1 => ports.first(),
                    _ => ports.get(i),
                };
                let port = port.filter(|p| !p.is_empty()).cloned().unwrap_or_else(|| DEFAULT_PORT.to_string());
                (host.cloned().unwrap_or_default(), port)
            })
            .collect())
    }

    /// The servers to try, as libpq pairs `host`, `hostaddr` and `port`: a
    /// hostaddr means TCP to that address whatever the host says (the host
    /// names the server for TLS, unless it is a socket path); a host starting
    /// with `/` is a socket directory; no host at all is the default local
    /// server's socket.
    fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let hosts = self.list("host");
        let hostaddrs = self
            .list("hostaddr")
            .into_iter()
            .map(|a| match a.as_str() {
                "" => Ok(None),
                _ => a
                    .parse::<IpAddr>()
                    .map(Some)
                    .map_err(|_| config(format!("could not parse network address \"{a}\""))),
            })
            .collect::<Result<Vec<Option<IpAddr>>>>()?;
        let ports = self
            .list("port")
            .into_iter()
            .map(|p| {
                if p.is_empty() {
                    return Ok(DEFAULT_PORT);
                }
                p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| config(format!("invalid port number: \"{p}\"")))
            })
            .collect::<Result<Vec<u16>>>()?;
        let count = hosts.len().max(hostaddrs.len());
        if !hostaddrs.is_empty() && !hosts.is_empty() && hostaddrs.len() != hosts.len() {
            return Err(config(format!(
                "could not match {} host names to {} hostaddr values",
                hosts.len(),
                hostaddrs.len()
            )));
        }
        if hostaddrs.iter().any(Option::is_some) && hostaddrs.iter().any(Option::is_none) {
            // libpq would resolve the hosts whose hostaddr is empty; pghook's
            // host connects to every server by address or to none that way.
            return Err(config("hostaddr must be given for every host or for none: pghook cannot mix them"));
        }
        if ports.len() > 1 && ports.len() != count.max(1) {
            return Err(config(format!("could not match {} port numbers to {} hosts", ports.len(), count.max(1))));
        }
        if count == 0 {
            if ports.len() > 1 {
                return Err(config(format!("could not match {} port numbers to 1 host", ports.len())));
            }
            let port = ports.first().copied().unwrap_or(DEFAULT_PORT);
            return Ok(vec![Endpoint { server: Server::DefaultSocket, port, password: None }]);
        }
        Ok((0..count)
            .map(|i| {
                let host = hosts.get(i).map(String::as_str).unwrap_or_default();
                let server = match hostaddrs.get(i).copied().flatten() {
                    Some(ip) => Server::Tcp(TcpServer {
                        // A socket path names no server: the address is then the only name TLS has.
                        host: if host.is_empty() || host.starts_with('/') { ip.to_string() } else { host.to_string() },
                        address: Some(ip_address(ip)),
                    }),
                    None if host.starts_with('/') => Server::UnixSocket(host.to_string()),
                    None if host.is_empty() => Server::DefaultSocket,
                    None => Server::Tcp(TcpServer { host: host.to_string(), address: None }),
                };
                let port = match ports.len() {
                    0 => DEFAULT_PORT,
                    1 => ports[0],
                    _ => ports[i],
                };
                Endpoint { server, port, password: None }
            })
            .collect())
    }

    /// sslmode, with `requiressl` and `sslrootcert=system` as libpq reads
    /// them.
    fn ssl_mode(&self) -> Result<SslMode> {
        let requiressl = self.integer("requiressl")? == Some(1);
        let system_roots = self.get_set("sslrootcert").as_deref() == Some("system");
        let mode = match self.get_set("sslmode").as_deref() {
            // sslrootcert=system makes verify-full the default.
            None if system_roots => SslMode::VerifyFull,
            None if requiressl => SslMode::Require,
            None | Some("prefer") => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some("allow") => SslMode::Allow,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(v) => return Err(config(format!("invalid sslmode value: \"{v}\""))),
        };
        if system_roots && mode != SslMode::VerifyFull {
            let name = self.get_set("sslmode").unwrap_or_else(|| "require".into());
            return Err(config(format!(
                "weak sslmode \"{name}\" may not be used with sslrootcert=system (use \"verify-full\")"
            )));
        }
        Ok(mode)
    }

    /// sslmode and its companions, as what the host is to do about TLS.
    /// `sockets_only`: every endpoint is a Unix socket. The certificates
    /// are read on connecting ([`TlsFiles`]); until then nothing is verified.
    fn tls(&self, sockets_only: bool) -> Result<TlsConfig> {
        let channel_binding = match self.get_set("channel_binding").as_deref() {
            None | Some("prefer") => ChannelBinding::Prefer,
            Some("disable") => ChannelBinding::Disable,
            Some("require") => ChannelBinding::Require,
            Some(v) => return Err(config(format!("invalid channel_binding value: \"{v}\""))),
        };
        let version = |key: &str| -> Result<Option<TlsVersion>> {
            match self.get_set(key).as_deref() {
                None => Ok(None),
                // rustls speaks nothing older than TLS 1.2: a lower minimum changes nothing.
                Some("TLSv1" | "TLSv1.1") if key == "ssl_min_protocol_version" => Ok(None),
                Some("TLSv1.2") => Ok(Some(TlsVersion::Tls12)),
                Some("TLSv1.3") => Ok(Some(TlsVersion::Tls13)),
                Some(v @ ("TLSv1" | "TLSv1.1")) => {
                    Err(config(format!("{key} \"{v}\" is not supported by pghook: rustls speaks TLS 1.2 and 1.3")))
                }
                Some(v) => Err(config(format!("invalid {key} value: \"{v}\""))),
            }
        };
        Ok(TlsConfig {
            encrypt: encryption(self.ssl_mode()?, sockets_only),
            verify: Verify::None,
            client_cert: None,
            crls: Vec::new(),
            sni: self.integer("sslsni")? != Some(0),
            min_version: version("ssl_min_protocol_version")?,
            max_version: version("ssl_max_protocol_version")?,
            channel_binding,
        })
    }

    /// The certificate files TLS would use, as libpq names them: each
    /// parameter, else its default under `~/.postgresql`.
    fn tls_files(&self) -> Result<TlsFiles> {
        let cert_mode = self.get_set("sslcertmode");
        if let Some(v) = cert_mode.as_deref().filter(|v| !matches!(*v, "disable" | "allow" | "require")) {
            return Err(config(format!("invalid sslcertmode value: \"{v}\"")));
        }
        Ok(TlsFiles {
            mode: self.ssl_mode()?,
            root_cert: self.get_set("sslrootcert"),
            crl: self.get_set("sslcrl"),
            crl_dir: self.get_set("sslcrldir"),
            cert: self.get_set("sslcert"),
            key: self.get_set("sslkey"),
            cert_disabled: cert_mode.as_deref() == Some("disable"),
            cert_required: cert_mode.as_deref() == Some("require"),
            home: in_home(self.environment, ".postgresql"),
        })
    }
}

/// libpq's target_session_attrs (unset: `any`), by its exact name as libpq
/// compares it; what each case asks of a server is the host's part (WIT
/// `target-session`).
fn target_session(value: Option<&str>) -> Result<TargetSession> {
    Ok(match value {
        None | Some("any") => TargetSession::Any,
        Some("read-write") => TargetSession::ReadWrite,
        Some("read-only") => TargetSession::ReadOnly,
        Some("primary") => TargetSession::Primary,
        Some("standby") => TargetSession::Standby,
        Some("prefer-standby") => TargetSession::PreferStandby,
        Some(v) => return Err(config(format!("invalid target_session_attrs value: \"{v}\""))),
    })
}

/// An address in the WIT's form.
fn ip_address(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::postgres::{ClientCert, PemFile};
    use serde_json::json;

    fn conn(extra: Value) -> Connection {
        let mut c = Connection::parse("c", "postgres://u:secret@db.local:5433/app").unwrap();
        c.extra = extra.as_object().unwrap().clone();
        c
    }

    #[test]
    fn explain_matches_airflow_key_for_key() {
        let c = conn(
            json!({"sslmode": "require", "iam": false, "cursor": "dictcursor", "keepalives_idle": 30, "aws_conn_id": "a"}),
        );
        let args =
            ConnArgs::build(&c, &HookOverrides { database: None, options: Some("-c search_path=s".into()) }).unwrap();
        assert_eq!(
            args.explain(),
            r#"{"host":"db.local","user":"u","password":"***","dbname":"app","port":5433,"options":"-c search_path=s","sslmode":"require","keepalives_idle":30}"#
        );
        assert_eq!(args.shape, RowShape::Dict);
    }

    #[test]
    fn extras_override_fields_in_place_and_database_overrides_schema() {
        let c = conn(json!({"host": "other", "dbname": "fromextra"}));
        let args = ConnArgs::build(&c, &HookOverrides { database: Some("hookdb".into()), options: None }).unwrap();
        assert_eq!(args.explain(), r#"{"host":"other","user":"u","password":"***","dbname":"fromextra","port":5433}"#);
        let args = ConnArgs::build(&conn(json!({})), &HookOverrides { database: Some("hookdb".into()), options: None })
            .unwrap();
        assert_eq!(args.params["dbname"], json!("hookdb"));
    }

    #[test]
    fn unknown_and_unsupported_parameters() {
        let e = ConnArgs::build(&conn(json!({"foo": "1"})), &HookOverrides::default()).unwrap_err();
        assert_eq!(e.message, "invalid dsn: invalid connection option \"foo\"");
        let e = ConnArgs::build(&conn(json!({"sslmode": "sometimes"})), &HookOverrides::default()).unwrap_err();
        assert_eq!(e.message, "invalid sslmode value: \"sometimes\"");
        let e = ConnArgs::build(&conn(json!({"cursor": "fancy"})), &HookOverrides::default()).unwrap_err();
        assert!(e.message.starts_with("Invalid cursor passed fancy."));
        let e = ConnArgs::build(&conn(json!({"sslpassword": "x"})), &HookOverrides::default()).unwrap_err();
        assert_eq!(e.message, "connection option \"sslpassword\" is not supported by pghook");
        let e = ConnArgs::build(&conn(json!({"keepalives_idle": "soon"})), &HookOverrides::default()).unwrap_err();
        assert_eq!(e.message, "invalid integer value \"soon\" for connection option \"keepalives_idle\"");
        // A mode that checks the chain without roots fails on connecting, as in libpq.
        let args = ConnArgs::build(&conn(json!({"sslmode": "verify-full"})), &HookOverrides::default()).unwrap();
        let e = args.connect_config(no_os_user, &NoFiles).unwrap_err();
        assert!(e.message.starts_with("could not get home directory to locate root certificate file"), "{}", e.message);
    }

    /// Files in a table, by path: contents and permission bits. Warnings
    /// are kept.
    #[derive(Default)]
    struct Table {
        files: Vec<(String, Vec<u8>, u32)>,
        warnings: std::cell::RefCell<Vec<String>>,
    }

    impl Table {
        fn with(mut self, path: &str, contents: &str, mode: u32) -> Table {
            self.files.push((path.into(), contents.as_bytes().to_vec(), mode));
            self
        }
    }

    impl LibpqFiles for Table {
        fn read(&self, path: &str) -> Result<ConfigRead> {
            if path.starts_with("/out/") {
                return Ok(ConfigRead::OutOfReach);
            }
            let found = self.files.iter().find(|(p, ..)| p == path);
            Ok(match found {
                Some((_, contents, mode)) => {
                    ConfigRead::Found(ConfigFile { contents: contents.clone(), mode: Some(*mode) })
                }
                None => ConfigRead::Missing,
            })
        }

        fn read_dir(&self, path: &str) -> Result<Option<Vec<(String, ConfigFile)>>> {
            let prefix = format!("{path}/");
            let mut found: Vec<_> = self
                .files
                .iter()
                .filter_map(|(p, contents, mode)| {
                    let name = p.strip_prefix(&prefix)?;
                    Some((name.to_string(), ConfigFile { contents: contents.clone(), mode: Some(*mode) }))
                })
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            Ok((!found.is_empty()).then_some(found))
        }

        fn warn(&self, message: &str) {
            self.warnings.borrow_mut().push(message.into());
        }
    }

    fn pem(path: &str, contents: &str) -> PemFile {
        PemFile { path: path.into(), contents: contents.as_bytes().to_vec() }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Resolve a JSON connection with `environment` and `files`.
    fn resolve_with(fields: Value, environment: &[(String, String)], files: &Table) -> Result<ConnectConfig> {
        ConnArgs::build_in(&json_conn(fields), &HookOverrides::default(), environment, files)?
            .connect_config(no_os_user, files)
    }

    #[test]
    fn password_file_as_libpq_reads_it() {
        let home = env(&[("HOME", "/home/me")]);
        let text = "db:5432:app:u:tcp\nlocalhost:5432:app:u:socket\nb:5433:*:*:second\n";
        let files = Table::default().with("/home/me/.pgpass", text, 0o600).with("/etc/pgpass", "*:*:*:*:named", 0o600);
        let passwords = |fields: Value, environment: &[(String, String)], files: &Table| {
            let cfg = resolve_with(fields, environment, files).unwrap();
            (cfg.password, cfg.endpoints.into_iter().map(|e| e.password).collect::<Vec<_>>())
        };
        let some = |p: &str| Some(p.to_string());
        // Per server, matched on host, port, database and user; a socket is localhost.
        let fields = json!({"host": "db", "login": "u", "schema": "app"});
        assert_eq!(passwords(fields, &home, &files), (None, vec![some("tcp")]));
        let fields = json!({"login": "u", "schema": "app"});
        assert_eq!(passwords(fields, &home, &files), (None, vec![some("socket")]));
        let fields = json!({"host": "db,b", "port": 0, "login": "u", "schema": "app", "extra": {"port": "5432,5433"}});
        assert_eq!(passwords(fields, &home, &files), (None, vec![some("tcp"), some("second")]));
        // A password given wins; no file is read.
        let fields = json!({"host": "db", "login": "u", "schema": "app", "password": "given"});
        assert_eq!(passwords(fields, &home, &files), (some("given"), vec![None]));
        // passfile, then PGPASSFILE, name another file.
        let named = json!({"host": "db", "login": "u", "schema": "app", "extra": {"passfile": "/etc/pgpass"}});
        assert_eq!(passwords(named, &home, &files), (None, vec![some("named")]));
        let mut with_variable = home.clone();
        with_variable.extend(env(&[("PGPASSFILE", "/etc/pgpass")]));
        let fields = json!({"host": "db", "login": "u", "schema": "app"});
        assert_eq!(passwords(fields.clone(), &with_variable, &files), (None, vec![some("named")]));
        // No home: no default file.
        assert_eq!(passwords(fields.clone(), &[], &files), (None, vec![None]));
        // Matched on the host and port as given: a socket path with a hostaddr, a port's own text.
        let files_by_text = Table::default().with(
            "/home/me/.pgpass",
            "/run/pg:5432:app:u:by-path\n0\\:0\\:0\\:0\\:0\\:0\\:0\\:1:055432:app:u:by-text\n",
            0o600,
        );
        let fields = json!({"login": "u", "schema": "app", "extra": {"host": "/run/pg", "hostaddr": "127.0.0.1"}});
        assert_eq!(passwords(fields, &home, &files_by_text), (None, vec![some("by-path")]));
        let fields = json!({"login": "u", "schema": "app", "extra": {"hostaddr": "0:0:0:0:0:0:0:1", "port": "055432"}});
        assert_eq!(passwords(fields, &home, &files_by_text), (None, vec![some("by-text")]));
        // An empty password, given or found, is none: libpq never sends one.
        let empty = Table::default().with("/home/me/.pgpass", "*:*:*:*:\n", 0o600);
        let fields = json!({"host": "db", "login": "u", "schema": "app", "password": ""});
        assert_eq!(passwords(fields, &home, &empty), (None, vec![None]));
        // A default file out of reach is passed over without a word; a named one with a warning.
        let quiet = Table::default();
        let fields = json!({"host": "db", "login": "u", "schema": "app"});
        assert_eq!(passwords(fields.clone(), &env(&[("HOME", "/out/me")]), &quiet), (None, vec![None]));
        assert!(quiet.warnings.borrow().is_empty());
        let named = json!({"host": "db", "login": "u", "schema": "app", "extra": {"passfile": "/out/pgpass"}});
        assert_eq!(passwords(named, &home, &quiet), (None, vec![None]));
        assert!(quiet.warnings.borrow()[0].contains("outside the file root"), "{:?}", quiet.warnings);
        // A file others may read is passed over, with libpq's warning.
        let open = Table::default().with("/home/me/.pgpass", text, 0o644);
        assert_eq!(passwords(fields, &home, &open), (None, vec![None]));
        assert!(open.warnings.borrow()[0].contains("has group or world access"), "{:?}", open.warnings);
    }

    #[test]
    fn service_file_settings_sit_between_the_connection_and_the_environment() {
        let service = "[prod]\nhost=svc-host\nport=6000\ndbname=svc-db\nsslmode=disable\n";
        let system = "[prod]\nhost=system-host\n[other]\nhost=other-host\n";
        let files = Table::default().with("/home/me/.pg_service.conf", service, 0o644).with(
            "/etc/pg/pg_service.conf",
            system,
            0o644,
        );
        let environment =
            env(&[("HOME", "/home/me"), ("PGSYSCONFDIR", "/etc/pg"), ("PGPORT", "7000"), ("PGUSER", "envuser")]);
        let cfg = resolve_with(json!({"extra": {"service": "prod", "dbname": "given"}}), &environment, &files).unwrap();
        assert_eq!(cfg.endpoints[0].server, tcp("svc-host", None));
        assert_eq!(cfg.endpoints[0].port, 6000);
        assert_eq!((cfg.dbname.as_str(), cfg.user.as_str()), ("given", "envuser"));
        assert_eq!(cfg.tls.encrypt, Encrypt::Never);
        // The system file is read when the user's has no such service; PGSERVICE names it.
        let mut with_variable = environment.clone();
        with_variable.extend(env(&[("PGSERVICE", "other")]));
        let cfg = resolve_with(json!({"login": "u"}), &with_variable, &files).unwrap();
        assert_eq!(cfg.endpoints[0].server, tcp("other-host", None));
        // PGSERVICEFILE replaces the user's file.
        let mut elsewhere = environment.clone();
        elsewhere.extend(env(&[("PGSERVICEFILE", "/etc/pg/pg_service.conf")]));
        let cfg = resolve_with(json!({"login": "u", "extra": {"service": "prod"}}), &elsewhere, &files).unwrap();
        assert_eq!(cfg.endpoints[0].server, tcp("system-host", None));
        let e = resolve_with(json!({"login": "u", "extra": {"service": "nope"}}), &environment, &files).unwrap_err();
        assert_eq!(e.message, "definition of service \"nope\" not found");
    }

    #[test]
    fn certificates_default_to_the_home_directory() {
        let home = env(&[("HOME", "/home/me")]);
        let files = Table::default()
            .with("/home/me/.postgresql/root.crt", "ROOT", 0o644)
            .with("/home/me/.postgresql/root.crl", "CRL", 0o644)
            .with("/home/me/.postgresql/postgresql.crt", "CERT", 0o644)
            .with("/home/me/.postgresql/postgresql.key", "KEY", 0o600)
            .with("/crls/a.r0", "A", 0o644)
            .with("/crls/b.r0", "B", 0o644);
        let tls = |extra: Value, environment: &[(String, String)], files: &Table| {
            resolve_with(json!({"host": "h", "login": "u", "extra": extra}), environment, files).map(|c| c.tls)
        };
        let root = Roots::File(pem("/home/me/.postgresql/root.crt", "ROOT"));
        let got = tls(json!({"sslmode": "verify-full", "sslcrldir": "/crls"}), &home, &files).unwrap();
        assert_eq!(got.verify, Verify::ChainAndName(root.clone()));
        // root.crl is the default only without sslcrldir, as in libpq.
        assert_eq!(got.crls, vec![pem("/crls/a.r0", "A"), pem("/crls/b.r0", "B")]);
        let alone = tls(json!({"sslmode": "verify-full"}), &home, &files).unwrap();
        assert_eq!(alone.crls, vec![pem("/home/me/.postgresql/root.crl", "CRL")]);
        // A CRL directory without a list fails closed, as libpq's OpenSSL check does.
        let e = tls(json!({"sslmode": "verify-full", "sslcrldir": "/nothing"}), &home, &files).unwrap_err();
        assert!(e.message.starts_with("sslcrldir \"/nothing\" holds no certificate revocation list"), "{}", e.message);
        let cert = ClientCert {
            cert: pem("/home/me/.postgresql/postgresql.crt", "CERT"),
            key: pem("/home/me/.postgresql/postgresql.key", "KEY"),
        };
        assert_eq!(got.client_cert, Some(cert));
        // require checks the chain once a root file exists; prefer does not.
        assert_eq!(tls(json!({"sslmode": "require"}), &home, &files).unwrap().verify, Verify::Chain(root));
        assert_eq!(tls(json!({}), &home, &files).unwrap().verify, Verify::None);
        // Without the default files: require goes unverified, verify-ca fails as libpq does.
        let empty = Table::default();
        assert_eq!(tls(json!({"sslmode": "require"}), &home, &empty).unwrap().verify, Verify::None);
        let e = tls(json!({"sslmode": "verify-ca"}), &home, &empty).unwrap_err();
        assert!(e.message.starts_with("root certificate file \"/home/me/.postgresql/root.crt\" does not exist"));
        // Plain sessions read no file.
        assert_eq!(tls(json!({"sslmode": "disable"}), &home, &files).unwrap().client_cert, None);
        // Defaults out of the tenant's reach are not there; a named file out of reach is an error.
        let out = env(&[("HOME", "/out/me")]);
        assert_eq!(tls(json!({"sslmode": "require"}), &out, &files).unwrap().verify, Verify::None);
        let e = tls(json!({"sslmode": "require", "sslrootcert": "/out/ca.pem"}), &home, &files).unwrap_err();
        assert_eq!(e.kind, crate::bindings::types::ErrorKind::Denied);
        assert!(e.message.starts_with("/out/ca.pem: outside the file root"), "{}", e.message);
    }

    #[test]
    fn named_certificates_and_their_rules() {
        let files = Table::default()
            .with("ca.pem", "CA", 0o644)
            .with("c.pem", "C", 0o644)
            .with("k.pem", "K", 0o600)
            .with("open.key", "K", 0o644);
        let tls =
            |extra: Value| resolve_with(json!({"host": "h", "login": "u", "extra": extra}), &[], &files).map(|c| c.tls);
        let cert = Some(ClientCert { cert: pem("c.pem", "C"), key: pem("k.pem", "K") });
        let got = tls(json!({"sslmode": "verify-ca", "sslrootcert": "ca.pem", "sslcert": "c.pem", "sslkey": "k.pem"}))
            .unwrap();
        assert_eq!((got.verify, got.client_cert), (Verify::Chain(Roots::File(pem("ca.pem", "CA"))), cert));
        // sslrootcert=system: the platform's roots, and verify-full unless said otherwise.
        let system = tls(json!({"sslrootcert": "system"})).unwrap();
        assert_eq!((system.encrypt, system.verify), (Encrypt::Always, Verify::ChainAndName(Roots::System)));
        // A missing named certificate means none; a missing named root only matters when verifying.
        assert_eq!(tls(json!({"sslcert": "missing.pem"})).unwrap().client_cert, None);
        assert_eq!(tls(json!({"sslmode": "require", "sslrootcert": "missing.pem"})).unwrap().verify, Verify::None);
        assert_eq!(tls(json!({"sslcertmode": "disable", "sslcert": "c.pem"})).unwrap().client_cert, None);
        for (extra, message) in [
            (
                json!({"sslcert": "c.pem"}),
                "certificate present, but not private key file \"~/.postgresql/postgresql.key\"",
            ),
            (
                json!({"sslcert": "c.pem", "sslkey": "none.key"}),
                "certificate present, but not private key file \"none.key\"",
            ),
            (
                json!({"sslcert": "c.pem", "sslkey": "open.key"}),
                "private key file \"open.key\" has group or world access",
            ),
            (json!({"sslcertmode": "require"}), "sslcertmode \"require\" needs a client certificate"),
            (
                json!({"sslmode": "verify-ca", "sslrootcert": "missing.pem"}),
                "root certificate file \"missing.pem\" does not exist",
            ),
            (
                json!({"sslrootcert": "system", "sslmode": "verify-ca"}),
                "weak sslmode \"verify-ca\" may not be used with sslrootcert=system",
            ),
        ] {
            let e = tls(extra.clone()).unwrap_err();
            assert!(e.message.starts_with(message), "{extra}: {}", e.message);
        }
    }

    #[test]
    fn typed_config() {
        let c = conn(json!({
            "sslmode": "verify-ca", "sslrootcert": "ca.pem",
            "keepalives": "1", "keepalives_idle": "30", "connect_timeout": 1, "application_name": "app",
            "target_session_attrs": "read-write", "host": "a,b", "port": "5432,5433"
        }));
        let files = Table::default().with("ca.pem", "CA", 0o644);
        let cfg = ConnArgs::build(&c, &HookOverrides::default()).unwrap().connect_config(no_os_user, &files).unwrap();
        assert_eq!(cfg.endpoints.len(), 2);
        assert_eq!(cfg.endpoints[1], Endpoint { server: tcp("b", None), port: 5433, password: None });
        assert_eq!(
            (cfg.tls.encrypt, cfg.tls.verify),
            (Encrypt::Always, Verify::Chain(Roots::File(pem("ca.pem", "CA"))))
        );
        assert_eq!(cfg.connect_timeout_seconds, Some(2));
        assert_eq!(cfg.keepalives.unwrap().idle_seconds, Some(30));
        assert_eq!(cfg.application_name.as_deref(), Some("app"));
        assert_eq!(cfg.target_session, TargetSession::ReadWrite);
        assert_eq!((cfg.user.as_str(), cfg.dbname.as_str()), ("u", "app"));
        assert_eq!(cfg.password.as_deref(), Some("secret"));
        let off = ConnArgs::build(&conn(json!({"keepalives": 0})), &HookOverrides::default()).unwrap();
        assert!(off.connect_config(no_os_user, &NoFiles).unwrap().keepalives.is_none());
    }

    /// An OS user that must not be asked for.
    fn no_os_user() -> Option<String> {
        panic!("the OS user was asked for although the login is set")
    }

    /// A connection in JSON form with these fields.
    fn json_conn(fields: Value) -> Connection {
        Connection::parse("c", &fields.to_string()).unwrap()
    }

    fn tcp(host: &str, address: Option<IpAddr>) -> Server {
        Server::Tcp(TcpServer { host: host.into(), address: address.map(ip_address) })
    }

    #[test]
    fn no_host_means_default_socket() {
        let c = Connection::parse("c", r#"{"login": "u"}"#).unwrap();
        let args = ConnArgs::build(&c, &HookOverrides::default()).unwrap();
        assert_eq!(args.explain(), r#"{"host":null,"user":"u","password":null,"dbname":null,"port":null}"#);
        let endpoints = args.connect_config(no_os_user, &NoFiles).unwrap().endpoints;
        assert_eq!(endpoints, [Endpoint { server: Server::DefaultSocket, port: 5432, password: None }]);
    }

    #[test]
    fn libpq_environment_fills_what_the_connection_leaves_unset() {
        let environment: Vec<(String, String)> = [
            ("PGHOST", "envhost"),
            ("PGPORT", "6543"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envsecret"),
            ("PGDATABASE", "envdb"),
            ("PGAPPNAME", "envapp"),
            ("PGSSLMODE", "disable"),
            ("PGNOTLIBPQ", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // Nothing given: everything from the environment.
        let args =
            ConnArgs::build_in(&json_conn(json!({})), &HookOverrides::default(), &environment, &NoFiles).unwrap();
        let cfg = args.connect_config(no_os_user, &NoFiles).unwrap();
        assert_eq!(cfg.endpoints, vec![Endpoint { server: tcp("envhost", None), port: 6543, password: None }]);
        assert_eq!(
            (cfg.user.as_str(), cfg.password.as_deref(), cfg.dbname.as_str()),
            ("envuser", Some("envsecret"), "envdb")
        );
        assert_eq!(cfg.application_name.as_deref(), Some("envapp"));
        assert_eq!(cfg.tls.encrypt, Encrypt::Never);
        // The connection's own settings win; an empty one counts as unset.
        let given = json_conn(json!({"host": "h", "login": "u", "schema": "", "port": 5432}));
        let cfg = ConnArgs::build_in(&given, &HookOverrides::default(), &environment, &NoFiles)
            .unwrap()
            .connect_config(no_os_user, &NoFiles)
            .unwrap();
        assert_eq!(cfg.endpoints, vec![Endpoint { server: tcp("h", None), port: 5432, password: None }]);
        assert_eq!((cfg.user.as_str(), cfg.dbname.as_str()), ("u", "envdb"));
        // explain shows what psycopg2.connect gets, never the environment's.
        assert!(!args.explain().contains("env"), "{}", args.explain());
    }

    #[test]
    fn target_session_attrs_by_name() {
        let target = |extra: Value, environment: &[(&str, &str)]| {
            let environment: Vec<(String, String)> =
                environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let conn = json_conn(json!({"host": "a,b", "login": "u", "extra": extra}));
            ConnArgs::build_in(&conn, &HookOverrides::default(), &environment, &NoFiles)
                .and_then(|args| args.connect_config(no_os_user, &NoFiles))
                .map(|c| c.target_session)
                .map_err(|e| e.message)
        };
        for (name, case) in [
            ("any", TargetSession::Any),
            ("read-write", TargetSession::ReadWrite),
            ("read-only", TargetSession::ReadOnly),
            ("primary", TargetSession::Primary),
            ("standby", TargetSession::Standby),
            ("prefer-standby", TargetSession::PreferStandby),
        ] {
            assert_eq!(target(json!({"target_session_attrs": name}), &[]), Ok(case), "{name}");
            // libpq's PGTARGETSESSIONATTRS, when the connection leaves it unset or empty.
            let environment = [("PGTARGETSESSIONATTRS", name)];
            assert_eq!(target(json!({}), &environment), Ok(case), "PGTARGETSESSIONATTRS={name}");
            assert_eq!(target(json!({"target_session_attrs": ""}), &environment), Ok(case), "empty, {name}");
        }
        // Unset: any. The connection's own value wins over the environment's.
        assert_eq!(target(json!({}), &[]), Ok(TargetSession::Any));
        let environment = [("PGTARGETSESSIONATTRS", "standby")];
        assert_eq!(target(json!({"target_session_attrs": "primary"}), &environment), Ok(TargetSession::Primary));
        // Names as libpq compares them: exactly.
        for bad in ["Standby", "read_write", "readonly", " any"] {
            let message = format!("invalid target_session_attrs value: \"{bad}\"");
            assert_eq!(target(json!({"target_session_attrs": bad}), &[]), Err(message.clone()), "{bad}");
            assert_eq!(target(json!({}), &[("PGTARGETSESSIONATTRS", bad)]), Err(message), "environment {bad}");
        }
    }

    #[test]
    fn user_and_database_defaults() {
        let resolve = |fields: Value, os_user: Option<&str>| {
            let args = ConnArgs::build(&json_conn(fields), &HookOverrides::default()).unwrap();
            args.connect_config(|| os_user.map(str::to_string), &NoFiles).map(|c| (c.user, c.dbname))
        };
        let pair = |user: &str, dbname: &str| Ok((user.to_string(), dbname.to_string()));
        // The login, else the OS user; the schema, else the user's name.
        assert_eq!(resolve(json!({"host": "h", "login": "u", "schema": "db"}), None), pair("u", "db"));
        assert_eq!(resolve(json!({"host": "h", "login": "u"}), None), pair("u", "u"));
        assert_eq!(resolve(json!({"host": "h", "schema": "db"}), Some("os")), pair("os", "db"));
        assert_eq!(resolve(json!({"host": "h"}), Some("os")), pair("os", "os"));
        // Empty counts as unset, as in libpq.
        assert_eq!(resolve(json!({"host": "h", "login": "", "schema": ""}), Some("os")), pair("os", "os"));
        assert_eq!(resolve(json!({"host": "h", "extra": {"user": "x", "dbname": "y"}}), None), pair("x", "y"));
        // No login and no OS user: a clear error, but only on connecting.
        for os_user in [None, Some("")] {
            let e = resolve(json!({"host": "h"}), os_user).unwrap_err();
            assert_eq!(e.message, "no user: set the connection's login");
        }
        let args = ConnArgs::build(&json_conn(json!({"host": "h"})), &HookOverrides::default()).unwrap();
        assert_eq!(args.explain(), r#"{"host":"h","user":null,"password":null,"dbname":null,"port":null}"#);
    }

    #[test]
    fn endpoint_resolution() {
        let v4 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let ok = |list: &[(Server, u16)]| -> std::result::Result<Vec<Endpoint>, String> {
            Ok(list
                .iter()
                .map(|(server, port)| Endpoint { server: server.clone(), port: *port, password: None })
                .collect())
        };
        let cases: Vec<(Value, std::result::Result<Vec<Endpoint>, String>)> = vec![
            // No host: the default local server's socket, on the given port.
            (json!({}), ok(&[(Server::DefaultSocket, 5432)])),
            (json!({"port": 6000}), ok(&[(Server::DefaultSocket, 6000)])),
            (json!({"port": "1,2"}), Err("could not match 2 port numbers to 1 host".into())),
            // Names over TCP, ports paired by position or shared.
            (json!({"host": "a,b", "port": "5432,5433"}), ok(&[(tcp("a", None), 5432), (tcp("b", None), 5433)])),
            (json!({"host": "a,b", "port": 5433}), ok(&[(tcp("a", None), 5433), (tcp("b", None), 5433)])),
            (json!({"host": "a, b", "port": "7,"}), ok(&[(tcp("a", None), 7), (tcp("b", None), 5432)])),
            (json!({"host": "a,b,c", "port": "1,2"}), Err("could not match 2 port numbers to 3 hosts".into())),
            (json!({"host": "127.0.0.1"}), ok(&[(tcp("127.0.0.1", None), 5432)])),
            // A path is a socket directory; an empty entry is the default socket.
            (json!({"host": "/run/pg", "port": 5433}), ok(&[(Server::UnixSocket("/run/pg".into()), 5433)])),
            (
                json!({"host": "a,,/s"}),
                ok(&[(tcp("a", None), 5432), (Server::DefaultSocket, 5432), (Server::UnixSocket("/s".into()), 5432)]),
            ),
            // hostaddr: TCP to the address; the host names the server, unless it is a path.
            (json!({"host": "db.local", "hostaddr": "::1"}), ok(&[(tcp("db.local", v4("::1")), 5432)])),
            (json!({"host": "/run/pg", "hostaddr": "127.0.0.1"}), ok(&[(tcp("127.0.0.1", v4("127.0.0.1")), 5432)])),
            (
                json!({"hostaddr": "10.0.0.1,10.0.0.2", "port": "1,2"}),
                ok(&[(tcp("10.0.0.1", v4("10.0.0.1")), 1), (tcp("10.0.0.2", v4("10.0.0.2")), 2)]),
            ),
            (
                json!({"host": "a,", "hostaddr": "10.0.0.1,10.0.0.2"}),
                ok(&[(tcp("a", v4("10.0.0.1")), 5432), (tcp("10.0.0.2", v4("10.0.0.2")), 5432)]),
            ),
            (
                json!({"host": "a,b", "hostaddr": "10.0.0.1"}),
                Err("could not match 2 host names to 1 hostaddr values".into()),
            ),
            (
                json!({"host": "a,b", "hostaddr": "10.0.0.1,"}),
                Err("hostaddr must be given for every host or for none".into()),
            ),
            (json!({"host": "a", "hostaddr": "db.local"}), Err("could not parse network address \"db.local\"".into())),
            (json!({"host": "a", "hostaddr": "[::1]"}), Err("could not parse network address \"[::1]\"".into())),
        ];
        for (params, expected) in cases {
            let conn = json_conn(json!({"login": "u", "extra": params}));
            let got = ConnArgs::build(&conn, &HookOverrides::default())
                .and_then(|args| args.connect_config(no_os_user, &NoFiles))
                .map(|c| c.endpoints)
                .map_err(|e| e.message);
            match (&got, &expected) {
                (Err(got), Err(wanted)) => assert!(got.starts_with(wanted.as_str()), "{params}: {got}"),
                _ => assert_eq!(got, expected, "{params}"),
            }
        }
    }

    /// libpq's sslmode table: each sslmode, with and without sslrootcert,
    /// over TCP and over Unix sockets (named or default, where TLS is never
    /// used), becomes what the host is to do.
    #[test]
    fn sslmode_table() {
        use Encrypt::{Always, Never, TryPlainFirst, TryTlsFirst};
        let root = || Roots::File(pem("ca.pem", "CA"));
        let files = Table::default().with("ca.pem", "CA", 0o644);
        let needs_root = "could not get home directory to locate root certificate file";
        type Decision = (Encrypt, Verify);
        // sslmode, then over TCP without sslrootcert (None: refused) and with it.
        let tcp_table: [(Option<&str>, Option<Decision>, Decision); 8] = [
            (Some("disable"), Some((Never, Verify::None)), (Never, Verify::None)),
            (Some("allow"), Some((TryPlainFirst, Verify::None)), (TryPlainFirst, Verify::None)),
            (Some("prefer"), Some((TryTlsFirst, Verify::None)), (TryTlsFirst, Verify::None)),
            // prefer is the default.
            (None, Some((TryTlsFirst, Verify::None)), (TryTlsFirst, Verify::None)),
            // require checks the chain once a root certificate is given, as libpq does.
            (Some("require"), Some((Always, Verify::None)), (Always, Verify::Chain(root()))),
            (Some("verify-ca"), None, (Always, Verify::Chain(root()))),
            (Some("verify-full"), None, (Always, Verify::ChainAndName(root()))),
            // The obsolete requiressl=1 means require.
            (Some("requiressl"), Some((Always, Verify::None)), (Always, Verify::Chain(root()))),
        ];
        let decide = |host: Option<&str>, mode: Option<&str>, with_root: bool| {
            let mut extra = Map::new();
            if let Some(host) = host {
                extra.insert("host".into(), json!(host));
            }
            match mode {
                Some("requiressl") => extra.insert("requiressl".into(), json!("1")),
                Some(mode) => extra.insert("sslmode".into(), json!(mode)),
                None => None,
            };
            if with_root {
                extra.insert("sslrootcert".into(), json!("ca.pem"));
            }
            let conn = json_conn(json!({"login": "u", "extra": extra}));
            let args = ConnArgs::build(&conn, &HookOverrides::default()).map_err(|e| e.message)?;
            let tls = args.connect_config(no_os_user, &files).map_err(|e| e.message)?.tls;
            Ok::<_, String>((tls.encrypt, tls.verify))
        };
        for (mode, without_root, with_root) in tcp_table {
            for (with, expected) in [(false, without_root), (true, Some(with_root))] {
                let case = format!("sslmode {mode:?}, sslrootcert {with}");
                // Over TCP: by name, by address, and a list that is not all sockets.
                for host in [Some("db.local"), Some("10.0.0.1"), Some("/run/pg,db.local")] {
                    let got = decide(host, mode, with);
                    match &expected {
                        Some(decision) => assert_eq!(got.as_ref(), Ok(decision), "{case}, host {host:?}"),
                        None => assert!(got.as_ref().unwrap_err().contains(needs_root), "{case}: {got:?}"),
                    }
                }
                // Over Unix sockets: never TLS, whatever the mode, and so no
                // certificate is needed, as in libpq.
                for host in [None, Some("/run/pg"), Some("/run/pg,,/tmp")] {
                    let got = decide(host, mode, with);
                    assert_eq!(got, Ok((Never, Verify::None)), "{case}, socket {host:?}");
                }
            }
        }
        // A hostaddr turns a socket path into TCP, and sslmode applies.
        let conn = json_conn(
            json!({"host": "/run/pg", "login": "u", "extra": {"hostaddr": "127.0.0.1", "sslmode": "require"}}),
        );
        let tls = ConnArgs::build(&conn, &HookOverrides::default())
            .unwrap()
            .connect_config(no_os_user, &NoFiles)
            .unwrap()
            .tls;
        assert_eq!((tls.encrypt, tls.verify), (Always, Verify::None));
    }

    #[test]
    fn require_auth_reaches_the_host_for_tcp_only() {
        use crate::bindings::postgres::{AuthMethods, AuthRequirement};
        let read = |fields: Value| {
            ConnArgs::build(&json_conn(fields), &HookOverrides::default())
                .and_then(|a| a.connect_config(no_os_user, &NoFiles))
                .map(|c| c.require_auth)
        };
        let scram =
            AuthRequirement { allowed: AuthMethods::SCRAM_SHA_256, unasked: false, text: "scram-sha-256".into() };
        let tcp = |require_auth: &str| json!({"host": "h", "login": "u", "extra": {"require_auth": require_auth}});
        assert_eq!(read(tcp("scram-sha-256")).unwrap(), Some(scram.clone()));
        assert_eq!(read(tcp("")).unwrap(), None);
        assert_eq!(read(json!({"host": "h", "login": "u"})).unwrap(), None);
        let e = read(tcp("md5,!password")).unwrap_err();
        assert_eq!(e.message, "negative require_auth method \"!password\" cannot be mixed with non-negative methods");
        // libpq's environment variable, where the connection leaves it unset.
        let environment = [("PGREQUIREAUTH".to_string(), "scram-sha-256".to_string())];
        let args = ConnArgs::build_in(
            &json_conn(json!({"host": "h", "login": "u"})),
            &HookOverrides::default(),
            &environment,
            &NoFiles,
        );
        assert_eq!(args.unwrap().connect_config(no_os_user, &NoFiles).unwrap().require_auth, Some(scram));
        // Over a Unix socket too: the host opens the socket and watches the login.
        for host in [json!("/run/pg"), json!("h,/run/pg"), Value::Null] {
            let cfg = read(json!({"host": host, "login": "u", "extra": {"require_auth": "none"}})).unwrap();
            assert!(cfg.is_some(), "{host}");
        }
    }

    #[test]
    fn client_encoding_is_checked_as_the_server_checks_it() {
        let read = |extra: Value, environment: &[(String, String)]| {
            let conn = json_conn(json!({"host": "h", "login": "u", "extra": extra}));
            ConnArgs::build_in(&conn, &HookOverrides::default(), environment, &NoFiles).map(|_| ())
        };
        assert_eq!(read(json!({"client_encoding": "iso-8859-1"}), &[]), Ok(()));
        let e = read(json!({"client_encoding": "LATIN0"}), &[]).unwrap_err();
        assert_eq!(e.message, "invalid value for parameter \"client_encoding\": \"LATIN0\"");
        // libpq's environment variable, where the connection leaves it unset.
        let environment = [("PGCLIENTENCODING".to_string(), "LATIN0".to_string())];
        assert_eq!(read(json!({}), &environment).unwrap_err().message, e.message);
        assert_eq!(read(json!({"client_encoding": "WIN1252"}), &environment), Ok(()));
    }

    #[test]
    fn tls_companions() {
        let tls = |extra: Value| {
            let conn = json_conn(json!({"host": "h", "login": "u", "extra": extra}));
            ConnArgs::build(&conn, &HookOverrides::default())
                .and_then(|a| a.connect_config(no_os_user, &NoFiles))
                .map(|c| c.tls)
        };
        let defaults = tls(json!({})).unwrap();
        assert_eq!(
            defaults,
            TlsConfig {
                encrypt: Encrypt::TryTlsFirst,
                verify: Verify::None,
                client_cert: None,
                crls: Vec::new(),
                sni: true,
                min_version: None,
                max_version: None,
                channel_binding: ChannelBinding::Prefer,
            }
        );
        let set = tls(json!({
            "sslsni": 0, "ssl_min_protocol_version": "TLSv1.1", "ssl_max_protocol_version": "TLSv1.3",
            "channel_binding": "require"
        }))
        .unwrap();
        assert!(!set.sni);
        assert_eq!((set.min_version, set.max_version), (None, Some(TlsVersion::Tls13)));
        assert_eq!(set.channel_binding, ChannelBinding::Require);
        for (extra, message) in [
            (json!({"sslcertmode": "sometimes"}), "invalid sslcertmode value"),
            (json!({"channel_binding": "always"}), "invalid channel_binding value"),
            (json!({"ssl_max_protocol_version": "TLSv1.1"}), "ssl_max_protocol_version \"TLSv1.1\" is not supported"),
        ] {
            let e = tls(extra.clone()).unwrap_err();
            assert!(e.message.starts_with(message), "{extra}: {}", e.message);
        }
    }
}
