//! SQL text: statement splitting (with [`crate::lexer`]), literal and
//! identifier quoting, and psycopg2's client-side parameter interpolation
//! (`%s`, `%(name)s`, `%%`).

use crate::bindings::hook::{Element, Param, Parameters};
use crate::bindings::types::Value;
use crate::error::{Result, config};
use crate::lexer::{self, LexError, Scs, lex};

/// The byte ranges of the statements in `sql`, split at top-level
/// semicolons as read with `scs`; statements with no token are dropped.
fn statement_ranges(sql: &str, scs: Scs) -> std::result::Result<Vec<(usize, usize)>, LexError> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    for token in lex(sql, scs)? {
        if token.is_symbol(";") {
            if has_code {
                ranges.push((start, token.start));
            }
            start = token.end;
            has_code = false;
        } else {
            has_code = true;
        }
    }
    if has_code {
        ranges.push((start, sql.len()));
    }
    Ok(ranges)
}

/// Split a script into statements at top-level semicolons, as Airflow's
/// `split_statements` does; empty statements are dropped. The statements
/// are the caller's text: `run` sends SQL as written. A script that splits
/// differently depending on standard_conforming_strings is refused.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let (on, off) = (statement_ranges(sql, Scs::On), statement_ranges(sql, Scs::Off));
    let ranges = match (on, off) {
        (Ok(on), Ok(off)) if on == off => on,
        // The same verdict as for any SQL: a lexical error, or an ambiguity.
        _ => {
            lexer::both_readings(sql)?;
            return Err(config(
                "the script splits into statements differently depending on standard_conforming_strings \
                 (a backslash in a '...' string is a plain character when it is on, an escape when it is off): \
                 write such strings as E'...' with each backslash doubled",
            ));
        }
    };
    Ok(ranges.into_iter().map(|(start, end)| sql[start..end].trim().to_string()).collect())
}

/// Quote an identifier for PostgreSQL: `"na""me"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a string constant safely whatever `standard_conforming_strings` is.
pub fn quote_text(text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len() + 3);
    push_quoted_text(&mut out, text)?;
    Ok(out)
}

/// [`quote_text`], onto `out`.
fn push_quoted_text(out: &mut String, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(config("a text parameter contains a NUL character, which PostgreSQL cannot store"));
    }
    out.push_str("E'");
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '\'']) {
        out.push_str(&rest[..=at]);
        // Each is doubled: `\\` for a backslash, `''` for a quote.
        out.push_str(&rest[at..=at]);
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('\'');
    Ok(())
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
    let mut out = String::new();
    push_literal(&mut out, value)?;
    Ok(out)
}

/// [`literal`], onto `out`.
fn push_literal(out: &mut String, value: &Value) -> Result<()> {
    let start = out.len();
    push_bare_literal(out, value)?;
    if out[start..].starts_with('-') {
        out.insert(start, '(');
        out.push(')');
    }
    Ok(())
}

fn push_bare_literal(out: &mut String, value: &Value) -> Result<()> {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    match value {
        Value::Null => out.push_str("NULL"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => _ = write!(out, "{i}"),
        Value::Float(f) if f.is_nan() => out.push_str("'NaN'::float8"),
        Value::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "'Infinity'::float8" } else { "'-Infinity'::float8" })
        }
        // A bare literal, as psycopg2 sends repr(float): the server reads it as numeric.
        Value::Float(f) => _ = write!(out, "{f:?}"),
        Value::Numeric(n) if matches!(n.as_str(), "NaN" | "Infinity" | "-Infinity") => {
            _ = write!(out, "'{n}'::numeric")
        }
        Value::Numeric(n) if is_numeric_literal(n) => _ = write!(out, "{n}::numeric"),
        Value::Numeric(n) => return Err(config(format!("{n:?} is not a numeric value"))),
        Value::Text(t) | Value::Json(t) => push_quoted_text(out, t)?,
        // From its parts, never its text.
        Value::Interval(i) => {
            _ = write!(out, "'{} mons {} days {} microseconds'::interval", i.months, i.days, i.microseconds)
        }
        // E'' reads the same whatever standard_conforming_strings says.
        Value::Bytes(b) => {
            out.push_str("E'\\\\x");
            for byte in b {
                _ = write!(out, "{byte:02x}");
            }
            out.push_str("'::bytea");
        }
    }
    Ok(())
}

/// A parameter as the literal psycopg2 would send for it.
pub fn param_literal(param: &Param) -> Result<String> {
    let mut out = String::new();
    push_param_literal(&mut out, param)?;
    Ok(out)
}

/// A parameter that is not a list, as it is rendered: a value's literal,
/// or quoted text with psycopg2's cast.
enum Single<'a> {
    Value(&'a Value),
    Cast(&'a str, &'static str),
}

impl Single<'_> {
    fn push(&self, out: &mut String) -> Result<()> {
        match self {
            Single::Value(value) => push_literal(out, value),
            Single::Cast(text, ty) => {
                push_quoted_text(out, text)?;
                out.push_str("::");
                out.push_str(ty);
                Ok(())
            }
        }
    }
}

impl<'a> From<&'a Element> for Single<'a> {
    fn from(element: &'a Element) -> Single<'a> {
        match element {
            Element::Value(value) => Single::Value(value),
            Element::Date(text) => Single::Cast(text, "date"),
            Element::Time(text) => Single::Cast(text, "time"),
            Element::Timestamp(text) => Single::Cast(text, "timestamp"),
            Element::Timestamptz(text) => Single::Cast(text, "timestamptz"),
            Element::Interval(text) => Single::Cast(text, "interval"),
            Element::Uuid(text) => Single::Cast(text, "uuid"),
        }
    }
}

/// `elements`, each as on its own, separated by commas.
fn push_elements(out: &mut String, elements: &[Element]) -> Result<()> {
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        Single::from(element).push(out)?;
    }
    Ok(())
}

/// [`param_literal`], onto `out`.
pub fn push_param_literal(out: &mut String, param: &Param) -> Result<()> {
    let single = match param {
        Param::Value(value) => Single::Value(value),
        Param::Date(text) => Single::Cast(text, "date"),
        Param::Time(text) => Single::Cast(text, "time"),
        Param::Timestamp(text) => Single::Cast(text, "timestamp"),
        Param::Timestamptz(text) => Single::Cast(text, "timestamptz"),
        Param::Interval(text) => Single::Cast(text, "interval"),
        Param::Uuid(text) => Single::Cast(text, "uuid"),
        Param::Array(elements) if elements.is_empty() => {
            out.push_str("'{}'");
            return Ok(());
        }
        Param::Array(elements) => {
            out.push_str("ARRAY[");
            push_elements(out, elements)?;
            out.push(']');
            return Ok(());
        }
        Param::Tuple(elements) if elements.is_empty() => {
            return Err(config(
                "an empty tuple parameter: `IN ()` is not SQL (psycopg2 sends it and the server refuses)",
            ));
        }
        Param::Tuple(elements) => {
            out.push('(');
            push_elements(out, elements)?;
            out.push(')');
            return Ok(());
        }
    };
    single.push(out)
}

/// Substitute parameters into `sql` as psycopg2's `cursor.execute` does.
/// Without parameters the text is left untouched, `%` signs included; empty
/// parameters count as none, as the hook passes them on only if truthy.
pub fn interpolate(sql: &str, parameters: Option<&Parameters>) -> Result<String> {
    let parameters = parameters.filter(|p| match p {
        Parameters::Positional(values) => !values.is_empty(),
        Parameters::Named(values) => !values.is_empty(),
    });
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
            push_param_literal(&mut out, value)?;
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
            push_param_literal(&mut out, value)?;
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
            split_statements(script).unwrap(),
            vec![
                "create table t(a text)".to_string(),
                "-- c; \n insert into t values ('a;b'), (E'x\\';')".to_string(),
                "select $$;$$, $f$ ; $f$, \"se;mi\" /* ; /* ; */ */".to_string(),
            ]
        );
        assert_eq!(split_statements("-- only a comment").unwrap(), Vec::<String>::new());
        assert_eq!(split_statements("select $1").unwrap(), vec!["select $1".to_string()]);
        // A -- comment ends at \r as in PostgreSQL.
        assert_eq!(split_statements("select 1 --;\rselect 2; select 3").unwrap().len(), 2);
        // Backslashes are fine where both readings split alike...
        assert_eq!(split_statements(r"select 'C:\dir'; select 2").unwrap().len(), 2);
        // ...and refused where they do not.
        let e = split_statements(r"select 'a\'; select 1; --'").unwrap_err();
        assert!(e.message.contains("standard_conforming_strings"), "{}", e.message);
        let e = split_statements("select 'a; select 2").unwrap_err();
        assert!(e.message.contains("unterminated quoted string at character 8"), "{}", e.message);
    }

    #[test]
    fn literals_are_injection_safe() {
        assert_eq!(literal(&Value::Text("it's \\ ok".into())).unwrap(), "E'it''s \\\\ ok'");
        assert_eq!(literal(&Value::Bytes(vec![0, 255])).unwrap(), "E'\\\\x00ff'::bytea");
        assert_eq!(literal(&Value::Numeric("-12.50e3".into())).unwrap(), "(-12.50e3::numeric)");
        assert!(literal(&Value::Numeric("1; drop table x".into())).is_err());
        assert!(literal(&Value::Text("a\0b".into())).is_err());
        assert_eq!(literal(&Value::Float(1.0)).unwrap(), "1.0");
        assert_eq!(literal(&Value::Float(-0.5)).unwrap(), "(-0.5)");
        assert_eq!(literal(&Value::Int(-5)).unwrap(), "(-5)");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn interpolates_like_psycopg2() {
        let p = Parameters::Positional(vec![Param::Value(Value::Int(1)), Param::Value(Value::Text("x".into()))]);
        assert_eq!(interpolate("select %s, %s, '100%%'", Some(&p)).unwrap(), "select 1, E'x', '100%'");
        let named = Parameters::Named(vec![("id".into(), Param::Value(Value::Null))]);
        assert_eq!(interpolate("where id = %(id)s", Some(&named)).unwrap(), "where id = NULL");
        assert_eq!(interpolate("select '5%'", None).unwrap(), "select '5%'");
        // Empty parameters are none, as the hook passes on only truthy ones: `%` is not special.
        let empty = [Parameters::Positional(vec![]), Parameters::Named(vec![])];
        for none in &empty {
            assert_eq!(interpolate("select '100%', %s", Some(none)).unwrap(), "select '100%', %s");
        }
        assert!(interpolate("select 1", Some(&p)).is_err());
        assert!(interpolate("select %d", Some(&p)).is_err());
        assert!(interpolate("select %(nope)s", Some(&named)).is_err());
    }

    #[test]
    fn typed_parameters_like_psycopg2() {
        let one = |p: Param| param_literal(&p).unwrap();
        assert_eq!(one(Param::Date("2024-02-29".into())), "E'2024-02-29'::date");
        assert_eq!(
            one(Param::Timestamptz("2024-02-29 13:14:15+05:30".into())),
            "E'2024-02-29 13:14:15+05:30'::timestamptz"
        );
        assert_eq!(one(Param::Interval("P1DT2H".into())), "E'P1DT2H'::interval");
        assert_eq!(one(Param::Uuid("x'y".into())), "E'x''y'::uuid");
        assert_eq!(
            one(Param::Array(vec![Element::Value(Value::Int(1)), Element::Value(Value::Null)])),
            "ARRAY[1, NULL]"
        );
        assert_eq!(one(Param::Array(vec![])), "'{}'");
        assert_eq!(
            one(Param::Tuple(vec![Element::Value(Value::Text("a".into())), Element::Value(Value::Int(-2))])),
            "(E'a', (-2))"
        );
        assert!(param_literal(&Param::Tuple(vec![])).is_err());
        // Items are adapted as on their own, casts included.
        assert_eq!(
            one(Param::Array(vec![Element::Date("2024-02-29".into()), Element::Uuid("x'y".into())])),
            "ARRAY[E'2024-02-29'::date, E'x''y'::uuid]"
        );
        assert_eq!(one(Param::Tuple(vec![Element::Interval("1 day".into())])), "(E'1 day'::interval)");
    }
}
