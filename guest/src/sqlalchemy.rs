//! `get_uri`: the connection as a SQLAlchemy URL, rendered as SQLAlchemy 2's
//! `URL.render_as_string(hide_password=False)` does.

use serde_json::Value;

use crate::connection::Connection;
use crate::error::{Result, config};

/// Python's `quote(s, safe=" +")`.
fn quote_userinfo(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b' ' | b'+') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Python's `quote_plus(s)`.
fn quote_plus(s: &str) -> String {
    crate::uri::quote(s).replace("%20", "+")
}

/// The SQLAlchemy URI of `conn`. The driver is `postgresql` (psycopg2), or
/// the `sqlalchemy_scheme` extra; `sqlalchemy_query` adds query parameters.
pub fn uri(conn: &Connection, database: Option<&str>) -> Result<String> {
    let scheme = conn.extra_str("sqlalchemy_scheme").unwrap_or_else(|| "postgresql".into());
    let mut s = format!("{scheme}://");
    if let Some(login) = &conn.login {
        s += &quote_userinfo(login);
        if let Some(password) = &conn.password {
            s += ":";
            s += &quote_userinfo(password);
        }
        s += "@";
    }
    if let Some(host) = &conn.host {
        if host.contains(':') {
            s += &format!("[{host}]");
        } else {
            s += host;
        }
    }
    if let Some(port) = conn.port {
        s += &format!(":{port}");
    }
    let database = database.filter(|d| !d.is_empty()).map(str::to_string).or_else(|| conn.schema.clone());
    if let Some(database) = database {
        s += "/";
        s += &database;
    }
    match conn.extra.get("sqlalchemy_query") {
        None | Some(Value::Null) => {}
        Some(Value::Object(query)) if query.is_empty() => {}
        Some(Value::Object(query)) => {
            let mut keys: Vec<&String> = query.keys().collect();
            keys.sort();
            let mut pairs = Vec::new();
            for key in keys {
                let values = match &query[key] {
                    Value::Array(items) => items.clone(),
                    single => vec![single.clone()],
                };
                for value in values {
                    let value = match value {
                        Value::String(v) => v,
                        other => other.to_string(),
                    };
                    pairs.push(format!("{}={}", quote_plus(key), quote_plus(&value)));
                }
            }
            s += "?";
            s += &pairs.join("&");
        }
        Some(_) => {
            return Err(config("The parameter 'sqlalchemy_query' must be of type dict!"));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_sqlalchemy() {
        let c = Connection::parse(
            "c",
            r#"{"host": "h", "login": "us@r", "password": "p:w d", "port": 5432, "schema": "db", "extra": {"sqlalchemy_query": {"sslmode": "require", "a": "x y"}}}"#,
        )
        .unwrap();
        assert_eq!(uri(&c, None).unwrap(), "postgresql://us%40r:p%3Aw d@h:5432/db?a=x+y&sslmode=require");
        assert_eq!(uri(&c, Some("other")).unwrap(), "postgresql://us%40r:p%3Aw d@h:5432/other?a=x+y&sslmode=require");
        let c = Connection::parse("c", r#"{"host": "::1", "extra": {"sqlalchemy_query": "x"}}"#).unwrap();
        assert!(uri(&c, None).is_err());
        let c = Connection::parse("c", r#"{"host": "::1"}"#).unwrap();
        assert_eq!(uri(&c, None).unwrap(), "postgresql://[::1]");
    }
}
