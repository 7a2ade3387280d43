//! SQL text: a lexer that knows PostgreSQL's quoting, statement splitting,
//! literal and identifier quoting, and psycopg2's client-side parameter
//! interpolation (`%s`, `%(name)s`, `%%`).

use crate::bindings::hook::Parameters;
use crate::bindings::types::Value;
use crate::error::{Result, config};

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or unquoted identifier.
    Word,
    /// A `"quoted"` identifier.
    QuotedIdent,
    /// A string constant: '...', E'...' or $tag$...$tag$.
    Literal,
    /// A `--` or `/* */` comment.
    Comment,
    /// Any other single character: punctuation, operators, digits.
    Symbol,
}

/// A token and where it stands in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
    /// A quote or comment that runs to the end of the text.
    pub unterminated: bool,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

/// Split `sql` into tokens, skipping white space.
pub fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(sql.len(), |&(o, _)| o);
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        let start = i;
        let mut kind = TokenKind::Symbol;
        let mut unterminated = false;
        if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '-' && at(i + 1) == Some('-') {
            kind = TokenKind::Comment;
            while at(i).is_some_and(|c| c != '\n') {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            kind = TokenKind::Comment;
            let mut depth = 0;
            loop {
                match (at(i), at(i + 1)) {
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        i += 2;
                    }
                    (Some('*'), Some('/')) => {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    (Some(_), _) => i += 1,
                    (None, _) => {
                        unterminated = true;
                        break;
                    }
                }
            }
        } else if c == '\'' || (matches!(c, 'e' | 'E') && at(i + 1) == Some('\'')) {
            kind = TokenKind::Literal;
            let backslashes = c != '\'';
            i += if backslashes { 2 } else { 1 };
            loop {
                match at(i) {
                    None => {
                        unterminated = true;
                        break;
                    }
                    Some('\\') if backslashes => i += 2,
                    Some('\'') if at(i + 1) == Some('\'') => i += 2,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if c == '"' {
            kind = TokenKind::QuotedIdent;
            i += 1;
            loop {
                match at(i) {
                    None => {
                        unterminated = true;
                        break;
                    }
                    Some('"') if at(i + 1) == Some('"') => i += 2,
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
        } else if c == '$'
            && let Some(tag_len) = dollar_tag(&chars[i..])
        {
            kind = TokenKind::Literal;
            let tag: String = chars[i..i + tag_len].iter().map(|&(_, c)| c).collect();
            let body_start = offset(i + tag_len);
            match sql[body_start..].find(&tag) {
                Some(pos) => {
                    let end_byte = body_start + pos + tag.len();
                    while offset(i) < end_byte {
                        i += 1;
                    }
                }
                None => {
                    unterminated = true;
                    i = chars.len();
                }
            }
        } else if is_ident_start(c) {
            kind = TokenKind::Word;
            while at(i).is_some_and(is_ident_char) {
                i += 1;
            }
        } else {
            i += 1;
        }
        tokens.push(Token { kind, start: offset(start), end: offset(i), unterminated });
    }
    tokens
}

/// The length in chars of a `$tag$` opening at the start of `chars`.
fn dollar_tag(chars: &[(usize, char)]) -> Option<usize> {
    let mut n = 1;
    while let Some(&(_, c)) = chars.get(n) {
        if c == '$' {
            return Some(n + 1);
        }
        let ok = if n == 1 { is_ident_start(c) && c != '$' } else { is_ident_char(c) && c != '$' };
        if !ok {
            return None;
        }
        n += 1;
    }
    None
}

/// Split a script into statements at top-level semicolons, as Airflow's
/// `split_statements` does; empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    for token in tokenize(sql) {
        if token.kind == TokenKind::Symbol && &sql[token.start..token.end] == ";" {
            if has_code {
                statements.push(sql[start..token.start].trim().to_string());
            }
            start = token.end;
            has_code = false;
        } else if token.kind != TokenKind::Comment {
            has_code = true;
        }
    }
    if has_code {
        statements.push(sql[start..].trim().to_string());
    }
    statements
}

/// Quote an identifier for PostgreSQL: `"na""me"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string constant safely whatever `standard_conforming_strings` is.
pub fn quote_text(text: &str) -> Result<String> {
    if text.contains('\0') {
        return Err(config("a text parameter contains a NUL character, which PostgreSQL cannot store"));
    }
    Ok(format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''")))
}

fn is_numeric_literal(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(e) => (&s[..e], Some(&s[e + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    (!int.is_empty() || !frac.is_empty()) && digits(int) && digits(frac) && exponent_ok
}

/// Render a value as a SQL literal, as psycopg2's adapters do. Negative
/// numbers are parenthesised so that `1-%s` can never become a `--` comment.
pub fn literal(value: &Value) -> Result<String> {
    let rendered = bare_literal(value)?;
    Ok(if rendered.starts_with('-') { format!("({rendered})") } else { rendered })
}

fn bare_literal(value: &Value) -> Result<String> {
    Ok(match value {
        Value::Null => "NULL".into(),
        Value::Boolean(b) => if *b { "true" } else { "false" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) if f.is_nan() => "'NaN'::float8".into(),
        Value::Float(f) if f.is_infinite() => {
            if *f > 0.0 { "'Infinity'::float8" } else { "'-Infinity'::float8" }.into()
        }
        Value::Float(f) => format!("{f:?}::float8"),
        Value::Numeric(n) if matches!(n.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            format!("'{n}'::numeric")
        }
        Value::Numeric(n) if is_numeric_literal(n) => format!("{n}::numeric"),
        Value::Numeric(n) => return Err(config(format!("{n:?} is not a numeric value"))),
        Value::Text(t) | Value::Json(t) => quote_text(t)?,
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("'\\x{hex}'::bytea")
        }
    })
}

/// Substitute parameters into `sql` as psycopg2's `cursor.execute` does.
/// Without parameters the text is left untouched, `%` signs included.
pub fn interpolate(sql: &str, parameters: Option<&Parameters>) -> Result<String> {
    let Some(parameters) = parameters else {
        return Ok(sql.to_string());
    };
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    let mut next_positional = 0;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            out.push('%');
            rest = after;
        } else if let Some(after) = rest.strip_prefix('s') {
            let Parameters::Positional(values) = parameters else {
                return Err(config("the query uses %s placeholders but the parameters are named"));
            };
            let value = values.get(next_positional).ok_or_else(|| {
                config(format!("the query has more %s placeholders than the {} parameters given", values.len()))
            })?;
            out.push_str(&literal(value)?);
            next_positional += 1;
            rest = after;
        } else if let Some(after) = rest.strip_prefix('(') {
            let (name, after) =
                after.split_once(")s").ok_or_else(|| config("a %(name) placeholder must end with )s"))?;
            let Parameters::Named(values) = parameters else {
                return Err(config(format!("the query uses %({name})s but the parameters are positional")));
            };
            let (_, value) =
                values.iter().find(|(n, _)| n == name).ok_or_else(|| config(format!("no parameter named {name:?}")))?;
            out.push_str(&literal(value)?);
            rest = after;
        } else {
            let shown: String = rest.chars().take(1).collect();
            return Err(config(format!("unsupported placeholder %{shown}: use %s, %(name)s, or %% for a literal %")));
        }
    }
    out.push_str(rest);
    if let Parameters::Positional(values) = parameters
        && next_positional < values.len()
    {
        return Err(config(format!(
            "{} parameters given but the query has {} %s placeholders",
            values.len(),
            next_positional
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_respecting_quotes_and_comments() {
        let script = "create table t(a text); -- c; \n insert into t values ('a;b'), (E'x\\';'); \
                      select $$;$$, $f$ ; $f$, \"se;mi\" /* ; /* ; */ */ ;;  ";
        assert_eq!(
            split_statements(script),
            vec![
                "create table t(a text)".to_string(),
                "-- c; \n insert into t values ('a;b'), (E'x\\';')".to_string(),
                "select $$;$$, $f$ ; $f$, \"se;mi\" /* ; /* ; */ */".to_string(),
            ]
        );
        assert_eq!(split_statements("-- only a comment"), Vec::<String>::new());
        assert_eq!(split_statements("select $1"), vec!["select $1".to_string()]);
    }

    #[test]
    fn literals_are_injection_safe() {
        assert_eq!(literal(&Value::Text("it's \\ ok".into())).unwrap(), "E'it''s \\\\ ok'");
        assert_eq!(literal(&Value::Bytes(vec![0, 255])).unwrap(), "'\\x00ff'::bytea");
        assert_eq!(literal(&Value::Numeric("-12.50e3".into())).unwrap(), "(-12.50e3::numeric)");
        assert!(literal(&Value::Numeric("1; drop table x".into())).is_err());
        assert!(literal(&Value::Text("a\0b".into())).is_err());
        assert_eq!(literal(&Value::Float(1.0)).unwrap(), "1.0::float8");
        assert_eq!(literal(&Value::Int(-5)).unwrap(), "(-5)");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn interpolates_like_psycopg2() {
        let p = Parameters::Positional(vec![Value::Int(1), Value::Text("x".into())]);
        assert_eq!(interpolate("select %s, %s, '100%%'", Some(&p)).unwrap(), "select 1, E'x', '100%'");
        let named = Parameters::Named(vec![("id".into(), Value::Null)]);
        assert_eq!(interpolate("where id = %(id)s", Some(&named)).unwrap(), "where id = NULL");
        assert_eq!(interpolate("select '5%'", None).unwrap(), "select '5%'");
        assert!(interpolate("select %s", Some(&Parameters::Positional(vec![]))).is_err());
        assert!(interpolate("select 1", Some(&p)).is_err());
        assert!(interpolate("select %d", Some(&p)).is_err());
        assert!(interpolate("select %(nope)s", Some(&named)).is_err());
    }
}
