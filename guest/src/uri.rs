//! The parts of Python's `urllib.parse` that Airflow's connection URIs rely
//! on, reproduced exactly: `urlsplit`, `unquote` and `parse_qsl`.

/// The pieces of a URI, as `urllib.parse.urlsplit` returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUri {
    /// Lower-cased scheme, empty if none.
    pub scheme: String,
    /// Everything between `//` and the path.
    pub netloc: String,
    pub path: String,
    pub query: String,
}

/// A port that `urlsplit(...).port` rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// Not all ASCII digits.
    NotInteger(String),
    /// Above 65535.
    OutOfRange,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Python's own wording, so Airflow users recognise it.
            PortError::NotInteger(p) => {
                write!(f, "Port could not be cast to integer value as '{p}'")
            }
            PortError::OutOfRange => f.write_str("Port out of range 0-65535"),
        }
    }
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// `urllib.parse.urlsplit(url)` with fragments dropped.
pub fn urlsplit(url: &str) -> SplitUri {
    // Python strips leading C0 controls and spaces and removes tabs and newlines.
    let cleaned: String =
        url.trim_start_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\r' | '\n')).collect();
    let mut rest = cleaned.as_str();
    let mut scheme = String::new();
    if let Some(colon) = rest.find(':') {
        let candidate = &rest[..colon];
        if candidate.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && candidate.chars().all(is_scheme_char) {
            scheme = candidate.to_ascii_lowercase();
            rest = &rest[colon + 1..];
        }
    }
    let mut netloc = String::new();
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        netloc = after[..end].to_string();
        rest = &after[end..];
    }
    if let Some(hash) = rest.find('#') {
        rest = &rest[..hash];
    }
    let (path, query) = match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, ""),
    };
    SplitUri { scheme, netloc, path: path.to_string(), query: query.to_string() }
}

impl SplitUri {
    fn userinfo(&self) -> Option<&str> {
        self.netloc.rsplit_once('@').map(|(user, _)| user)
    }

    fn hostinfo(&self) -> (&str, Option<&str>) {
        let hostinfo = self.netloc.rsplit_once('@').map_or(self.netloc.as_str(), |(_, h)| h);
        let (host, port) = match hostinfo.split_once('[') {
            Some((_, bracketed)) => {
                let (host, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
                (host, after.split_once(':').map_or("", |(_, p)| p))
            }
            None => hostinfo.split_once(':').unwrap_or((hostinfo, "")),
        };
        (host, (!port.is_empty()).then_some(port))
    }

    /// `.username`: `None` without an `@`, possibly empty.
    pub fn username(&self) -> Option<&str> {
        self.userinfo().map(|u| u.split_once(':').map_or(u, |(name, _)| name))
    }

    /// `.password`: `None` unless the user info has a `:`.
    pub fn password(&self) -> Option<&str> {
        self.userinfo().and_then(|u| u.split_once(':').map(|(_, pw)| pw))
    }

    /// `.hostname`: lower-cased, `None` if empty.
    pub fn hostname(&self) -> Option<String> {
        let (host, _) = self.hostinfo();
        (!host.is_empty()).then(|| host.to_lowercase())
    }

    /// `.port`, with Python's checks.
    pub fn port(&self) -> Result<Option<u16>, PortError> {
        let Some(port) = self.hostinfo().1 else {
            return Ok(None);
        };
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PortError::NotInteger(port.to_string()));
        }
        let digits = port.trim_start_matches('0');
        if digits.len() > 5 {
            return Err(PortError::OutOfRange);
        }
        let value: u32 = if digits.is_empty() { 0 } else { digits.parse().unwrap_or(u32::MAX) };
        u16::try_from(value).map(Some).map_err(|_| PortError::OutOfRange)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `urllib.parse.unquote`: `%XX` escapes decoded as UTF-8 (invalid bytes
/// replaced), malformed escapes left as they are.
pub fn unquote(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urllib.parse.parse_qsl(query, keep_blank_values=True)`.
pub fn parse_qsl(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let decode = |s: &str| unquote(&s.replace('+', " "));
            (decode(name), decode(value))
        })
        .collect()
}

/// `urllib.parse.quote(s, safe="")`: every byte but `A-Za-z0-9_.-~` escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python() {
        let u = urlsplit("postgres://User:p%40ss@DB.Example.com:5433/my%20db?sslmode=require#frag");
        assert_eq!(u.scheme, "postgres");
        assert_eq!(u.netloc, "User:p%40ss@DB.Example.com:5433");
        assert_eq!(u.path, "/my%20db");
        assert_eq!(u.query, "sslmode=require");
        assert_eq!(u.username(), Some("User"));
        assert_eq!(u.password(), Some("p%40ss"));
        assert_eq!(u.hostname().as_deref(), Some("db.example.com"));
        assert_eq!(u.port(), Ok(Some(5433)));
    }

    #[test]
    fn ipv6_and_missing_parts() {
        let u = urlsplit("postgres://[::1]:5432");
        assert_eq!(u.hostname().as_deref(), Some("::1"));
        assert_eq!(u.port(), Ok(Some(5432)));
        let u = urlsplit("postgres://host");
        assert_eq!(u.username(), None);
        assert_eq!(u.password(), None);
        assert_eq!(u.port(), Ok(None));
        let u = urlsplit("postgres://@host:");
        assert_eq!(u.username(), Some(""));
        assert_eq!(u.port(), Ok(None));
    }

    #[test]
    fn bad_ports() {
        assert_eq!(urlsplit("postgres://h:abc").port(), Err(PortError::NotInteger("abc".into())));
        assert_eq!(urlsplit("postgres://h:70000").port(), Err(PortError::OutOfRange));
        assert_eq!(urlsplit("postgres://h:00080").port(), Ok(Some(80)));
    }

    #[test]
    fn unquote_and_qsl() {
        assert_eq!(unquote("a%2Fb%zz%"), "a/b%zz%");
        assert_eq!(unquote("%C3%A9"), "é");
        assert_eq!(
            parse_qsl("a=1&b=&c&d=x+y%26&&a=2"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "".into()),
                ("d".into(), "x y&".into()),
                ("a".into(), "2".into())
            ]
        );
        assert_eq!(quote("a b/@:"), "a%20b%2F%40%3A");
    }
}
