//! The parts of Python's `urllib.parse` that Airflow's connection URIs rely
//! on, reproduced exactly: `urlsplit`, `unquote` and `parse_qsl`; and where a
//! password sits in a URI's text ([`password_span`]), the one rule for
//! masking it ([`mask_password`]).

use std::ops::Range;

/// The pieces of a URI, as `urllib.parse.urlsplit` returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUri {
    /// Lower-cased scheme, empty if none.
    pub scheme: String,
    /// Everything between `//` and the path.
    pub netloc: String,
    /// From the first `/` after the netloc up to `?` or `#`.
    pub path: String,
    /// After `?`, up to `#`.
    pub query: String,
    /// Whether the text's password region ([`password_span`]) reaches past
    /// the netloc: an unencoded `#`, `?`, `/` or `@` in a password, or an
    /// `@` after the host, so that the split may have cut a password apart.
    pub password_spills: bool,
}

/// A port that `urlsplit(...).port` rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// Not all ASCII digits. The text is not kept: it may be a piece of a
    /// password whose unencoded `:` was read as the port's.
    NotInteger,
    /// Above 65535.
    OutOfRange,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Python's own wording, so Airflow users recognise it, less the value.
            PortError::NotInteger => f.write_str("Port could not be cast to integer value"),
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
    let netloc_end = cleaned.len() - rest.len();
    let password_spills = password_span(&cleaned).is_some_and(|span| span.end > netloc_end);
    if let Some(hash) = rest.find('#') {
        rest = &rest[..hash];
    }
    let (path, query) = match rest.find('?') {
        Some(q) => (&rest[..q], &rest[q + 1..]),
        None => (rest, ""),
    };
    SplitUri { scheme, netloc, path: path.to_string(), query: query.to_string(), password_spills }
}

/// Where a password may sit in a URI's text: from the first `:` after
/// `scheme://` (or after the start, without a scheme) to the last `@`. It
/// over-reaches on purpose: an unencoded `#`, `?`, `/` or `@` can be inside a
/// password, and what follows the last `@` is the host. `None` without such
/// a `:` before an `@`.
pub fn password_span(text: &str) -> Option<Range<usize>> {
    let after_scheme = text.find("://").map_or(0, |i| i + 3);
    let at = text.rfind('@').filter(|at| *at >= after_scheme)?;
    let colon = text[after_scheme..at].find(':')? + after_scheme;
    Some(colon + 1..at)
}

/// `text` with its password region ([`password_span`]) shown as `***`: the
/// one form in which an error may quote a connection URI.
pub fn mask_password(text: &str) -> String {
    match password_span(text) {
        Some(span) => format!("{}***{}", &text[..span.start], &text[span.end..]),
        None => text.to_string(),
    }
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
            return Err(PortError::NotInteger);
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
        assert_eq!(urlsplit("postgres://h:abc").port(), Err(PortError::NotInteger));
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

    #[test]
    fn password_region_runs_to_the_last_at() {
        assert_eq!(mask_password("postgres://user:pa#ss@host:5432/db"), "postgres://user:***@host:5432/db");
        assert_eq!(mask_password("postgres://u:x@y:z@host/db"), "postgres://u:***@host/db");
        assert_eq!(mask_password("postgres://user:a/b@host/db"), "postgres://user:***@host/db");
        assert_eq!(mask_password("user:p?w@host"), "user:***@host");
        // No `:` before an `@`, or no `@`: no password to mask.
        assert_eq!(mask_password("postgres://u@host:5432/db"), "postgres://u@host:5432/db");
        assert_eq!(mask_password("postgres://host:5432/db"), "postgres://host:5432/db");
        assert_eq!(mask_password("postgres://@h"), "postgres://@h");
        assert_eq!(password_span("é:ü@h"), Some(3..5));
    }

    #[test]
    fn spills_past_the_netloc() {
        for spilled in [
            "//user:pa#ss@host",
            "//user:p?w@host/db",
            "//user:a/b@host/db",
            "//user:12/b@host/db",
            "//u:x@y?z@host/db",
            "//dom/user:pw@host",
            "//host:5432/db?application_name=me@corp",
        ] {
            assert!(urlsplit(spilled).password_spills, "{spilled}");
        }
        for whole in ["//u:x@y:z@host/db", "//u:p%23w@host/db?a=b", "//u@host/db?a=me@corp", "//host:5432/db"] {
            assert!(!urlsplit(whole).password_spills, "{whole}");
        }
    }
}
