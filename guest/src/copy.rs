//! COPY statements. `copy_expert`'s statement is parsed into a
//! [`CopyStatement`] and the statement sent to the server is rendered from
//! it, never the caller's text: what the server runs is what the guest
//! understood, whatever comments, quoting or `standard_conforming_strings`
//! the caller used. `bulk_load` and `bulk_dump` build theirs from a
//! [`TableRef`].

mod options;
#[cfg(test)]
mod props;

pub use options::{CopyOption, ForceQuote, Format, Header};

use crate::bindings::types::Error;
use crate::error::{Result, config};
use crate::lexer::{Token, TokenKind, render, tokens};
use crate::sql::quote_ident;

/// Which way rows flow in a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `COPY ... FROM STDIN`: file into table.
    Load,
    /// `COPY ... TO STDOUT`: table into file.
    Dump,
}

/// Tokens read one at a time.
struct Cursor<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let token = self.tokens.get(self.pos);
        self.pos += usize::from(token.is_some());
        token
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.is_word(word));
        self.pos += usize::from(found);
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.peek().is_some_and(|t| t.is_symbol(symbol));
        self.pos += usize::from(found);
        found
    }
}

/// A token as an error message shows it.
fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end of the statement".into(),
        Some(t) if t.kind == TokenKind::String => format!("the string {:?}", t.text),
        Some(t) if t.kind == TokenKind::QuotedIdent => quote_ident(&t.text),
        Some(t) => t.text.clone(),
    }
}

/// A `config` error: the statement is refused, and why.
fn refuse(message: impl Into<String>) -> Error {
    config(message)
}

/// A name: an unquoted ASCII word folded to lower case, as PostgreSQL folds
/// it, or a quoted identifier as written; returned quoted.
fn name(cursor: &mut Cursor) -> std::result::Result<String, String> {
    match cursor.next() {
        Some(t) if t.kind == TokenKind::Word && t.text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => {
            Ok(quote_ident(&t.text.to_ascii_lowercase()))
        }
        Some(t) if t.kind == TokenKind::QuotedIdent => Ok(quote_ident(&t.text)),
        Some(t) if t.kind == TokenKind::Word => Err(format!("{} is not a plain ASCII name: quote it", t.text)),
        None => Err("a name is missing".into()),
        token => Err(format!("{} is not a name", describe(token))),
    }
}

/// `name, name, ...` up to the first token that is not a comma.
fn names(cursor: &mut Cursor) -> std::result::Result<Vec<String>, String> {
    let mut names = vec![name(cursor)?];
    while cursor.eat_symbol(",") {
        names.push(name(cursor)?);
    }
    Ok(names)
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
        let tokens = tokens(input).map_err(|e| bad(&e.message))?;
        let mut cursor = Cursor { tokens: &tokens, pos: 0 };
        let table = TableRef::read(&mut cursor).map_err(|why| bad(&why))?;
        if cursor.peek().is_some() {
            return Err(bad("unexpected text after the name"));
        }
        Ok(table)
    }

    /// Read a table reference at the cursor; on failure, why.
    fn read(cursor: &mut Cursor) -> std::result::Result<TableRef, String> {
        let mut parts = vec![name(cursor)?];
        while cursor.eat_symbol(".") {
            parts.push(name(cursor)?);
        }
        if parts.len() > 2 {
            return Err("too many dots".into());
        }
        let mut columns = Vec::new();
        if cursor.eat_symbol("(") {
            columns = names(cursor)?;
            if !cursor.eat_symbol(")") {
                return Err("the column list is not closed".into());
            }
        }
        Ok(TableRef { name: parts.join("."), columns })
    }

    /// The table as it goes into a COPY statement.
    pub fn target(&self) -> String {
        if self.columns.is_empty() { self.name.clone() } else { format!("{} ({})", self.name, self.columns.join(", ")) }
    }
}

/// What a COPY reads from or writes to on the server's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A table, with an optional column list.
    Table(TableRef),
    /// `COPY (query) TO STDOUT`: the query's tokens.
    Query(Vec<Token>),
}

/// A `copy_expert` statement as the guest understood it:
/// `COPY table [(columns)] FROM STDIN [[WITH] options] [WHERE condition]`
/// or `COPY {table [(columns)] | (query)} TO STDOUT [[WITH] options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStatement {
    /// The table (with columns) or the query.
    pub source: CopySource,
    /// Which way rows flow.
    pub direction: Direction,
    /// The options, in the order written.
    pub options: Vec<CopyOption>,
    /// The WHERE condition's tokens of a load; empty for none.
    pub condition: Vec<Token>,
}

impl CopyStatement {
    /// `bulk_load`'s statement.
    pub fn load(table: TableRef) -> CopyStatement {
        CopyStatement {
            source: CopySource::Table(table),
            direction: Direction::Load,
            options: Vec::new(),
            condition: Vec::new(),
        }
    }

    /// `bulk_dump`'s statement.
    pub fn dump(table: TableRef) -> CopyStatement {
        CopyStatement {
            source: CopySource::Table(table),
            direction: Direction::Dump,
            options: Vec::new(),
            condition: Vec::new(),
        }
    }

    /// Parse a `copy_expert` statement. Only one statement of the forms above
    /// is accepted: a COPY against a server-side file or PROGRAM would bypass
    /// the hook's file root, and anything not understood is refused.
    pub fn parse(sql: &str) -> Result<CopyStatement> {
        let all = tokens(sql)?;
        // One statement, perhaps followed by semicolons.
        let end = all.iter().position(|t| t.is_symbol(";")).unwrap_or(all.len());
        if let Some(more) = all[end..].iter().find(|t| !t.is_symbol(";")) {
            let at = sql[..more.start].chars().count() + 1;
            return Err(refuse(format!(
                "copy_expert takes exactly one COPY statement, but more follows at character {at}"
            )));
        }
        let mut cursor = Cursor { tokens: &all[..end], pos: 0 };
        if !cursor.eat_word("copy") {
            return Err(refuse(format!(
                "copy_expert needs COPY ... FROM STDIN or COPY ... TO STDOUT, not a statement starting with {}",
                describe(cursor.peek())
            )));
        }
        let source = if cursor.eat_symbol("(") {
            let inner = &cursor.tokens[cursor.pos..];
            let mut depth = 0usize;
            let close = inner.iter().position(|t| {
                if t.is_symbol("(") {
                    depth += 1;
                } else if t.is_symbol(")") {
                    if depth == 0 {
                        return true;
                    }
                    depth -= 1;
                }
                false
            });
            let close = close.ok_or_else(|| refuse("the parenthesis around the COPY query is not closed"))?;
            if close == 0 {
                return Err(refuse("COPY () needs a query between the parentheses"));
            }
            cursor.pos += close + 1;
            CopySource::Query(inner[..close].to_vec())
        } else {
            let table = TableRef::read(&mut cursor).map_err(|why| {
                refuse(format!(
                    "invalid table name: {why}; expected COPY [schema.]table [(column, ...)] or COPY (query)"
                ))
            })?;
            CopySource::Table(table)
        };
        let direction = CopyStatement::read_direction(&mut cursor, matches!(source, CopySource::Query(_)))?;
        cursor.eat_word("with");
        let options = if cursor.eat_symbol("(") {
            options::new_style_options(&mut cursor)?
        } else {
            options::legacy_options(&mut cursor)?
        };
        let mut condition = Vec::new();
        if cursor.eat_word("where") {
            if direction == Direction::Dump {
                return Err(refuse("WHERE is only allowed with COPY ... FROM STDIN"));
            }
            condition = cursor.tokens[cursor.pos..].to_vec();
            cursor.pos = cursor.tokens.len();
            if condition.is_empty() {
                return Err(refuse("WHERE needs a condition"));
            }
        }
        if let Some(token) = cursor.peek() {
            return Err(refuse(format!("unexpected {} after the COPY options", describe(Some(token)))));
        }
        Ok(CopyStatement { source, direction, options, condition })
    }

    /// `FROM STDIN` or `TO STDOUT`; anything else is refused, naming it.
    fn read_direction(cursor: &mut Cursor, query: bool) -> Result<Direction> {
        let needs = "copy_expert needs COPY ... FROM STDIN or COPY ... TO STDOUT";
        let load = if cursor.eat_word("from") {
            true
        } else if cursor.eat_word("to") {
            false
        } else {
            return Err(refuse(format!("{needs}: expected FROM or TO, found {}", describe(cursor.peek()))));
        };
        let way = if load { "FROM" } else { "TO" };
        let target = cursor.next();
        let server_side = "server-side files and programs are not allowed";
        match target {
            Some(t) if load && t.is_word("stdin") && !query => Ok(Direction::Load),
            Some(t) if !load && t.is_word("stdout") => Ok(Direction::Dump),
            _ if load && query => Err(refuse("COPY (query) can only go TO STDOUT")),
            Some(t) if t.is_word("program") => Err(refuse(format!(
                "{needs}, not {way} PROGRAM {}: it runs a program on the database server; {server_side}",
                describe(cursor.peek())
            ))),
            Some(t) if t.kind == TokenKind::String => Err(refuse(format!(
                "{needs}, not {way} {:?}: it {} a file on the database server; {server_side}",
                t.text,
                if load { "reads" } else { "writes" }
            ))),
            other => Err(refuse(format!("{needs}, not {way} {}", describe(other)))),
        }
    }

    /// The statement as rendered, without the read-back check.
    fn render_once(&self) -> Result<String> {
        let mut sql = String::from("COPY ");
        match &self.source {
            CopySource::Table(table) => sql.push_str(&table.target()),
            CopySource::Query(query) => sql.push_str(&format!("({})", render(query)?)),
        }
        sql.push_str(match self.direction {
            Direction::Load => " FROM STDIN",
            Direction::Dump => " TO STDOUT",
        });
        if !self.options.is_empty() {
            let options = self.options.iter().map(CopyOption::render).collect::<Result<Vec<_>>>()?;
            sql.push_str(&format!(" WITH ({})", options.join(", ")));
        }
        if !self.condition.is_empty() {
            sql.push_str(&format!(" WHERE {}", render(&self.condition)?));
        }
        Ok(sql)
    }

    /// The statement the guest sends: built from what was parsed, with every
    /// string as `E'...'` and no comments. It is read back before it is
    /// returned, so a statement that would not mean itself never leaves.
    pub fn render(&self) -> Result<String> {
        let sql = self.render_once()?;
        let again = CopyStatement::parse(&sql)?;
        if again.direction != self.direction || again.render_once()? != sql {
            return Err(refuse(format!("internal error: the rendered statement does not read back as itself: {sql}")));
        }
        Ok(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(sql: &str) -> String {
        CopyStatement::parse(sql).unwrap_or_else(|e| panic!("{sql:?}: {}", e.message)).render().unwrap()
    }

    fn refused(sql: &str) -> String {
        match CopyStatement::parse(sql) {
            Ok(statement) => panic!("{sql:?} was accepted as {:?}", statement.render()),
            Err(e) => {
                assert_eq!(e.kind, crate::bindings::types::ErrorKind::Config);
                e.message
            }
        }
    }

    #[test]
    fn directions() {
        assert_eq!(CopyStatement::parse("COPY t FROM STDIN WITH CSV").unwrap().direction, Direction::Load);
        assert_eq!(CopyStatement::parse("copy (select 'from x' from t) to stdout").unwrap().direction, Direction::Dump);
        assert_eq!(rendered("/* c */ COPY t (a, b) FROM stdin;"), "COPY \"t\" (\"a\", \"b\") FROM STDIN");
        assert!(refused("COPY t FROM '/etc/passwd'").contains("server-side files"));
        assert!(refused("COPY t TO PROGRAM 'rm -rf /'").contains("TO PROGRAM the string \"rm -rf /\""));
        assert!(refused("COPY t FROM PROGRAM 'id'").contains("runs a program on the database server"));
        assert!(refused("SELECT 1").contains("not a statement starting with SELECT"));
        assert!(refused("COPY t FROM STDIN; DROP TABLE t").contains("exactly one COPY statement"));
        assert!(refused("COPY (select 1) FROM STDIN").contains("only go TO STDOUT"));
        assert!(refused("COPY t FROM STDOUT").contains("not FROM STDOUT"));
        assert!(refused("COPY t TO STDIN").contains("not TO STDIN"));
        assert!(refused("COPY t TO STDOUT WHERE a > 1").contains("WHERE is only allowed"));
        assert!(refused("COPY (select 1; select 2) TO STDOUT").contains("exactly one"));
        assert!(refused("COPY (select 1 TO STDOUT").contains("not closed"));
        assert!(refused("COPY a.b.c TO STDOUT").contains("too many dots"));
    }

    #[test]
    fn programs_and_files_hidden_by_lexical_tricks_are_seen() {
        // PostgreSQL ends a -- comment at \r: what follows is code.
        let e = refused("COPY t --\rTO PROGRAM 'touch /tmp/x' /*\nFROM STDIN */");
        assert!(e.contains("PROGRAM"), "{e}");
        // Nested comments: the inner */ does not end the outer one.
        let e = refused("COPY t /* /* */ FROM STDIN */ TO PROGRAM 'x'");
        assert!(e.contains("PROGRAM"), "{e}");
        assert_eq!(rendered("COPY t /* /* */ TO PROGRAM 'x' */ FROM STDIN"), "COPY \"t\" FROM STDIN");
        // With standard_conforming_strings off, \' does not end the string.
        let e = refused(r"COPY t FROM STDIN WITH DELIMITER '\' TO PROGRAM 'x' --'");
        assert!(e.contains("standard_conforming_strings"), "{e}");
        let e = refused(r"COPY (select '\') TO PROGRAM 'id' --') TO STDOUT");
        assert!(e.contains("standard_conforming_strings"), "{e}");
        // Escape strings, dollar quotes and U& strings hide nothing.
        assert_eq!(
            rendered(r"COPY (select E'\' TO PROGRAM ''x''', $q$ */ TO PROGRAM 'y' $q$) TO STDOUT"),
            r"COPY (select E''' TO PROGRAM ''x''', E' */ TO PROGRAM ''y'' ') TO STDOUT"
        );
        assert_eq!(
            rendered("COPY (select U&'!0027) TO PROGRAM !0027x' UESCAPE '!') TO STDOUT"),
            "COPY (select E''') TO PROGRAM ''x') TO STDOUT"
        );
        assert!(refused("COPY t FROM STDIN WITH (FORMAT csv) TO PROGRAM 'x'").contains("unexpected TO"));
        assert!(refused("COPY t TO STDOUT\0 TO PROGRAM 'x'").contains("NUL"));
    }

    #[test]
    fn legacy_and_new_options_render_new_style() {
        assert_eq!(
            rendered("COPY t FROM STDIN WITH CSV HEADER DELIMITER AS ';' NULL 'x' QUOTE AS E'\\'' ESCAPE '\"'"),
            "COPY \"t\" FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER E';', NULL E'x', QUOTE E'''', ESCAPE E'\"')"
        );
        assert_eq!(rendered("copy t to stdout binary"), "COPY \"t\" TO STDOUT WITH (FORMAT binary)");
        assert_eq!(
            rendered("COPY t TO STDOUT CSV FORCE QUOTE a, \"B\""),
            "COPY \"t\" TO STDOUT WITH (FORMAT csv, FORCE_QUOTE (\"a\", \"B\"))"
        );
        assert_eq!(
            rendered("COPY t TO STDOUT CSV FORCE QUOTE *"),
            "COPY \"t\" TO STDOUT WITH (FORMAT csv, FORCE_QUOTE *)"
        );
        assert_eq!(
            rendered("COPY t FROM STDIN CSV FORCE NOT NULL a FORCE NULL b, c FREEZE ENCODING 'UTF8'"),
            "COPY \"t\" FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (\"a\"), FORCE_NULL (\"b\", \"c\"), FREEZE true, \
             ENCODING E'UTF8')"
        );
        assert_eq!(
            rendered(
                "COPY t FROM STDIN (format 'CSV', \"header\" match, delimiter E'\\t', null $$\\N$$, \
                 force_not_null (a, 'B'), freeze off, quote U&'\\0022', escape E'\\\\')"
            ),
            "COPY \"t\" FROM STDIN WITH (FORMAT csv, HEADER match, DELIMITER E'\t', NULL E'\\\\N', \
             FORCE_NOT_NULL (\"a\", \"B\"), FREEZE false, QUOTE E'\"', ESCAPE E'\\\\')"
        );
        assert_eq!(
            rendered("COPY t TO STDOUT WITH (FORMAT text, HEADER, HEADER 0, FORCE_QUOTE *, FREEZE 1)"),
            "COPY \"t\" TO STDOUT WITH (FORMAT text, HEADER true, HEADER false, FORCE_QUOTE *, FREEZE true)"
        );
        assert!(refused("COPY t FROM STDIN WITH (FORMAT json)").contains("\"json\" not recognized"));
        assert!(refused("COPY t FROM STDIN WITH (PROGRAM 'x')").contains("unknown COPY option \"program\""));
        assert!(refused("COPY t FROM STDIN WITH (ON_ERROR ignore)").contains("unknown COPY option"));
        assert!(refused("COPY t FROM STDIN LOG 'x'").contains("unknown COPY option \"log\""));
        assert!(refused("COPY t FROM STDIN DELIMITER x").contains("needs a string constant"));
        assert!(refused("COPY t FROM STDIN (DELIMITER)").contains("requires a value"));
        assert!(refused("COPY t FROM STDIN (HEADER maybe)").contains("Boolean value or \"match\""));
        assert!(refused("COPY t FROM STDIN (FORCE_NULL a)").contains("list of column names"));
        assert!(refused("COPY t FROM STDIN (FORMAT csv").contains("expected , or )"));
        assert!(refused("COPY t FROM STDIN FORCE QUOTE").contains("column names"));
    }

    #[test]
    fn where_and_query_forms_render_their_tokens() {
        assert_eq!(
            rendered("COPY t FROM STDIN CSV WHERE a::int > 1 -- big\r\nAND b = 'x''y' AND c <> $$z$$"),
            "COPY \"t\" FROM STDIN WITH (FORMAT csv) WHERE a::int > 1 AND b = E'x''y' AND c <> E'z'"
        );
        assert_eq!(
            rendered("COPY (SELECT U&\"a\"/*c*/, \"b\"\"c\" FROM s.t WHERE x ~ E'\\\\d') TO STDOUT (FORMAT csv)"),
            "COPY (SELECT \"a\" , \"b\"\"c\" FROM s.t WHERE x ~ E'\\\\d') TO STDOUT WITH (FORMAT csv)"
        );
        assert!(refused("COPY t FROM STDIN WHERE").contains("needs a condition"));
    }

    #[test]
    fn bulk_statements_and_rendering_are_fixed_points() {
        let t = TableRef::parse("Sales.Orders (Id, \"Total Amount\")").unwrap();
        assert_eq!(
            CopyStatement::load(t.clone()).render().unwrap(),
            "COPY \"sales\".\"orders\" (\"id\", \"Total Amount\") FROM STDIN"
        );
        assert_eq!(
            CopyStatement::dump(t).render().unwrap(),
            "COPY \"sales\".\"orders\" (\"id\", \"Total Amount\") TO STDOUT"
        );
        for sql in ["COPY t FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER E',')", "COPY (select 1) TO STDOUT"] {
            let once = rendered(sql);
            assert_eq!(rendered(&once), once);
        }
    }

    #[test]
    fn table_refs() {
        assert_eq!(TableRef::parse("\"My\"\"Table\"").unwrap().target(), "\"My\"\"Table\"");
        assert_eq!(TableRef::parse("U&\"a!0042\" UESCAPE '!'").unwrap().target(), "\"aB\"");
        for bad in ["", "t; drop table x", "a.b.c", "t (a", "t where 1=1", "'t'", "t (a,)", "\"\"", "été", "t 'a\\'"]
        {
            let e = TableRef::parse(bad).unwrap_err();
            assert!(e.message.starts_with("invalid table name"), "{bad}: {}", e.message);
        }
    }
}
