//! From an Airflow connection to libpq parameters: which extras pass to
//! libpq and which the hook consumes ([`ConnArgs::build`]), and the host's
//! orders: every libpq rule and default applied ([`ConnArgs::connect_config`]),
//! the servers to try (`Params::endpoints`) and what to do about TLS
//! ([`tls_decision`]).

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::bindings::hook::RowShape;
use crate::bindings::postgres::{
    ChannelBinding, ClientCert, ConnectConfig, Encrypt, Endpoint, IpAddress, Keepalives, Server, TargetSession,
    TcpServer, TlsConfig, TlsVersion, Verify,
};
use crate::connection::Connection;
use crate::error::{Result, config};

mod client_encoding;
mod require_auth;

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
        ("passfile", No),
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
        ("sslcrl", No),
        ("sslcrldir", No),
        ("sslsni", Yes),
        ("requirepeer", No),
        ("ssl_min_protocol_version", Yes),
        ("ssl_max_protocol_version", Yes),
        ("min_protocol_version", No),
        ("max_protocol_version", No),
        ("krbsrvname", NoEffect),
        ("gsslib", NoEffect),
        ("gssdelegation", NoEffect),
        ("service", No),
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
    /// is unset, as in libpq, until [`ConnArgs::connect_config`].
    config: ConnectConfig,
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

/// What the host does about TLS for `mode`, as libpq does: `root_cert` is
/// sslrootcert (which makes `require` check the chain), `sockets_only` says
/// every endpoint is a Unix socket, where libpq never uses TLS. A mode that
/// checks the chain without a root certificate was refused before.
pub fn tls_decision(mode: SslMode, root_cert: Option<String>, sockets_only: bool) -> (Encrypt, Verify) {
    let encrypt = match mode {
        _ if sockets_only => return (Encrypt::Never, Verify::None),
        SslMode::Disable => return (Encrypt::Never, Verify::None),
        SslMode::Allow => Encrypt::TryPlainFirst,
        SslMode::Prefer => Encrypt::TryTlsFirst,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Encrypt::Always,
    };
    let verify = match (mode, root_cert) {
        (SslMode::VerifyFull, Some(root)) => Verify::ChainAndName(root),
        (SslMode::VerifyCa | SslMode::Require, Some(root)) => Verify::Chain(root),
        _ => Verify::None,
    };
    (encrypt, verify)
}

/// The environment variables libpq reads a default from, by keyword.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("require_auth", "PGREQUIREAUTH"),
    ("client_encoding", "PGCLIENTENCODING"),
];

/// Reads libpq parameters as libpq would: a parameter the connection leaves
/// unset (absent, null or empty) takes its environment variable, if any.
struct Params<'a> {
    given: &'a Map<String, Value>,
    environment: &'a [(String, String)],
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
        Self::build_in(conn, hook, &[])
    }

    /// [`ConnArgs::build`], libpq's `environment` variables (name, value)
    /// filling in what the connection leaves unset.
    pub fn build_in(conn: &Connection, hook: &HookOverrides, environment: &[(String, String)]) -> Result<ConnArgs> {
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
        // Invalid parameters fail here, as psycopg2.connect would.
        let config = Params { given: &params, environment }.connect_config()?;
        Ok(ConnArgs { params, shape, config })
    }

    /// The settings the host connects with, libpq's defaults applied: the
    /// user is the login, else the OS user (`os_user`, asked only then); the
    /// database is named after the user unless given.
    pub fn connect_config(&self, os_user: impl FnOnce() -> Option<String>) -> Result<ConnectConfig> {
        let mut config = self.config.clone();
        if config.user.is_empty() {
            config.user = os_user()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| crate::error::config("no user: set the connection's login"))?;
        }
        if config.dbname.is_empty() {
            config.dbname = config.user.clone();
        }
        Ok(config)
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
        let given = match self.given.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) => Some(if *b { "1" } else { "0" }.into()),
            Some(other) => Some(other.to_string()),
        };
        match given {
            Some(value) if !value.is_empty() => Some(value),
            // Unset or empty: libpq's environment variable, else as given.
            given => self.environment_default(key).or(given),
        }
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
            if !LIBPQ_KEYWORDS.iter().any(|(known, _)| known == key) {
                return Err(config(format!("invalid dsn: invalid connection option \"{key}\"")));
            }
        }
        self.refuse_unsupported()?;
        let endpoints = self.endpoints()?;
        let is_socket = |e: &Endpoint| matches!(e.server, Server::UnixSocket(_) | Server::DefaultSocket);
        let sockets_only = endpoints.iter().all(is_socket);
        let require_auth = self.get_set("require_auth").map(|text| require_auth::read(&text)).transpose()?.flatten();
        if require_auth.is_some() && endpoints.iter().any(is_socket) {
            // The host watches the login on the sockets it opens for TLS,
            // which tokio-postgres never does over a Unix socket.
            return Err(config("require_auth is not supported by pghook over a Unix socket: connect over TCP"));
        }
        Ok(ConnectConfig {
            // Unset until connect_config applies libpq's defaults.
            user: self.get_set("user").unwrap_or_default(),
            password: self.get("password"),
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
            target_session: match self.get_set("target_session_attrs").as_deref() {
                None | Some("any") => TargetSession::Any,
                Some("read-write") => TargetSession::ReadWrite,
                Some(v @ ("read-only" | "primary" | "standby" | "prefer-standby")) => {
                    return Err(config(format!(
                        "target_session_attrs \"{v}\" is not supported by pghook (use any or read-write)"
                    )));
                }
                Some(v) => {
                    return Err(config(format!("invalid target_session_attrs value: \"{v}\"")));
                }
            },
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

    /// The servers to try, as libpq pairs `host`, `hostaddr` and `port`: a
    /// hostaddr means TCP to that address whatever the host says (the host
    /// names the server for TLS, unless it is a socket path); a host starting
    /// with `/` is a socket directory; no host at all is the default local
    /// server's socket.
    fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let split = |v: Option<String>| -> Vec<String> {
            v.map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
        };
        let hosts = split(self.get_set("host"));
        let hostaddrs = split(self.get_set("hostaddr"))
            .into_iter()
            .map(|a| match a.as_str() {
                "" => Ok(None),
                _ => a
                    .parse::<IpAddr>()
                    .map(Some)
                    .map_err(|_| config(format!("could not parse network address \"{a}\""))),
            })
            .collect::<Result<Vec<Option<IpAddr>>>>()?;
        let ports = split(self.get_set("port"))
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
            return Ok(vec![Endpoint { server: Server::DefaultSocket, port }]);
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
                Endpoint { server, port }
            })
            .collect())
    }

    /// sslmode and its companions, as what the host is to do about TLS.
    /// `sockets_only`: every endpoint is a Unix socket.
    fn tls(&self, sockets_only: bool) -> Result<TlsConfig> {
        let channel_binding = match self.get_set("channel_binding").as_deref() {
            None | Some("prefer") => ChannelBinding::Prefer,
            Some("disable") => ChannelBinding::Disable,
            Some("require") => ChannelBinding::Require,
            Some(v) => return Err(config(format!("invalid channel_binding value: \"{v}\""))),
        };
        let requiressl = self.integer("requiressl")? == Some(1);
        let mode = match self.get_set("sslmode").as_deref() {
            None if requiressl => SslMode::Require,
            None | Some("prefer") => SslMode::Prefer,
            Some("disable") => SslMode::Disable,
            Some("allow") => SslMode::Allow,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(v) => return Err(config(format!("invalid sslmode value: \"{v}\""))),
        };
        let root_cert = self.get_set("sslrootcert");
        if root_cert.as_deref() == Some("system") {
            return Err(config("sslrootcert \"system\" is not supported by pghook: name a PEM file"));
        }
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(config(format!(
                "sslmode \"{}\" needs sslrootcert: pghook does not read ~/.postgresql/root.crt",
                if mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" }
            )));
        }
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
        let (cert, key) = match self.get_set("sslcertmode").as_deref() {
            Some("disable") => (None, None),
            None | Some("allow" | "require") => (self.get_set("sslcert"), self.get_set("sslkey")),
            Some(v) => return Err(config(format!("invalid sslcertmode value: \"{v}\""))),
        };
        let client_cert = match (cert, key) {
            (Some(cert), Some(key)) => Some(ClientCert { cert, key }),
            (None, None) => None,
            _ => return Err(config("sslcert and sslkey go together: give both or neither")),
        };
        if self.get_set("sslcertmode").as_deref() == Some("require") && client_cert.is_none() {
            return Err(config("sslcertmode \"require\" needs sslcert and sslkey"));
        }
        let (encrypt, verify) = tls_decision(mode, root_cert, sockets_only);
        Ok(TlsConfig {
            encrypt,
            verify,
            client_cert,
            sni: self.integer("sslsni")? != Some(0),
            min_version: version("ssl_min_protocol_version")?,
            max_version: version("ssl_max_protocol_version")?,
            channel_binding,
        })
    }
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
        let e = ConnArgs::build(&conn(json!({"sslcrl": "/x"})), &HookOverrides::default()).unwrap_err();
        assert!(e.message.contains("sslcrl"));
        let e = ConnArgs::build(&conn(json!({"keepalives_idle": "soon"})), &HookOverrides::default()).unwrap_err();
        assert_eq!(e.message, "invalid integer value \"soon\" for connection option \"keepalives_idle\"");
        let e = ConnArgs::build(&conn(json!({"sslmode": "verify-full"})), &HookOverrides::default()).unwrap_err();
        assert!(e.message.contains("needs sslrootcert"));
    }

    #[test]
    fn typed_config() {
        let c = conn(json!({
            "sslmode": "verify-ca", "sslrootcert": "ca.pem", "sslcert": "c.pem", "sslkey": "k.pem",
            "keepalives": "1", "keepalives_idle": "30", "connect_timeout": 1, "application_name": "app",
            "target_session_attrs": "read-write", "host": "a,b", "port": "5432,5433"
        }));
        let cfg = ConnArgs::build(&c, &HookOverrides::default()).unwrap().connect_config(no_os_user).unwrap();
        assert_eq!(cfg.endpoints.len(), 2);
        assert_eq!(cfg.endpoints[1], Endpoint { server: tcp("b", None), port: 5433 });
        assert_eq!((cfg.tls.encrypt, cfg.tls.verify), (Encrypt::Always, Verify::Chain("ca.pem".into())));
        assert_eq!(cfg.tls.client_cert, Some(ClientCert { cert: "c.pem".into(), key: "k.pem".into() }));
        assert_eq!(cfg.connect_timeout_seconds, Some(2));
        assert_eq!(cfg.keepalives.unwrap().idle_seconds, Some(30));
        assert_eq!(cfg.application_name.as_deref(), Some("app"));
        assert_eq!(cfg.target_session, TargetSession::ReadWrite);
        assert_eq!((cfg.user.as_str(), cfg.dbname.as_str()), ("u", "app"));
        assert_eq!(cfg.password.as_deref(), Some("secret"));
        let off = ConnArgs::build(&conn(json!({"keepalives": 0})), &HookOverrides::default()).unwrap();
        assert!(off.connect_config(no_os_user).unwrap().keepalives.is_none());
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
        let endpoints = args.connect_config(no_os_user).unwrap().endpoints;
        assert_eq!(endpoints, [Endpoint { server: Server::DefaultSocket, port: 5432 }]);
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
        let args = ConnArgs::build_in(&json_conn(json!({})), &HookOverrides::default(), &environment).unwrap();
        let cfg = args.connect_config(no_os_user).unwrap();
        assert_eq!(cfg.endpoints, vec![Endpoint { server: tcp("envhost", None), port: 6543 }]);
        assert_eq!(
            (cfg.user.as_str(), cfg.password.as_deref(), cfg.dbname.as_str()),
            ("envuser", Some("envsecret"), "envdb")
        );
        assert_eq!(cfg.application_name.as_deref(), Some("envapp"));
        assert_eq!(cfg.tls.encrypt, Encrypt::Never);
        // The connection's own settings win; an empty one counts as unset.
        let given = json_conn(json!({"host": "h", "login": "u", "schema": "", "port": 5432}));
        let cfg = ConnArgs::build_in(&given, &HookOverrides::default(), &environment)
            .unwrap()
            .connect_config(no_os_user)
            .unwrap();
        assert_eq!(cfg.endpoints, vec![Endpoint { server: tcp("h", None), port: 5432 }]);
        assert_eq!((cfg.user.as_str(), cfg.dbname.as_str()), ("u", "envdb"));
        // explain shows what psycopg2.connect gets, never the environment's.
        assert!(!args.explain().contains("env"), "{}", args.explain());
    }

    #[test]
    fn user_and_database_defaults() {
        let resolve = |fields: Value, os_user: Option<&str>| {
            let args = ConnArgs::build(&json_conn(fields), &HookOverrides::default()).unwrap();
            args.connect_config(|| os_user.map(str::to_string)).map(|c| (c.user, c.dbname))
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
            Ok(list.iter().map(|(server, port)| Endpoint { server: server.clone(), port: *port }).collect())
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
                .and_then(|args| args.connect_config(no_os_user))
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
        let root = || "ca.pem".to_string();
        let needs_root = "needs sslrootcert";
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
                extra.insert("sslrootcert".into(), json!(root()));
            }
            let conn = json_conn(json!({"login": "u", "extra": extra}));
            let args = ConnArgs::build(&conn, &HookOverrides::default()).map_err(|e| e.message)?;
            let tls = args.connect_config(no_os_user).unwrap().tls;
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
                // Over Unix sockets: never TLS, whatever the mode; a mode that
                // needs a root certificate still needs one.
                for host in [None, Some("/run/pg"), Some("/run/pg,,/tmp")] {
                    let got = decide(host, mode, with);
                    match &expected {
                        Some(_) => assert_eq!(got, Ok((Never, Verify::None)), "{case}, socket {host:?}"),
                        None => assert!(got.as_ref().unwrap_err().contains(needs_root), "{case}: {got:?}"),
                    }
                }
            }
        }
        // A hostaddr turns a socket path into TCP, and sslmode applies.
        let conn = json_conn(
            json!({"host": "/run/pg", "login": "u", "extra": {"hostaddr": "127.0.0.1", "sslmode": "require"}}),
        );
        let tls = ConnArgs::build(&conn, &HookOverrides::default()).unwrap().connect_config(no_os_user).unwrap().tls;
        assert_eq!((tls.encrypt, tls.verify), (Always, Verify::None));
    }

    #[test]
    fn require_auth_reaches_the_host_for_tcp_only() {
        use crate::bindings::postgres::{AuthMethods, AuthRequirement};
        let read = |fields: Value| {
            ConnArgs::build(&json_conn(fields), &HookOverrides::default())
                .and_then(|a| a.connect_config(no_os_user))
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
        let args =
            ConnArgs::build_in(&json_conn(json!({"host": "h", "login": "u"})), &HookOverrides::default(), &environment);
        assert_eq!(args.unwrap().connect_config(no_os_user).unwrap().require_auth, Some(scram));
        // Over a Unix socket the host cannot watch the login.
        for host in [json!("/run/pg"), json!("h,/run/pg"), Value::Null] {
            let e = read(json!({"host": host, "login": "u", "extra": {"require_auth": "none"}})).unwrap_err();
            assert_eq!(
                e.message, "require_auth is not supported by pghook over a Unix socket: connect over TCP",
                "{host}"
            );
        }
    }

    #[test]
    fn client_encoding_is_checked_as_the_server_checks_it() {
        let read = |extra: Value, environment: &[(String, String)]| {
            let conn = json_conn(json!({"host": "h", "login": "u", "extra": extra}));
            ConnArgs::build_in(&conn, &HookOverrides::default(), environment).map(|_| ())
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
            ConnArgs::build(&conn, &HookOverrides::default()).and_then(|a| a.connect_config(no_os_user)).map(|c| c.tls)
        };
        let defaults = tls(json!({})).unwrap();
        assert_eq!(
            defaults,
            TlsConfig {
                encrypt: Encrypt::TryTlsFirst,
                verify: Verify::None,
                client_cert: None,
                sni: true,
                min_version: None,
                max_version: None,
                channel_binding: ChannelBinding::Prefer,
            }
        );
        let set = tls(json!({
            "sslsni": 0, "ssl_min_protocol_version": "TLSv1.1", "ssl_max_protocol_version": "TLSv1.3",
            "channel_binding": "require", "sslcert": "c.pem", "sslkey": "k.pem"
        }))
        .unwrap();
        assert!(!set.sni);
        assert_eq!((set.min_version, set.max_version), (None, Some(TlsVersion::Tls13)));
        assert_eq!(set.channel_binding, ChannelBinding::Require);
        assert_eq!(set.client_cert, Some(ClientCert { cert: "c.pem".into(), key: "k.pem".into() }));
        let off = tls(json!({"sslcertmode": "disable", "sslcert": "c.pem", "sslkey": "k.pem"})).unwrap();
        assert_eq!(off.client_cert, None);
        for (extra, message) in [
            (json!({"sslcert": "c.pem"}), "sslcert and sslkey go together"),
            (json!({"sslcertmode": "require"}), "sslcertmode \"require\" needs sslcert and sslkey"),
            (json!({"sslrootcert": "system", "sslmode": "verify-full"}), "sslrootcert \"system\" is not supported"),
            (json!({"channel_binding": "always"}), "invalid channel_binding value"),
            (json!({"ssl_max_protocol_version": "TLSv1.1"}), "ssl_max_protocol_version \"TLSv1.1\" is not supported"),
        ] {
            let e = tls(extra.clone()).unwrap_err();
            assert!(e.message.starts_with(message), "{extra}: {}", e.message);
        }
    }
}
