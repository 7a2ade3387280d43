//! Every parser in the guest meets hostile input with an error, never a
//! panic: a deterministic stream of generated inputs through each of them.

#[cfg(test)]
mod tests {
    use crate::bindings::hook::{Element, Param, Parameters};
    use crate::bindings::types::Value;
    use crate::connection::Connection;
    use crate::copy::{CopyStatement, TableRef};
    use crate::iam::IamRequest;
    use crate::libpq::{ConnArgs, HookOverrides};
    use crate::sql::{interpolate, split_statements};

    /// Pieces that exercise quoting, escapes, separators and multi-byte text.
    const PIECES: &[&str] = &[
        "postgres://",
        "postgresql://",
        "{",
        "}",
        "\"",
        "'",
        "$$",
        "$a$",
        "%",
        "%s",
        "%(x)s",
        "%%",
        "%2F",
        "%zz",
        "%C3",
        "@",
        ":",
        "/",
        "?",
        "&",
        "=",
        "#",
        "[",
        "]",
        "::1",
        "host",
        "5432",
        "99999",
        "-",
        "é",
        "😀",
        "\\",
        "E'",
        "--",
        "/*",
        "*/",
        ";",
        "(",
        ")",
        ",",
        ".",
        " ",
        "\n",
        "\0",
        "copy",
        "from",
        "stdin",
        "to",
        "stdout",
        "__extra__",
        "{\"a\":",
        "[1]",
        "null",
        "true",
        "sslmode",
        "iam",
        "redshift",
        "port",
        "extra",
        "\"port\":",
        "role_arn",
        "service_config",
        "assume_role_kwargs",
        "{\"sts\":",
    ];

    fn inputs() -> impl Iterator<Item = String> {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..20_000).map(move |_| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let len = next() % 12;
            (0..len).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect()
        })
    }

    #[test]
    fn parsers_never_panic() {
        let params = [
            Parameters::Positional(vec![
                Param::Value(Value::Text("x'\\".into())),
                Param::Array(vec![Element::Value(Value::Int(-1))]),
            ]),
            Parameters::Named(vec![("x".into(), Param::Date("1e5".into()))]),
        ];
        for input in inputs() {
            if let Ok(conn) = Connection::parse("fuzz", &input) {
                let _ = ConnArgs::build(&conn, &HookOverrides::default()).map(|a| a.explain());
                let _ = IamRequest::for_connection(&conn, None);
                let _ = crate::sqlalchemy::uri(&conn, None);
                let _ = crate::aws_conn::client_config(Some(&conn));
            }
            let _ = crate::aws_conn::service_endpoint(&input);
            let _ = crate::aws_conn::session_name_for(&input);
            let _ = Connection::parse("fuzz", &format!("postgres://{input}"));
            let _ = split_statements(&input);
            let _ = CopyStatement::parse(&input).map(|c| c.render());
            let _ = TableRef::parse(&input);
            for p in &params {
                let _ = interpolate(&input, Some(p));
            }
        }
    }
}
