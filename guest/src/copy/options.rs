//! COPY options: PostgreSQL 15's documented list in the new `WITH (...)`
//! form and the pre-9.0 form, parsed into [`CopyOption`]s and rendered in
//! the new form only.

use super::{Cursor, describe, names, refuse};
use crate::error::Result;
use crate::lexer::TokenKind;
use crate::sql::{quote_ident, quote_text};

/// The `FORMAT` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PostgreSQL's tab-separated text format.
    Text,
    /// Comma-separated values.
    Csv,
    /// PostgreSQL's binary format.
    Binary,
}

/// The `HEADER` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// No header line.
    False,
    /// A header line: written by COPY TO, skipped by COPY FROM.
    True,
    /// `COPY FROM` checks the header line against the column names.
    Match,
}

/// The columns `FORCE_QUOTE` applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForceQuote {
    /// `FORCE_QUOTE *`.
    All,
    /// Quoted column names.
    Columns(Vec<String>),
}

/// A COPY option, from PostgreSQL 15's list; column names are quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOption {
    /// `FORMAT`: text, csv or binary.
    Format(Format),
    /// `FREEZE`: load rows already frozen.
    Freeze(bool),
    /// `DELIMITER`: the column separator.
    Delimiter(String),
    /// `NULL`: the string that stands for a null value.
    Null(String),
    /// `HEADER`: whether there is a header line.
    Header(Header),
    /// `QUOTE`: the CSV quote character.
    Quote(String),
    /// `ESCAPE`: the CSV escape character.
    Escape(String),
    /// `FORCE_QUOTE`: columns always quoted in CSV output.
    ForceQuote(ForceQuote),
    /// `FORCE_NOT_NULL`: columns whose null string is read as empty.
    ForceNotNull(Vec<String>),
    /// `FORCE_NULL`: columns whose quoted null string is read as null.
    ForceNull(Vec<String>),
    /// `ENCODING`: the file's character encoding.
    Encoding(String),
}

const KNOWN_OPTIONS: &str =
    "FORMAT, FREEZE, DELIMITER, NULL, HEADER, QUOTE, ESCAPE, FORCE_QUOTE, FORCE_NOT_NULL, FORCE_NULL and ENCODING";

impl CopyOption {
    /// The option as it goes into `WITH (...)`.
    pub(super) fn render(&self) -> Result<String> {
        let list = |columns: &[String]| format!("({})", columns.join(", "));
        let boolean = |b: bool| if b { "true" } else { "false" };
        Ok(match self {
            CopyOption::Format(f) => {
                format!(
                    "FORMAT {}",
                    match f {
                        Format::Text => "text",
                        Format::Csv => "csv",
                        Format::Binary => "binary",
                    }
                )
            }
            CopyOption::Freeze(b) => format!("FREEZE {}", boolean(*b)),
            CopyOption::Delimiter(s) => format!("DELIMITER {}", quote_text(s)?),
            CopyOption::Null(s) => format!("NULL {}", quote_text(s)?),
            CopyOption::Header(h) => format!(
                "HEADER {}",
                match h {
                    Header::False => "false",
                    Header::True => "true",
                    Header::Match => "match",
                }
            ),
            CopyOption::Quote(s) => format!("QUOTE {}", quote_text(s)?),
            CopyOption::Escape(s) => format!("ESCAPE {}", quote_text(s)?),
            CopyOption::ForceQuote(ForceQuote::All) => "FORCE_QUOTE *".into(),
            CopyOption::ForceQuote(ForceQuote::Columns(c)) => format!("FORCE_QUOTE {}", list(c)),
            CopyOption::ForceNotNull(c) => format!("FORCE_NOT_NULL {}", list(c)),
            CopyOption::ForceNull(c) => format!("FORCE_NULL {}", list(c)),
            CopyOption::Encoding(s) => format!("ENCODING {}", quote_text(s)?),
        })
    }
}

/// The argument of a new-style option, as the grammar reads it.
enum Arg {
    None,
    /// A word (folded to lower case) or a quoted identifier.
    Name(String),
    Text(String),
    Number(String),
    Star,
    /// `(a, 'b', "C")`: the names, unquoted.
    List(Vec<String>),
}

/// The argument after an option name, up to the next `,` or `)`.
fn read_arg(cursor: &mut Cursor, option: &str) -> Result<Arg> {
    let Some(token) = cursor.peek().filter(|t| !t.is_symbol(",") && !t.is_symbol(")")) else {
        return Ok(Arg::None);
    };
    cursor.pos += 1;
    Ok(match token.kind {
        TokenKind::Word => Arg::Name(token.text.to_ascii_lowercase()),
        TokenKind::QuotedIdent => Arg::Name(token.text.clone()),
        TokenKind::String => Arg::Text(token.text.clone()),
        TokenKind::Number => Arg::Number(token.text.clone()),
        _ if token.is_symbol("*") => Arg::Star,
        _ if (token.is_symbol("-") || token.is_symbol("+"))
            && cursor.peek().is_some_and(|t| t.kind == TokenKind::Number) =>
        {
            let number = cursor.next().map(|t| t.text.as_str()).unwrap_or_default();
            Arg::Number(format!("{}{number}", token.text))
        }
        _ if token.is_symbol("(") => Arg::List(list_items(cursor, option)?),
        _ => return Err(refuse(format!("unexpected {} as the value of option {option}", describe(Some(token))))),
    })
}

/// `a, 'b', "C")` after an option's opening parenthesis: the names.
fn list_items(cursor: &mut Cursor, option: &str) -> Result<Vec<String>> {
    let mut items = Vec::new();
    loop {
        match cursor.next() {
            Some(t) if t.kind == TokenKind::Word => items.push(t.text.to_ascii_lowercase()),
            Some(t) if matches!(t.kind, TokenKind::QuotedIdent | TokenKind::String) => items.push(t.text.clone()),
            other => return Err(refuse(format!("{} in the list of option {option}", describe(other)))),
        }
        if cursor.eat_symbol(")") {
            return Ok(items);
        }
        if !cursor.eat_symbol(",") {
            return Err(refuse(format!(
                "expected , or ) in the list of option {option}, found {}",
                describe(cursor.peek())
            )));
        }
    }
}

fn text_arg(arg: Arg, option: &str) -> Result<String> {
    match arg {
        Arg::Name(s) | Arg::Text(s) | Arg::Number(s) => Ok(s),
        Arg::Star => Ok("*".into()),
        Arg::None => Err(refuse(format!("option {option} requires a value"))),
        Arg::List(_) => Err(refuse(format!("option {option} takes a single value, not a list"))),
    }
}

/// A Boolean, or for HEADER also `match`, as PostgreSQL reads them.
fn header_arg(arg: Arg, option: &str) -> Result<Header> {
    let word = match arg {
        Arg::None => return Ok(Header::True),
        Arg::Number(n) if n == "1" => return Ok(Header::True),
        Arg::Number(n) if n == "0" => return Ok(Header::False),
        Arg::Name(s) | Arg::Text(s) => s.to_ascii_lowercase(),
        _ => String::new(),
    };
    match word.as_str() {
        "true" | "on" => Ok(Header::True),
        "false" | "off" => Ok(Header::False),
        "match" if option == "header" => Ok(Header::Match),
        _ if option == "header" => Err(refuse("option HEADER requires a Boolean value or \"match\"")),
        _ => Err(refuse(format!("option {} requires a Boolean value", option.to_uppercase()))),
    }
}

fn columns_arg(arg: Arg, option: &str) -> Result<Vec<String>> {
    match arg {
        Arg::List(names) => Ok(names.iter().map(|n| quote_ident(n)).collect()),
        _ => Err(refuse(format!("option {} needs a list of column names", option.to_uppercase()))),
    }
}

/// A new-style option from its name and argument.
fn option(name: &str, arg: Arg) -> Result<CopyOption> {
    Ok(match name {
        "format" => match text_arg(arg, name)?.to_ascii_lowercase().as_str() {
            "text" => CopyOption::Format(Format::Text),
            "csv" => CopyOption::Format(Format::Csv),
            "binary" => CopyOption::Format(Format::Binary),
            other => return Err(refuse(format!("COPY format {other:?} not recognized"))),
        },
        "freeze" => CopyOption::Freeze(header_arg(arg, name)? == Header::True),
        "delimiter" => CopyOption::Delimiter(text_arg(arg, name)?),
        "null" => CopyOption::Null(text_arg(arg, name)?),
        "header" => CopyOption::Header(header_arg(arg, name)?),
        "quote" => CopyOption::Quote(text_arg(arg, name)?),
        "escape" => CopyOption::Escape(text_arg(arg, name)?),
        "force_quote" if matches!(arg, Arg::Star) => CopyOption::ForceQuote(ForceQuote::All),
        "force_quote" => CopyOption::ForceQuote(ForceQuote::Columns(columns_arg(arg, name)?)),
        "force_not_null" => CopyOption::ForceNotNull(columns_arg(arg, name)?),
        "force_null" => CopyOption::ForceNull(columns_arg(arg, name)?),
        "encoding" => CopyOption::Encoding(text_arg(arg, name)?),
        other => return Err(refuse(format!("unknown COPY option {other:?}: copy_expert accepts {KNOWN_OPTIONS}"))),
    })
}

/// `(name [value], ...)`, the opening parenthesis just read.
pub(super) fn new_style_options(cursor: &mut Cursor) -> Result<Vec<CopyOption>> {
    let mut options = Vec::new();
    loop {
        let token = cursor.next();
        let name = match token.map(|t| &t.kind) {
            Some(TokenKind::Word) => token.map(|t| t.text.to_ascii_lowercase()).unwrap_or_default(),
            Some(TokenKind::QuotedIdent) => token.map(|t| t.text.clone()).unwrap_or_default(),
            _ => return Err(refuse(format!("expected a COPY option name, found {}", describe(token)))),
        };
        let arg = read_arg(cursor, &name)?;
        options.push(option(&name, arg)?);
        if cursor.eat_symbol(")") {
            return Ok(options);
        }
        if !cursor.eat_symbol(",") {
            return Err(refuse(format!("expected , or ) in the COPY options, found {}", describe(cursor.peek()))));
        }
    }
}

/// The pre-9.0 options (`CSV HEADER DELIMITER AS ','`...), up to the first
/// token that starts none.
pub(super) fn legacy_options(cursor: &mut Cursor) -> Result<Vec<CopyOption>> {
    let mut options = Vec::new();
    let string = |cursor: &mut Cursor, option: &str| -> Result<String> {
        cursor.eat_word("as");
        match cursor.next() {
            Some(t) if t.kind == TokenKind::String => Ok(t.text.clone()),
            other => Err(refuse(format!("option {option} needs a string constant, found {}", describe(other)))),
        }
    };
    let columns = |cursor: &mut Cursor, option: &str| {
        names(cursor).map_err(|why| refuse(format!("option {option} needs column names: {why}")))
    };
    while let Some(token) = cursor.peek().filter(|t| t.kind == TokenKind::Word && !t.is_word("where")) {
        cursor.pos += 1;
        options.push(match token.text.to_ascii_lowercase().as_str() {
            "binary" => CopyOption::Format(Format::Binary),
            "csv" => CopyOption::Format(Format::Csv),
            "freeze" => CopyOption::Freeze(true),
            "header" => CopyOption::Header(Header::True),
            "delimiter" => CopyOption::Delimiter(string(cursor, "DELIMITER")?),
            "null" => CopyOption::Null(string(cursor, "NULL")?),
            "quote" => CopyOption::Quote(string(cursor, "QUOTE")?),
            "escape" => CopyOption::Escape(string(cursor, "ESCAPE")?),
            "encoding" => CopyOption::Encoding(string(cursor, "ENCODING")?),
            "force" if cursor.eat_word("quote") => CopyOption::ForceQuote(if cursor.eat_symbol("*") {
                ForceQuote::All
            } else {
                ForceQuote::Columns(columns(cursor, "FORCE QUOTE")?)
            }),
            "force" if cursor.eat_word("not") && cursor.eat_word("null") => {
                CopyOption::ForceNotNull(columns(cursor, "FORCE NOT NULL")?)
            }
            "force" if cursor.eat_word("null") => CopyOption::ForceNull(columns(cursor, "FORCE NULL")?),
            "force" => {
                return Err(refuse(format!(
                    "FORCE must be followed by QUOTE, NOT NULL or NULL, found {}",
                    describe(cursor.peek())
                )));
            }
            other => return Err(refuse(format!("unknown COPY option {other:?}: copy_expert accepts {KNOWN_OPTIONS}"))),
        });
    }
    Ok(options)
}
