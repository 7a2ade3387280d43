//! libpq's password file (`~/.pgpass`, `passfile`, `PGPASSFILE`): lines of
//! `hostname:port:database:username:password`, the first match wins.

/// The password `text` (a password file's contents) holds for a login, by
/// libpq's rules: `#` starts a comment line, `*` matches anything, `\`
/// escapes `:` and `\`, and the password ends at the next unescaped `:`.
/// `host` is the server's name as libpq compares it (see [`host_for`]).
pub fn lookup(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let rest = [host, port, dbname, user].iter().try_fold(line, |rest, token| field_matches(rest, token))?;
        Some(unescape(rest))
    })
}

/// The host name a password file line is matched against: libpq's default
/// host, `localhost`, for the default socket (`None`) or the standard socket
/// directory; else the host, socket directory or address as given.
pub fn host_for(server: Option<&str>) -> &str {
    match server {
        None | Some("" | STANDARD_SOCKET_DIR) => "localhost",
        Some(host) => host,
    }
}

/// The socket directory libpq (as built for Debian and psycopg2's wheels)
/// treats as its default host when reading a password file.
const STANDARD_SOCKET_DIR: &str = "/var/run/postgresql";

/// If the first field of `line` matches `token` (`*`, or the token with
/// `\` escapes), the rest of the line after its `:`.
fn field_matches<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let mut chars = line.char_indices();
    let mut expected = token.chars();
    while let Some((i, c)) = chars.next() {
        let (c, escaped) = match c {
            '\\' => match chars.next() {
                Some((_, next)) => (next, true),
                None => return None,
            },
            c => (c, false),
        };
        if c == ':' && !escaped {
            return expected.next().is_none().then(|| &line[i + 1..]);
        }
        if expected.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The password field: up to the next unescaped `:`, escapes removed.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins() {
        let text = "# comment\n\ndb.local:5432:app:etl:first\n*:*:*:etl:second\n*:*:*:*:any\n";
        assert_eq!(lookup(text, "db.local", "5432", "app", "etl").as_deref(), Some("first"));
        assert_eq!(lookup(text, "db.local", "5433", "app", "etl").as_deref(), Some("second"));
        assert_eq!(lookup(text, "other", "1", "x", "bob").as_deref(), Some("any"));
        assert_eq!(lookup("db:5432:app:etl:pw", "db", "5432", "app", "bob"), None);
    }

    #[test]
    fn escapes_and_line_ends_as_libpq_reads_them() {
        let text = "h\\:x:5432:d\\\\b:u:p\\:w\\\\d:ignored\r\n";
        assert_eq!(lookup(text, "h:x", "5432", "d\\b", "u").as_deref(), Some("p:w\\d"));
        // A token longer or shorter than the field does not match.
        assert_eq!(lookup("db:5432:app:etl:pw", "db2", "5432", "app", "etl"), None);
        assert_eq!(lookup("db2:5432:app:etl:pw", "db", "5432", "app", "etl"), None);
        // A line with too few fields matches nothing.
        assert_eq!(lookup("db:5432:app", "db", "5432", "app", "etl"), None);
        // An empty password is a password.
        assert_eq!(lookup("*:*:*:*:", "db", "5432", "app", "etl").as_deref(), Some(""));
        // `*` matches only as a whole field.
        assert_eq!(lookup("d*:*:*:*:pw", "db", "5432", "app", "etl"), None);
    }

    #[test]
    fn sockets_match_localhost() {
        assert_eq!(host_for(None), "localhost");
        assert_eq!(host_for(Some("/var/run/postgresql")), "localhost");
        assert_eq!(host_for(Some("/tmp/sock")), "/tmp/sock");
        assert_eq!(host_for(Some("db.local")), "db.local");
    }
}
