//! COPY statements: which way a `copy_expert` statement goes, and the
//! statements `bulk_load` and `bulk_dump` build from a table name.

use crate::error::{Result, config};
use crate::sql::{TokenKind, quote_ident, split_statements, tokenize};

/// Which way rows flow in a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `COPY ... FROM STDIN`: file into table.
    Load,
    /// `COPY ... TO STDOUT`: table into file.
    Dump,
}

/// Tell which way a `copy_expert` statement goes. Only one statement of the
/// form `COPY ... FROM STDIN` or `COPY ... TO STDOUT` is accepted: a COPY
/// against a server-side file or PROGRAM would bypass the hook's file root.
pub fn direction(sql: &str) -> Result<Direction> {
    let statements = split_statements(sql);
    if statements.len() != 1 {
        return Err(config(format!("copy_expert takes exactly one COPY statement, got {}", statements.len())));
    }
    let sql = &statements[0];
    let tokens: Vec<_> = tokenize(sql).into_iter().filter(|t| t.kind != TokenKind::Comment).collect();
    let text = |i: usize| tokens.get(i).map(|t| &sql[t.start..t.end]);
    let is_word = |i: usize, word: &str| {
        tokens.get(i).is_some_and(|t| t.kind == TokenKind::Word)
            && text(i).is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let needs = || config("copy_expert needs COPY ... FROM STDIN or COPY ... TO STDOUT");
    if !is_word(0, "copy") {
        return Err(needs());
    }
    let mut depth = 0i32;
    for i in 1..tokens.len() {
        match text(i) {
            Some("(") => depth += 1,
            Some(")") => depth -= 1,
            _ if depth == 0 && (is_word(i, "from") || is_word(i, "to")) => {
                return match (is_word(i, "from"), is_word(i + 1, "stdin"), is_word(i + 1, "stdout")) {
                    (true, true, _) => Ok(Direction::Load),
                    (false, _, true) => Ok(Direction::Dump),
                    _ => Err(config(format!(
                        "copy_expert needs COPY ... FROM STDIN or COPY ... TO STDOUT, not {} {}: \
                         server-side files and programs are not allowed",
                        text(i).unwrap_or_default().to_uppercase(),
                        text(i + 1).unwrap_or_default()
                    ))),
                };
            }
            _ => {}
        }
    }
    Err(needs())
}

/// A table reference: `[schema.]table [(column, ...)]`, already quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// The quoted, dotted name.
    pub name: String,
    /// The quoted column list, if one was given.
    pub columns: Vec<String>,
}

impl TableRef {
    /// Parse a table reference. Unquoted names fold to lower case as in
    /// PostgreSQL; quoted names keep their case. Anything else is refused.
    pub fn parse(input: &str) -> Result<TableRef> {
        let bad =
            |why: &str| config(format!("invalid table name {input:?}: {why}; expected [schema.]table [(column, ...)]"));
        let tokens = tokenize(input);
        let mut pos = 0;
        let ident = |pos: &mut usize| -> Result<String> {
            let token = tokens.get(*pos).ok_or_else(|| bad("a name is missing"))?;
            let text = &input[token.start..token.end];
            let name = match token.kind {
                TokenKind::Word if text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') => {
                    text.to_ascii_lowercase()
                }
                TokenKind::QuotedIdent if !token.unterminated && text.len() > 2 => {
                    text[1..text.len() - 1].replace("\"\"", "\"")
                }
                _ => return Err(bad(&format!("{text:?} is not a name"))),
            };
            *pos += 1;
            Ok(quote_ident(&name))
        };
        let symbol = |pos: usize, s: &str| {
            tokens.get(pos).is_some_and(|t| t.kind == TokenKind::Symbol && &input[t.start..t.end] == s)
        };
        let mut parts = vec![ident(&mut pos)?];
        while symbol(pos, ".") {
            pos += 1;
            parts.push(ident(&mut pos)?);
        }
        if parts.len() > 2 {
            return Err(bad("too many dots"));
        }
        let mut columns = Vec::new();
        if symbol(pos, "(") {
            pos += 1;
            loop {
                columns.push(ident(&mut pos)?);
                if symbol(pos, ",") {
                    pos += 1;
                } else if symbol(pos, ")") {
                    pos += 1;
                    break;
                } else {
                    return Err(bad("the column list is not closed"));
                }
            }
        }
        if pos != tokens.len() {
            return Err(bad("unexpected text after the name"));
        }
        Ok(TableRef { name: parts.join("."), columns })
    }

    /// The table as it goes into a COPY statement.
    pub fn target(&self) -> String {
        if self.columns.is_empty() { self.name.clone() } else { format!("{} ({})", self.name, self.columns.join(", ")) }
    }

    /// `bulk_load`'s statement.
    pub fn copy_from_stdin(&self) -> String {
        format!("COPY {} FROM STDIN", self.target())
    }

    /// `bulk_dump`'s statement.
    pub fn copy_to_stdout(&self) -> String {
        format!("COPY {} TO STDOUT", self.target())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions() {
        assert_eq!(direction("COPY t FROM STDIN WITH CSV").unwrap(), Direction::Load);
        assert_eq!(direction("copy (select 'from x' from t) to stdout").unwrap(), Direction::Dump);
        assert_eq!(direction("/* c */ COPY t (a, b) FROM stdin;").unwrap(), Direction::Load);
        let e = direction("COPY t FROM '/etc/passwd'").unwrap_err();
        assert!(e.message.contains("server-side files"), "{}", e.message);
        assert!(direction("COPY t TO PROGRAM 'rm -rf /'").is_err());
        assert!(direction("SELECT 1").is_err());
        assert!(direction("COPY t FROM STDIN; DROP TABLE t").is_err());
    }

    #[test]
    fn table_refs() {
        let t = TableRef::parse("Sales.Orders (Id, \"Total Amount\")").unwrap();
        assert_eq!(t.copy_from_stdin(), "COPY \"sales\".\"orders\" (\"id\", \"Total Amount\") FROM STDIN");
        assert_eq!(TableRef::parse("\"My\"\"Table\"").unwrap().copy_to_stdout(), "COPY \"My\"\"Table\" TO STDOUT");
        for bad in ["", "t; drop table x", "a.b.c", "t (a", "t where 1=1", "'t'", "t (a,)", "\"\""] {
            let e = TableRef::parse(bad).unwrap_err();
            assert!(e.message.starts_with("invalid table name"), "{bad}: {}", e.message);
        }
    }
}
