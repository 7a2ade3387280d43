//! Airflow connections: the URI form, the JSON form, and how a stored value
//! becomes a [`Connection`].
//!
//! No error quotes a password: errors name the field and the problem, and the
//! one that shows a URI shows it through [`mask_password`].

use serde_json::{Map, Value};

use crate::error::{Result, config};
use crate::uri::{mask_password, unquote, urlsplit};

/// The connection id a hook uses when none is given.
pub const DEFAULT_CONN_ID: &str = "postgres_default";

/// An Airflow connection, field for field.
#[derive(Clone, PartialEq)]
pub struct Connection {
    /// The id it was stored under.
    pub conn_id: String,
    /// `postgres`, `postgresql`, ...: the URI scheme or the JSON `conn_type`.
    pub conn_type: String,
    /// Host name, address or socket directory.
    pub host: Option<String>,
    /// The database name (Airflow calls it schema).
    pub schema: Option<String>,
    /// The user name.
    pub login: Option<String>,
    /// The password; never printed.
    pub password: Option<String>,
    /// The server port.
    pub port: Option<u16>,
    /// `extra_dejson`, in the order it was written.
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("conn_id", &self.conn_id)
            .field("conn_type", &self.conn_type)
            .field("host", &self.host)
            .field("schema", &self.schema)
            .field("login", &self.login)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("port", &self.port)
            .field("extra_keys", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Connection {
    /// Parse a stored connection the way Airflow's secrets backends do: a
    /// value starting with `{` is the JSON form, anything else a URI.
    pub fn parse(conn_id: &str, stored: &str) -> Result<Connection> {
        let stored = stored.trim();
        if stored.starts_with('{') { Self::from_json(conn_id, stored) } else { Self::from_uri(conn_id, stored) }
    }

    /// Airflow's `Connection(uri=...)`.
    pub fn from_uri(conn_id: &str, uri: &str) -> Result<Connection> {
        let fail = |field: &str, why: String| config(format!("connection `{conn_id}`: {field}: {why}"));
        let schemes = uri.matches("://").count();
        if schemes == 0 {
            return Err(fail(
                "uri",
                "not a URI: expected postgres://[login[:password]@]host[:port][/schema][?extras]".into(),
            ));
        }
        if schemes > 2 {
            return Err(fail("uri", "invalid connection string: more than two `://`".into()));
        }
        let (raw_scheme, after_scheme) = uri.split_once("://").unwrap_or_default();
        let conn_type = match raw_scheme.to_ascii_lowercase().as_str() {
            "postgresql" => "postgres".to_string(),
            other => other.replace('-', "_"),
        };
        // With two `://` the host carries a protocol of its own (Airflow's rule).
        let (protocol, rest) = if schemes == 2 {
            let (protocol, _) = after_scheme.split_once("://").unwrap_or_default();
            if protocol.contains(['@', ':']) {
                return Err(fail("uri", "invalid connection string: credentials before the host's protocol".into()));
            }
            (Some(protocol.to_string()), after_scheme.to_string())
        } else {
            (None, format!("//{after_scheme}"))
        };
        let parts = urlsplit(&rest);
        if parts.password_spills {
            // Python would split such a password at its `#`, `?` or `/` and
            // read the rest as port, database or extras: refuse to guess.
            return Err(fail(
                "uri",
                format!(
                    "an unencoded `@`, `#`, `?` or `/` in the login or password, or an `@` after the host, makes \
                     it ambiguous: percent-encode them as %40, %23, %3F and %2F ({})",
                    mask_password(uri)
                ),
            ));
        }
        let port = parts.port().map_err(|e| fail("port", e.to_string()))?;
        let mut host = unquote(&parts.hostname().unwrap_or_default());
        if host.contains('/') {
            // A socket path: take it from the netloc so its case survives.
            let mut raw = parts.netloc.as_str();
            if let Some((_, h)) = raw.rsplit_once('@') {
                raw = h;
            }
            if let Some((h, _)) = raw.split_once(':') {
                raw = h;
            }
            host = unquote(raw);
        }
        let host = match protocol {
            Some(p) if !host.is_empty() => format!("{p}://{host}"),
            _ => host,
        };
        let quoted_schema = parts.path.strip_prefix('/').unwrap_or(&parts.path);
        let mut extra = Map::new();
        if !parts.query.is_empty() {
            let query = crate::uri::parse_qsl(&parts.query);
            if let Some((_, raw)) = query.iter().rev().find(|(k, _)| k == "__extra__") {
                extra = parse_extra(conn_id, raw)?;
            } else {
                for (k, v) in query {
                    extra.insert(k, Value::String(v));
                }
            }
        }
        Ok(Connection {
            conn_id: conn_id.to_string(),
            conn_type,
            // Airflow keeps an empty host and schema as "", not None.
            host: Some(host),
            schema: Some(unquote(quoted_schema)),
            login: parts.username().map(unquote),
            password: parts.password().map(unquote),
            port,
            extra,
        })
    }

    /// Airflow's `Connection.from_json`.
    pub fn from_json(conn_id: &str, json: &str) -> Result<Connection> {
        let fail = |field: &str, why: String| config(format!("connection `{conn_id}`: {field}: {why}"));
        let value: Value = serde_json::from_str(json).map_err(|e| fail("json", format!("invalid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(fail("json", "expected a JSON object".into()));
        };
        let mut conn = Connection {
            conn_id: conn_id.to_string(),
            conn_type: String::new(),
            host: None,
            schema: None,
            login: None,
            password: None,
            port: None,
            extra: Map::new(),
        };
        for (key, value) in fields {
            let text = || -> Result<Option<String>> {
                match &value {
                    Value::Null => Ok(None),
                    Value::String(s) => Ok(Some(s.clone())),
                    // The value is not quoted: it may be a password.
                    other => Err(fail(&key, format!("must be a string or null, not {}", json_type(other)))),
                }
            };
            match key.as_str() {
                "conn_type" => conn.conn_type = text()?.unwrap_or_default().to_ascii_lowercase(),
                "host" => conn.host = text()?,
                "schema" => conn.schema = text()?,
                "login" => conn.login = text()?,
                "password" => conn.password = text()?,
                "description" | "conn_id" => {}
                "port" => conn.port = json_port(&value).map_err(|why| fail("port", why))?,
                "extra" => {
                    conn.extra = match value {
                        Value::Null => Map::new(),
                        Value::String(s) if s.is_empty() => Map::new(),
                        Value::String(s) => parse_extra(conn_id, &s)?,
                        Value::Object(map) => map,
                        other => {
                            return Err(fail(
                                "extra",
                                format!("must be an object or a JSON string, not {}", json_type(&other)),
                            ));
                        }
                    }
                }
                other => {
                    return Err(fail(
                        other,
                        "unknown field (expected conn_type, host, schema, login, password, port, extra, description)"
                            .into(),
                    ));
                }
            }
        }
        Ok(conn)
    }

    /// A boolean extra, read as Airflow's truthiness of the JSON value.
    pub fn extra_flag(&self, key: &str) -> bool {
        self.extra.get(key).is_some_and(truthy)
    }

    /// A string extra.
    pub fn extra_str(&self, key: &str) -> Option<String> {
        match self.extra.get(key)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

/// Python's truthiness of a JSON value, with the strings URIs produce for
/// booleans ("false", "0", "no", "off") read as false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !matches!(s.trim().to_ascii_lowercase().as_str(), "" | "false" | "0" | "no" | "off"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn json_port(value: &Value) -> std::result::Result<Option<u16>, String> {
    let bad = || format!("Expected integer value for `port`, but got {value} instead.");
    let n = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad())?,
        Value::Number(n) => n.as_i64().ok_or_else(bad)?,
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => return Err(bad()),
    };
    if n == 0 {
        return Ok(None);
    }
    u16::try_from(n).map(Some).map_err(|_| format!("{n} is out of range 1-65535"))
}

/// A JSON value's kind, for errors that must not quote the value itself.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Extras as JSON text. Errors quote neither the text nor the value (serde's
/// messages give only a position): extras may hold a password.
fn parse_extra(conn_id: &str, raw: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(raw) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => {
            Err(config(format!("connection `{conn_id}`: extra: must be a JSON object, not {}", json_type(&other))))
        }
        Err(e) => Err(config(format!("connection `{conn_id}`: extra: invalid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uri_form() {
        let c = Connection::parse(
            "x",
            "postgresql://us%40er:p%3Ass%2Fw@DB.example.com:6543/my%2Fdb?sslmode=require&keepalives_idle=30",
        )
        .unwrap();
        assert_eq!(c.conn_type, "postgres");
        assert_eq!(c.login.as_deref(), Some("us@er"));
        assert_eq!(c.password.as_deref(), Some("p:ss/w"));
        assert_eq!(c.host.as_deref(), Some("db.example.com"));
        assert_eq!(c.port, Some(6543));
        assert_eq!(c.schema.as_deref(), Some("my/db"));
        assert_eq!(c.extra, json!({"sslmode": "require", "keepalives_idle": "30"}).as_object().unwrap().clone());
    }

    #[test]
    fn uri_extra_json_and_socket_host() {
        let c = Connection::parse("x", "postgres://u@%2FVar%2Frun%2Fpg/db?__extra__=%7B%22iam%22%3A+true%7D").unwrap();
        assert_eq!(c.host.as_deref(), Some("/Var/run/pg"));
        assert_eq!(c.extra.get("iam"), Some(&json!(true)));
        assert_eq!(c.password, None);
    }

    #[test]
    fn uri_without_path_keeps_empty_schema() {
        let c = Connection::parse("x", "postgres://h").unwrap();
        assert_eq!(c.schema.as_deref(), Some(""));
        assert_eq!(c.login, None);
    }

    #[test]
    fn uri_errors_name_connection_and_field() {
        let e = Connection::parse("warehouse", "postgres://h:port/db").unwrap_err();
        assert_eq!(e.message, "connection `warehouse`: port: Port could not be cast to integer value");
        let e = Connection::parse("w", "postgres://h/db?__extra__=%7Bnope").unwrap_err();
        assert!(e.message.starts_with("connection `w`: extra: invalid JSON"), "{}", e.message);
        let e = Connection::parse("w", "just-a-host").unwrap_err();
        assert!(e.message.contains("not a URI"), "{}", e.message);
    }

    #[test]
    fn json_form() {
        let c = Connection::parse(
            "j",
            r#"{"conn_type": "postgres", "host": "h", "login": "u", "password": "p", "schema": "d", "port": "5433", "extra": {"cursor": "dictcursor"}}"#,
        )
        .unwrap();
        assert_eq!(c.port, Some(5433));
        assert_eq!(c.extra_str("cursor").as_deref(), Some("dictcursor"));
        let c = Connection::parse("j", r#"{"host": "h", "extra": "{\"iam\": true}"}"#).unwrap();
        assert!(c.extra_flag("iam"));
    }

    #[test]
    fn json_errors() {
        let e = Connection::parse("j", r#"{"host": "h", "port": "abc"}"#).unwrap_err();
        assert_eq!(e.message, "connection `j`: port: Expected integer value for `port`, but got \"abc\" instead.");
        let e = Connection::parse("j", r#"{"host": "h""#).unwrap_err();
        assert!(e.message.starts_with("connection `j`: json: invalid JSON"), "{}", e.message);
        let e = Connection::parse("j", r#"{"hots": "h"}"#).unwrap_err();
        assert!(e.message.starts_with("connection `j`: hots: unknown field"), "{}", e.message);
        let e = Connection::parse("j", r#"{"password": 12345}"#).unwrap_err();
        assert_eq!(e.message, "connection `j`: password: must be a string or null, not a number");
        let e = Connection::parse("j", r#"{"extra": "[1]"}"#).unwrap_err();
        assert_eq!(e.message, "connection `j`: extra: must be a JSON object, not an array");
    }

    #[test]
    fn ambiguous_uris_are_refused_with_the_password_masked() {
        let e = Connection::parse("w", "postgres://user:pa#ss@host:5432/db").unwrap_err();
        assert_eq!(
            e.message,
            "connection `w`: uri: an unencoded `@`, `#`, `?` or `/` in the login or password, or an `@` after the \
             host, makes it ambiguous: percent-encode them as %40, %23, %3F and %2F (postgres://user:***@host:5432/db)"
        );
        // An `@` in the password is not ambiguous: the host follows the last one, as in Python.
        let c = Connection::parse("w", "postgres://u:x@y:z@host/db").unwrap();
        assert_eq!((c.password.as_deref(), c.host.as_deref()), (Some("x@y:z"), Some("host")));
    }

    #[test]
    fn truthiness() {
        assert!(truthy(&json!("true")));
        assert!(truthy(&json!(1)));
        assert!(!truthy(&json!("false")));
        assert!(!truthy(&json!(false)));
    }
}
