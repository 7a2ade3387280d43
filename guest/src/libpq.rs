//! From an Airflow connection to libpq parameters: which extras pass to
//! libpq and which the hook consumes ([`ConnArgs::build`]), and their typed
//! form for the host ([`ConnArgs::connect_config`]).

use serde_json::{Map, Value};

use crate::bindings::hook::RowShape;
use crate::bindings::postgres::{
    ChannelBinding, ConnectConfig, Endpoint, Keepalives, SslMode, TargetSession, TlsConfig, TlsVersion,
};
use crate::connection::Connection;
use crate::error::{Result, config};

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
/// (client_encoding, gssencmode, sslnegotiation...) are checked where they
/// are read.
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
        ("require_auth", No),
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
    /// `params` in the typed form the host connects with.
    config: ConnectConfig,
}

/// Reads libpq parameters as libpq would.
struct Params<'a>(&'a Map<String, Value>);

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
        let config = Params(&params).connect_config()?;
        Ok(ConnArgs { params, shape, config })
    }

    /// The typed settings the host connects with.
    pub fn connect_config(&self) -> &ConnectConfig {
        &self.config
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
        match self.0.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
            other => Some(other.to_string()),
        }
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
        for key in self.0.keys() {
            if !LIBPQ_KEYWORDS.iter().any(|(known, _)| known == key) {
                return Err(config(format!("invalid dsn: invalid connection option \"{key}\"")));
            }
        }
        self.refuse_unsupported()?;
        Ok(ConnectConfig {
            endpoints: self.endpoints()?,
            user: self.get_set("user"),
            password: self.get("password"),
            dbname: self.get_set("dbname"),
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
            channel_binding: match self.get_set("channel_binding").as_deref() {
                None | Some("prefer") => ChannelBinding::Prefer,
                Some("disable") => ChannelBinding::Disable,
                Some("require") => ChannelBinding::Require,
                Some(v) => return Err(config(format!("invalid channel_binding value: \"{v}\""))),
            },
            tls: self.tls()?,
        })
    }

    /// Refuse the libpq keywords, and values, pghook cannot honour.
    fn refuse_unsupported(&self) -> Result<()> {
        for (key, _) in LIBPQ_KEYWORDS.iter().filter(|(_, support)| *support == Support::No) {
            if self.get_set(key).is_some() {
                return Err(config(format!("connection option \"{key}\" is not supported by pghook")));
            }
        }
        if let Some(v) = self.get_set("client_encoding") {
            let normalized = v.to_ascii_lowercase().replace(['-', '_'], "");
            if !matches!(normalized.as_str(), "utf8" | "unicode") {
                return Err(config(format!(
                    "client_encoding \"{v}\" is not supported by pghook: it always speaks UTF8"
                )));
            }
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

    fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let split = |v: Option<String>| -> Vec<String> {
            v.map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
        };
        let hosts = split(self.get_set("host"));
        let hostaddrs = split(self.get_set("hostaddr"));
        let ports = split(self.get_set("port"))
            .into_iter()
            .map(|p| {
                if p.is_empty() {
                    return Ok(5432);
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
        if ports.len() > 1 && ports.len() != count.max(1) {
            return Err(config(format!("could not match {} port numbers to {} hosts", ports.len(), count.max(1))));
        }
        if count == 0 {
            // No host: libpq's default local server, whose socket the host knows.
            if ports.len() > 1 {
                return Err(config(format!("could not match {} port numbers to 1 host", ports.len())));
            }
            let port = ports.first().copied().unwrap_or(5432);
            return Ok(vec![Endpoint { host: String::new(), hostaddr: None, port }]);
        }
        Ok((0..count)
            .map(|i| {
                let hostaddr = hostaddrs.get(i).cloned().filter(|a| !a.is_empty());
                Endpoint {
                    host: hosts
                        .get(i)
                        .cloned()
                        .filter(|h| !h.is_empty())
                        .or_else(|| hostaddr.clone())
                        .unwrap_or_default(),
                    hostaddr,
                    port: match ports.len() {
                        0 => 5432,
                        1 => ports[0],
                        _ => ports[i],
                    },
                }
            })
            .collect())
    }

    fn tls(&self) -> Result<TlsConfig> {
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
        let (client_cert, client_key) = match self.get_set("sslcertmode").as_deref() {
            Some("disable") => (None, None),
            None | Some("allow" | "require") => (self.get_set("sslcert"), self.get_set("sslkey")),
            Some(v) => return Err(config(format!("invalid sslcertmode value: \"{v}\""))),
        };
        if client_cert.is_some() != client_key.is_some() {
            return Err(config("sslcert and sslkey go together: give both or neither"));
        }
        if self.get_set("sslcertmode").as_deref() == Some("require") && client_cert.is_none() {
            return Err(config("sslcertmode \"require\" needs sslcert and sslkey"));
        }
        Ok(TlsConfig {
            mode,
            root_cert,
            client_cert,
            client_key,
            sni: self.integer("sslsni")? != Some(0),
            min_version: version("ssl_min_protocol_version")?,
            max_version: version("ssl_max_protocol_version")?,
        })
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
        let cfg = ConnArgs::build(&c, &HookOverrides::default()).unwrap().connect_config().clone();
        assert_eq!(cfg.endpoints.len(), 2);
        assert_eq!((cfg.endpoints[1].host.as_str(), cfg.endpoints[1].port), ("b", 5433));
        assert_eq!(cfg.tls.mode, SslMode::VerifyCa);
        assert_eq!(cfg.tls.client_key.as_deref(), Some("k.pem"));
        assert_eq!(cfg.connect_timeout_seconds, Some(2));
        assert_eq!(cfg.keepalives.unwrap().idle_seconds, Some(30));
        assert_eq!(cfg.application_name.as_deref(), Some("app"));
        assert_eq!(cfg.target_session, TargetSession::ReadWrite);
        assert_eq!(cfg.password.as_deref(), Some("secret"));
        let off = ConnArgs::build(&conn(json!({"keepalives": 0})), &HookOverrides::default()).unwrap();
        assert!(off.connect_config().keepalives.is_none());
    }

    #[test]
    fn no_host_means_default_socket() {
        let c = Connection::parse("c", r#"{"login": "u"}"#).unwrap();
        let args = ConnArgs::build(&c, &HookOverrides::default()).unwrap();
        assert_eq!(args.explain(), r#"{"host":null,"user":"u","password":null,"dbname":null,"port":null}"#);
        let endpoints = &args.connect_config().endpoints;
        assert_eq!(endpoints.len(), 1);
        assert_eq!((endpoints[0].host.as_str(), endpoints[0].port), ("", 5432));
    }
}
