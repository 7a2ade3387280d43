//! PostgreSQL's lexical rules, after its own scanner (`src/backend/parser/scan.l`
//! and the `UESCAPE` look-ahead of `parser.c`): the one place in the guest that
//! decides where a token, a string or a comment starts and ends.
//!
//! Plain `'...'` strings mean different things depending on the server's
//! `standard_conforming_strings`, which a connection can change. [`tokens`]
//! reads the text both ways and refuses it when the readings differ, so what
//! the guest understood is what any server understands.

use crate::error::{Result, config};

/// How a plain `'...'` string reads: `standard_conforming_strings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scs {
    /// A backslash is an ordinary character (the default since 9.1).
    On,
    /// A backslash starts an escape, as in `E'...'`.
    Off,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or unquoted identifier; the text as written.
    Word,
    /// A `"quoted"` or `U&"quoted"` identifier; the text is the name.
    QuotedIdent,
    /// A string constant in any form (`'...'`, `E'...'`, `U&'...'`,
    /// `$tag$...$tag$`, continued over lines); the text is its value.
    String,
    /// A `B'...'` or `X'...'` bit string; the text is its canonical form.
    BitString,
    /// A numeric constant as written.
    Number,
    /// A positional parameter such as `$1`.
    Param,
    /// An operator or punctuation, as written (`::`, `<=`, `(`, `;`...).
    Symbol,
}

/// A token of SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// See [`TokenKind`]: the text as written, or the decoded value.
    pub text: String,
    /// Where the token starts in the source, in bytes.
    pub start: usize,
    /// Where it ends (exclusive), in bytes.
    pub end: usize,
    /// Whitespace or a comment separates this token from the one before.
    pub spaced: bool,
}

impl Token {
    /// Whether this is the keyword `word` (unquoted, any case).
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(word)
    }

    /// Whether this is the operator or punctuation `symbol`.
    pub fn is_symbol(&self, symbol: &str) -> bool {
        self.kind == TokenKind::Symbol && self.text == symbol
    }

    /// The token as the guest sends it to the server.
    pub fn render(&self) -> Result<String> {
        Ok(match self.kind {
            TokenKind::QuotedIdent => crate::sql::quote_ident(&self.text),
            TokenKind::String => crate::sql::quote_text(&self.text)?,
            _ => self.text.clone(),
        })
    }
}

/// Characters the scanner reads as white space (`\v` too, as PostgreSQL 16
/// does; 15 refuses it, so reading it as a space is never less safe).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'\x0b')
}

fn is_newline(b: u8) -> bool {
    matches!(b, b'\n' | b'\r')
}

/// `ident_start`: ASCII letters, `_` and every byte of a non-ASCII character.
fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// `ident_cont`.
fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// `op_chars`: the characters of multi-character operators.
fn is_op_char(b: u8) -> bool {
    b"~!@#^&|`?+-*/%<>=".contains(&b)
}

/// The longest operator PostgreSQL accepts (NAMEDATALEN - 1).
const MAX_OPERATOR: usize = 63;

/// A lexical error: what and where (a 1-based character position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// What is wrong.
    pub message: String,
    /// The 1-based character position.
    pub at: usize,
}

type Lexed<T> = std::result::Result<T, LexError>;

/// A `U&'...'` or `U&"..."` body still waiting for a possible `UESCAPE`.
#[derive(Debug, Clone)]
enum Raw {
    Token(Token),
    Unicode { body: String, ident: bool, start: usize, end: usize, spaced: bool },
}

/// How the body of a quoted string is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoted {
    /// `'...'` with standard_conforming_strings on, and `U&'...'`.
    Standard,
    /// `E'...'`, and `'...'` with standard_conforming_strings off.
    Escape,
    /// `B'...'` and `X'...'`: no doubled quotes, no escapes.
    Bits,
}

struct Scanner<'a> {
    sql: &'a str,
    b: &'a [u8],
    i: usize,
    scs: Scs,
    out: Vec<Raw>,
}

impl<'a> Scanner<'a> {
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn error(&self, byte: usize, message: impl Into<String>) -> LexError {
        LexError { message: message.into(), at: self.sql[..byte.min(self.sql.len())].chars().count() + 1 }
    }

    fn push(&mut self, kind: TokenKind, text: String, start: usize, spaced: bool) {
        self.out.push(Raw::Token(Token { kind, text, start, end: self.i, spaced }));
    }

    /// Skip white space and comments; whether there were any.
    fn skip_space(&mut self) -> Lexed<bool> {
        let from = self.i;
        loop {
            let c = self.at(self.i);
            if self.i < self.b.len() && is_space(c) {
                self.i += 1;
            } else if c == b'-' && self.at(self.i + 1) == b'-' {
                // A `--` comment ends at \n or \r.
                while self.i < self.b.len() && !is_newline(self.at(self.i)) {
                    self.i += 1;
                }
            } else if c == b'/' && self.at(self.i + 1) == b'*' {
                self.skip_block_comment()?;
            } else {
                return Ok(self.i > from);
            }
        }
    }

    /// A `/* */` comment, which nests.
    fn skip_block_comment(&mut self) -> Lexed<()> {
        let start = self.i;
        self.i += 2;
        let mut depth = 0usize;
        loop {
            match (self.at(self.i), self.at(self.i + 1)) {
                _ if self.i >= self.b.len() => return Err(self.error(start, "unterminated /* comment")),
                (b'/', b'*') => {
                    depth += 1;
                    self.i += 2;
                }
                (b'*', b'/') => {
                    self.i += 2;
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                _ => self.i += 1,
            }
        }
    }

    /// After a closing quote at `self.i - 1`: the position just past the
    /// opening quote of a continuation (`'a'` newline `'b'` is `'ab'`), if
    /// one follows. Only spaces and `--` comments, with a newline among them.
    fn continuation(&self) -> Option<usize> {
        let mut i = self.i;
        let mut newline = false;
        loop {
            let c = self.at(i);
            if i < self.b.len() && is_space(c) {
                newline |= is_newline(c);
                i += 1;
            } else if c == b'-' && self.at(i + 1) == b'-' {
                while i < self.b.len() && !is_newline(self.at(i)) {
                    i += 1;
                }
            } else {
                return (newline && c == b'\'').then_some(i + 1);
            }
        }
    }

    /// The body of a quoted string whose opening quote is just before
    /// `self.i`, continuations included; bytes, as escapes may make any.
    fn quoted(&mut self, start: usize, how: Quoted) -> Lexed<Vec<u8>> {
        let mut value = Vec::new();
        loop {
            if self.i >= self.b.len() {
                let what = if how == Quoted::Bits { "bit string literal" } else { "quoted string" };
                return Err(self.error(start, format!("unterminated {what}")));
            }
            match self.at(self.i) {
                b'\'' if how != Quoted::Bits && self.at(self.i + 1) == b'\'' => {
                    value.push(b'\'');
                    self.i += 2;
                }
                b'\'' => {
                    self.i += 1;
                    match self.continuation() {
                        Some(next) => self.i = next,
                        None => return Ok(value),
                    }
                }
                b'\\' if how == Quoted::Escape => self.escape(&mut value)?,
                c => {
                    value.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A backslash escape in an `E'...'` string, at `self.i`.
    fn escape(&mut self, value: &mut Vec<u8>) -> Lexed<()> {
        let start = self.i;
        let c = self.at(self.i + 1);
        if self.i + 1 >= self.b.len() {
            // A backslash just before the end: the string is unterminated.
            self.i += 1;
            return Ok(());
        }
        let digits = |from: usize, max: usize, ok: fn(u8) -> bool| {
            (from..from + max).take_while(|&k| k < self.b.len() && ok(self.b[k])).count()
        };
        match c {
            b'0'..=b'7' => {
                let n = digits(self.i + 1, 3, |d| matches!(d, b'0'..=b'7'));
                let code = u32::from_str_radix(&self.sql[self.i + 1..self.i + 1 + n], 8).unwrap_or(0);
                value.push((code & 0xff) as u8);
                self.i += 1 + n;
            }
            b'x' if self.at(self.i + 2).is_ascii_hexdigit() => {
                let n = digits(self.i + 2, 2, |d| d.is_ascii_hexdigit());
                value.push(u8::from_str_radix(&self.sql[self.i + 2..self.i + 2 + n], 16).unwrap_or(0));
                self.i += 2 + n;
            }
            b'u' | b'U' => {
                let code = self.unicode_escape()?;
                let code = if (0xd800..0xdc00).contains(&code) {
                    // A UTF-16 high surrogate must be followed at once by a low one.
                    let low = if self.at(self.i) == b'\\' && matches!(self.at(self.i + 1), b'u' | b'U') {
                        self.unicode_escape()?
                    } else {
                        0
                    };
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(self.error(start, "invalid Unicode surrogate pair"));
                    }
                    0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
                } else {
                    code
                };
                let ch = unicode_char(code).map_err(|why| self.error(start, why))?;
                value.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
            b'b' => self.simple_escape(value, 0x08),
            b'f' => self.simple_escape(value, 0x0c),
            b'n' => self.simple_escape(value, b'\n'),
            b'r' => self.simple_escape(value, b'\r'),
            b't' => self.simple_escape(value, b'\t'),
            // Any other character stands for itself (`\v` is `v` in 15).
            other => self.simple_escape(value, other),
        }
        Ok(())
    }

    fn simple_escape(&mut self, value: &mut Vec<u8>, byte: u8) {
        value.push(byte);
        self.i += 2;
    }

    /// `\uXXXX` or `\UXXXXXXXX` at `self.i`: the code, not yet checked.
    fn unicode_escape(&mut self) -> Lexed<u32> {
        let start = self.i;
        let want = if self.at(self.i + 1) == b'u' { 4 } else { 8 };
        let hex = self.b.get(self.i + 2..self.i + 2 + want).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let Some(hex) = hex else {
            return Err(self.error(start, "invalid Unicode escape: write \\uXXXX or \\UXXXXXXXX"));
        };
        self.i += 2 + want;
        u32::from_str_radix(std::str::from_utf8(hex).unwrap_or("0"), 16)
            .map_err(|_| self.error(start, "invalid Unicode escape value"))
    }

    /// A quoted string's bytes as text, as the server's encoding check does.
    fn text(&self, start: usize, bytes: Vec<u8>) -> Lexed<String> {
        if bytes.contains(&0) {
            return Err(self.error(start, "invalid byte sequence for encoding UTF8: 0x00 in a string"));
        }
        String::from_utf8(bytes).map_err(|_| self.error(start, "invalid byte sequence for encoding UTF8 in a string"))
    }

    /// `"..."` with `""` for a quote, opening quote just before `self.i`.
    fn quoted_ident(&mut self, start: usize) -> Lexed<String> {
        let mut name = Vec::new();
        loop {
            match (self.at(self.i), self.at(self.i + 1)) {
                _ if self.i >= self.b.len() => return Err(self.error(start, "unterminated quoted identifier")),
                (b'"', b'"') => {
                    name.push(b'"');
                    self.i += 2;
                }
                (b'"', _) => {
                    self.i += 1;
                    if name.is_empty() {
                        return Err(self.error(start, "zero-length delimited identifier"));
                    }
                    return self.text(start, name);
                }
                (c, _) => {
                    name.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// `$tag$` at `self.i` (the tag may be empty): its length.
    fn dollar_tag(&self) -> Option<usize> {
        let mut k = self.i + 1;
        if is_ident_start(self.at(k)) && k < self.b.len() {
            k += 1;
            while k < self.b.len() && (is_ident_start(self.b[k]) || self.b[k].is_ascii_digit()) {
                k += 1;
            }
        }
        (self.at(k) == b'$' && k < self.b.len()).then_some(k + 1 - self.i)
    }

    /// A number at `self.i` (a digit, or `.` then a digit), with the
    /// integer forms of PostgreSQL 16 (`0x1F`, `1_000`) as well.
    fn number(&mut self, start: usize, spaced: bool) -> Lexed<()> {
        let digits = |s: &Self, mut k: usize, ok: fn(u8) -> bool| {
            while ok(s.at(k)) || (s.at(k) == b'_' && ok(s.at(k + 1)) && k > start && ok(s.at(k - 1))) {
                k += 1;
            }
            k
        };
        let c1 = self.at(self.i + 1).to_ascii_lowercase();
        if self.at(self.i) == b'0' && matches!(c1, b'x' | b'o' | b'b') {
            let ok: fn(u8) -> bool = match c1 {
                b'x' => |d| d.is_ascii_hexdigit(),
                b'o' => |d| matches!(d, b'0'..=b'7'),
                _ => |d| matches!(d, b'0' | b'1'),
            };
            let from = if self.at(self.i + 2) == b'_' { self.i + 3 } else { self.i + 2 };
            let end = if ok(self.at(from)) { digits(self, from, ok) } else { from };
            if end == from {
                return Err(self.error(start, "trailing junk after numeric literal"));
            }
            self.i = end;
        } else {
            let dec = |d: u8| d.is_ascii_digit();
            self.i = digits(self, self.i, dec);
            if self.at(self.i) == b'.' && self.at(self.i + 1) == b'.' && self.i > start {
                // `1..` is the integer 1 and `..`.
                self.push(TokenKind::Number, self.sql[start..self.i].to_string(), start, spaced);
                return Ok(());
            }
            if self.at(self.i) == b'.' {
                self.i += 1;
                if dec(self.at(self.i)) {
                    self.i = digits(self, self.i, dec);
                }
            }
            if matches!(self.at(self.i), b'e' | b'E') {
                let sign = usize::from(matches!(self.at(self.i + 1), b'+' | b'-'));
                if dec(self.at(self.i + 1 + sign)) {
                    self.i = digits(self, self.i + 1 + sign, dec);
                } else {
                    return Err(self.error(start, "trailing junk after numeric literal"));
                }
            }
        }
        if is_ident_start(self.at(self.i)) && self.i < self.b.len() {
            return Err(self.error(start, "trailing junk after numeric literal"));
        }
        self.push(TokenKind::Number, self.sql[start..self.i].to_string(), start, spaced);
        Ok(())
    }

    /// An operator run at `self.i`, cut as PostgreSQL cuts it.
    fn operator(&mut self, start: usize, spaced: bool) -> Lexed<()> {
        let run = self.b[start..].iter().take_while(|&&c| is_op_char(c)).count();
        let text = &self.b[start..start + run];
        // A comment start inside the run ends the operator there.
        let mut n = (1..run).find(|&k| matches!(&text[k - 1..=k], b"/*" | b"--")).map_or(run, |k| k - 1);
        // `=-` is two operators; `?-` is one: a trailing + or - stays only
        // when the operator has a character that no SQL operator uses.
        if n > 1 && matches!(text[n - 1], b'+' | b'-') && !text[..n - 1].iter().any(|c| b"~!@#^&|`?%".contains(c)) {
            while n > 1 && matches!(text[n - 1], b'+' | b'-') {
                n -= 1;
            }
        }
        if n > MAX_OPERATOR {
            return Err(self.error(start, "operator too long"));
        }
        self.i = start + n;
        self.push(TokenKind::Symbol, self.sql[start..self.i].to_string(), start, spaced);
        Ok(())
    }

    fn run(mut self) -> Lexed<Vec<Raw>> {
        loop {
            let spaced = self.skip_space()?;
            if self.i >= self.b.len() {
                return Ok(self.out);
            }
            let start = self.i;
            let (c, c1, c2) = (self.at(start), self.at(start + 1), self.at(start + 2));
            match c {
                b'b' | b'B' | b'x' | b'X' if c1 == b'\'' => {
                    self.i += 2;
                    let body = self.quoted(start, Quoted::Bits)?;
                    let letter = c.to_ascii_uppercase();
                    let ok: fn(&u8) -> bool =
                        if letter == b'B' { |d| matches!(*d, b'0' | b'1') } else { u8::is_ascii_hexdigit };
                    if !body.iter().all(ok) {
                        let what = if letter == b'B' { "binary" } else { "hexadecimal" };
                        return Err(
                            self.error(start, format!("a {} bit string may hold only {what} digits", letter as char))
                        );
                    }
                    let text = format!("{}'{}'", letter as char, String::from_utf8_lossy(&body));
                    self.push(TokenKind::BitString, text, start, spaced);
                }
                b'n' | b'N' if c1 == b'\'' => {
                    // N'...' is the type name nchar, then a plain string.
                    self.i += 1;
                    self.push(TokenKind::Word, "nchar".into(), start, spaced);
                    self.plain_string(start + 1, false)?;
                }
                b'e' | b'E' if c1 == b'\'' => {
                    self.i += 2;
                    let bytes = self.quoted(start, Quoted::Escape)?;
                    let value = self.text(start, bytes)?;
                    self.push(TokenKind::String, value, start, spaced);
                }
                b'u' | b'U' if c1 == b'&' && (c2 == b'\'' || c2 == b'"') => {
                    self.i += 3;
                    let ident = c2 == b'"';
                    // Only ever read with standard_conforming_strings on: when it
                    // is off the server refuses U&'...' outright.
                    let body = if ident {
                        self.quoted_ident(start)?
                    } else {
                        let bytes = self.quoted(start, Quoted::Standard)?;
                        self.text(start, bytes)?
                    };
                    self.out.push(Raw::Unicode { body, ident, start, end: self.i, spaced });
                }
                b'\'' => self.plain_string(start, spaced)?,
                b'"' => {
                    self.i += 1;
                    let name = self.quoted_ident(start)?;
                    self.push(TokenKind::QuotedIdent, name, start, spaced);
                }
                b'$' => {
                    if let Some(len) = self.dollar_tag() {
                        let tag = &self.sql[start..start + len];
                        let body_start = start + len;
                        let Some(pos) = self.sql[body_start..].find(tag) else {
                            return Err(self.error(start, "unterminated dollar-quoted string"));
                        };
                        self.i = body_start + pos + len;
                        let value = self.sql[body_start..body_start + pos].to_string();
                        self.push(TokenKind::String, value, start, spaced);
                    } else if c1.is_ascii_digit() {
                        self.i += 1;
                        while self.at(self.i).is_ascii_digit() {
                            self.i += 1;
                        }
                        if is_ident_start(self.at(self.i)) && self.i < self.b.len() {
                            return Err(self.error(start, "trailing junk after parameter"));
                        }
                        self.push(TokenKind::Param, self.sql[start..self.i].to_string(), start, spaced);
                    } else {
                        self.i += 1;
                        self.push(TokenKind::Symbol, "$".into(), start, spaced);
                    }
                }
                b'0'..=b'9' => self.number(start, spaced)?,
                b'.' if c1.is_ascii_digit() => self.number(start, spaced)?,
                _ if is_ident_start(c) => {
                    while self.i < self.b.len() && is_ident_cont(self.b[self.i]) {
                        self.i += 1;
                    }
                    self.push(TokenKind::Word, self.sql[start..self.i].to_string(), start, spaced);
                }
                b':' if c1 == b':' || c1 == b'=' => self.symbol(start, 2, spaced),
                b'.' if c1 == b'.' => self.symbol(start, 2, spaced),
                _ if is_op_char(c) => self.operator(start, spaced)?,
                // Punctuation and any other single character.
                _ => self.symbol(start, 1, spaced),
            }
        }
    }

    fn symbol(&mut self, start: usize, len: usize, spaced: bool) {
        self.i = start + len;
        self.push(TokenKind::Symbol, self.sql[start..self.i].to_string(), start, spaced);
    }

    /// A `'...'` string at `start`, read as `self.scs` says.
    fn plain_string(&mut self, start: usize, spaced: bool) -> Lexed<()> {
        self.i = start + 1;
        let how = if self.scs == Scs::On { Quoted::Standard } else { Quoted::Escape };
        let bytes = self.quoted(start, how)?;
        let value = self.text(start, bytes)?;
        self.push(TokenKind::String, value, start, spaced);
        Ok(())
    }
}

/// A Unicode code point from an escape, as the server checks it.
fn unicode_char(code: u32) -> std::result::Result<char, &'static str> {
    if (0xd800..0xe000).contains(&code) {
        return Err("invalid Unicode surrogate pair");
    }
    char::from_u32(code).filter(|&c| c != '\0').ok_or("invalid Unicode escape value")
}

/// Decode a `U&` body with its escape character (`str_udeescape`).
fn unicode_unescape(body: &str, escape: char) -> std::result::Result<String, &'static str> {
    let chars: Vec<char> = body.chars().collect();
    let hex = |from: usize, n: usize| -> Option<u32> {
        let digits: String = chars.get(from..from + n)?.iter().collect();
        digits.chars().all(|c| c.is_ascii_hexdigit()).then(|| u32::from_str_radix(&digits, 16).ok()).flatten()
    };
    let mut out = String::new();
    let mut high: Option<u32> = None;
    let mut k = 0;
    while k < chars.len() {
        if chars[k] != escape {
            if high.is_some() {
                return Err("invalid Unicode surrogate pair");
            }
            out.push(chars[k]);
            k += 1;
            continue;
        }
        let (code, len) = if chars.get(k + 1) == Some(&escape) {
            if high.is_some() {
                return Err("invalid Unicode surrogate pair");
            }
            out.push(escape);
            k += 2;
            continue;
        } else if let Some(code) = hex(k + 1, 4) {
            (code, 5)
        } else if chars.get(k + 1) == Some(&'+')
            && let Some(code) = hex(k + 2, 6)
        {
            (code, 8)
        } else {
            return Err("invalid Unicode escape: write \\XXXX or \\+XXXXXX (with the UESCAPE character)");
        };
        k += len;
        match (high.take(), code) {
            (Some(h), 0xdc00..=0xdfff) => out.push(unicode_char(0x10000 + ((h - 0xd800) << 10) + (code - 0xdc00))?),
            (Some(_), _) | (None, 0xdc00..=0xdfff) => return Err("invalid Unicode surrogate pair"),
            (None, 0xd800..=0xdbff) => high = Some(code),
            (None, _) => out.push(unicode_char(code)?),
        }
    }
    if high.is_some() {
        return Err("invalid Unicode surrogate pair");
    }
    Ok(out)
}

/// Whether `c` may be a UESCAPE character (`check_uescapechar`).
fn valid_uescape(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_hexdigit() && !matches!(c, '+' | '\'' | '"') && !is_space(c as u8)
}

/// Resolve `U&` tokens and their optional `UESCAPE 'c'`, as parser.c does.
fn resolve_unicode(sql: &str, raw: Vec<Raw>) -> Lexed<Vec<Token>> {
    let at = |byte: usize| sql[..byte].chars().count() + 1;
    let mut tokens = Vec::with_capacity(raw.len());
    let mut items = raw.into_iter().peekable();
    while let Some(item) = items.next() {
        let (body, ident, start, mut end, spaced) = match item {
            Raw::Token(token) => {
                tokens.push(token);
                continue;
            }
            Raw::Unicode { body, ident, start, end, spaced } => (body, ident, start, end, spaced),
        };
        let mut escape = '\\';
        if matches!(items.peek(), Some(Raw::Token(t)) if t.is_word("uescape")) {
            items.next();
            let Some(Raw::Token(Token { kind: TokenKind::String, text, end: string_end, .. })) = items.next() else {
                return Err(LexError {
                    message: "UESCAPE must be followed by a simple string literal".into(),
                    at: at(start),
                });
            };
            let mut chars = text.chars();
            escape = match (chars.next(), chars.next()) {
                (Some(c), None) if valid_uescape(c) => c,
                _ => return Err(LexError { message: "invalid Unicode escape character".into(), at: at(start) }),
            };
            end = string_end;
        }
        let text =
            unicode_unescape(&body, escape).map_err(|message| LexError { message: message.into(), at: at(start) })?;
        let kind = if ident { TokenKind::QuotedIdent } else { TokenKind::String };
        tokens.push(Token { kind, text, start, end, spaced });
    }
    Ok(tokens)
}

/// Split `sql` into tokens as a server with the given
/// standard_conforming_strings would; comments and white space only mark
/// the next token [`Token::spaced`].
pub fn lex(sql: &str, scs: Scs) -> std::result::Result<Vec<Token>, LexError> {
    if let Some(byte) = sql.find('\0') {
        return Err(LexError {
            message: "the SQL contains a NUL character".into(),
            at: sql[..byte].chars().count() + 1,
        });
    }
    let raw = Scanner { sql, b: sql.as_bytes(), i: 0, scs, out: Vec::new() }.run()?;
    resolve_unicode(sql, raw)
}

/// The message for text whose two readings differ, given one that worked.
fn ambiguity(sql: &str, reading: &[Token]) -> String {
    // Only a plain '...' string reads differently; name the first with a backslash.
    let culprit = reading.iter().find(|t| {
        t.kind == TokenKind::String && sql[t.start..].starts_with('\'') && sql[t.start..t.end].contains('\\')
    });
    let place = match culprit {
        Some(t) => format!("the string {} at character {}", &sql[t.start..t.end], sql[..t.start].chars().count() + 1),
        None => "a '...' string with a backslash".to_string(),
    };
    format!(
        "{place} reads differently depending on standard_conforming_strings (a backslash is a plain character when \
         it is on, an escape when it is off): write it as E'...' with each backslash doubled, or without backslashes"
    )
}

fn lex_error(e: LexError) -> crate::bindings::types::Error {
    config(format!("{} at character {}", e.message, e.at))
}

/// Both readings of `sql`, or the error that refuses it: a lexical error, or
/// text that standard_conforming_strings would make mean two things.
pub fn both_readings(sql: &str) -> Result<(Vec<Token>, Vec<Token>)> {
    match (lex(sql, Scs::On), lex(sql, Scs::Off)) {
        (Ok(on), Ok(off)) => Ok((on, off)),
        (Err(e), Err(_)) => Err(lex_error(e)),
        (Ok(reading), Err(_)) | (Err(_), Ok(reading)) => Err(config(ambiguity(sql, &reading))),
    }
}

/// The tokens of `sql`, the same whatever standard_conforming_strings is;
/// anything else is refused with an error naming what is wrong.
pub fn tokens(sql: &str) -> Result<Vec<Token>> {
    let (on, off) = both_readings(sql)?;
    if on != off {
        return Err(config(ambiguity(sql, &on)));
    }
    Ok(on)
}

/// Whether two rendered tokens written side by side could read as one, or
/// differently: then a space goes between them.
fn would_run_together(before: char, after: char) -> bool {
    let wordish = |c: char| c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii();
    (wordish(before) && (wordish(after) || matches!(after, '\'' | '&')))
        || (before.is_ascii() && after.is_ascii() && is_op_char(before as u8) && is_op_char(after as u8))
        || (before == '.' && (after == '.' || after.is_ascii_digit()))
        || (before == ':' && matches!(after, ':' | '='))
        || (before == after && matches!(before, '\'' | '"'))
}

/// Render tokens as the guest sends them: words, numbers and operators as
/// written, every string as `E'...'`, every quoted identifier as `"..."`, no
/// comments, and one space where the source had white space or a comment
/// (or where two tokens would otherwise run together).
pub fn render(tokens: &[Token]) -> Result<String> {
    let mut out = String::new();
    for token in tokens {
        let text = token.render()?;
        if let (Some(before), Some(after)) = (out.chars().last(), text.chars().next())
            && (token.spaced || would_run_together(before, after))
        {
            out.push(' ');
        }
        out.push_str(&text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, String)> {
        tokens(sql).unwrap().into_iter().map(|t| (t.kind, t.text)).collect()
    }

    fn one(sql: &str) -> (TokenKind, String) {
        let mut all = kinds(sql);
        assert_eq!(all.len(), 1, "{sql:?}: {all:?}");
        all.remove(0)
    }

    fn err(sql: &str) -> String {
        tokens(sql).unwrap_err().message
    }

    #[test]
    fn comments_end_where_postgresql_ends_them() {
        // A -- comment ends at \r as well as \n.
        let words: Vec<_> = kinds("a --x\rb --y\nc -- z").into_iter().map(|(_, t)| t).collect();
        assert_eq!(words, ["a", "b", "c"]);
        // Block comments nest.
        assert_eq!(kinds("a /* x /* y */ TO PROGRAM */ b").len(), 2);
        assert!(err("a /* x /* y */ b").contains("unterminated /* comment"));
        // White space: \r \f \v too.
        assert_eq!(kinds("a\r\x0c\x0bb").len(), 2);
        let t = tokens("a /**/b c").unwrap();
        assert_eq!(t.iter().map(|t| t.spaced).collect::<Vec<_>>(), [false, true, true]);
    }

    #[test]
    fn operators_are_cut_as_postgresql_cuts_them() {
        let texts = |sql| kinds(sql).into_iter().map(|(_, t)| t).collect::<Vec<_>>();
        assert_eq!(texts("a+-b"), ["a", "+", "-", "b"]);
        assert_eq!(texts("a?-b"), ["a", "?-", "b"]);
        assert_eq!(texts("a*--c\nb"), ["a", "*", "b"]);
        assert_eq!(texts("a+/*c*/b"), ["a", "+", "b"]);
        assert_eq!(texts("a::text<=b"), ["a", "::", "text", "<=", "b"]);
        assert_eq!(texts("x:=1..2"), ["x", ":=", "1", "..", "2"]);
        assert_eq!(texts("$1 $ 1.5e-3 .5 0x1F 1_000"), ["$1", "$", "1.5e-3", ".5", "0x1F", "1_000"]);
        assert!(err("select 1e+").contains("trailing junk"));
        assert!(err("select 12abc").contains("trailing junk"));
        assert!(err("select $1a").contains("trailing junk after parameter"));
        assert!(err(&format!("select 1 {} 2", "<".repeat(64))).contains("operator too long"));
    }

    #[test]
    fn string_forms() {
        assert_eq!(one("'it''s'"), (TokenKind::String, "it's".into()));
        assert_eq!(one(r"E'a\'b\\c\n\x41\101\u00e9\U0001F600\q'"), (TokenKind::String, "a'b\\c\nAAé😀q".into()));
        assert_eq!(one(r"e'\uD83D\uDE00'"), (TokenKind::String, "😀".into()));
        assert!(err(r"E'\uD83D'").contains("surrogate"));
        assert!(err(r"E'\u12'").contains("invalid Unicode escape"));
        assert!(err(r"E'\000'").contains("byte sequence"));
        assert!(err(r"E'\xff'").contains("byte sequence"));
        assert_eq!(one(r"U&'d\0061t\+000061'"), (TokenKind::String, "data".into()));
        assert_eq!(one("U&'d!0061t!!' UESCAPE '!'"), (TokenKind::String, "dat!".into()));
        assert_eq!(one(r"U&'\D83D\DE00'"), (TokenKind::String, "😀".into()));
        assert_eq!(one("u&\"col!0041\" uescape '!'"), (TokenKind::QuotedIdent, "colA".into()));
        assert!(err("U&'x' UESCAPE 'ab'").contains("invalid Unicode escape character"));
        assert!(err("U&'x' UESCAPE 'a'").contains("invalid Unicode escape character"));
        assert!(err("U&'x' UESCAPE x").contains("UESCAPE must be followed"));
        assert!(err(r"U&'\00'").contains("invalid Unicode escape"));
        assert_eq!(one("$$it's -- $$"), (TokenKind::String, "it's -- ".into()));
        assert_eq!(one("$fn$ $x$ $$ $fn$"), (TokenKind::String, " $x$ $$ ".into()));
        assert_eq!(one("$é_1$x$é_1$"), (TokenKind::String, "x".into()));
        assert_eq!(kinds("a$b$c")[0], (TokenKind::Word, "a$b$c".into()));
        assert!(err("$a$ x $b$").contains("unterminated dollar-quoted"));
        // Continuation: only over white space or -- comments with a newline.
        assert_eq!(one("'a' -- c\r 'b'\n'c'"), (TokenKind::String, "abc".into()));
        assert_eq!(one("E'a'\n'\\n'"), (TokenKind::String, "a\n".into()));
        assert_eq!(kinds("'a' 'b'").len(), 2);
        assert_eq!(kinds("'a'/**/\n'b'").len(), 2);
        assert_eq!(kinds("N'x'"), [(TokenKind::Word, "nchar".into()), (TokenKind::String, "x".into())]);
        assert_eq!(one("b'0101'"), (TokenKind::BitString, "B'0101'".into()));
        assert_eq!(one("X'1f'"), (TokenKind::BitString, "X'1f'".into()));
        assert!(err("B'012'").contains("binary digits"));
        assert_eq!(one("\"a\"\"b\""), (TokenKind::QuotedIdent, "a\"b".into()));
        assert!(err("\"\"").contains("zero-length"));
        for unterminated in ["'abc", "E'abc\\'", "\"abc", "$$abc", "/* abc", "U&'x"] {
            assert!(err(unterminated).contains("unterminated"), "{unterminated}");
        }
        assert!(err("select 'a\0'").contains("NUL"));
    }

    #[test]
    fn standard_conforming_strings_must_not_matter() {
        // Backslash-free plain strings read the same both ways.
        assert_eq!(one("'a\"b'"), (TokenKind::String, "a\"b".into()));
        for sql in [r"'a\'", r"'a\b'", r"'x\' TO PROGRAM 'id' --'", r"N'\\'", r"'ok' UESCAPE '\'"] {
            let e = err(sql);
            assert!(e.contains("standard_conforming_strings") && e.contains("E'...'"), "{sql}: {e}");
        }
        assert!(err(r"x 'a\b'").contains(r"the string 'a\b' at character 3"));
        // E'' and $$ strings never depend on it.
        assert_eq!(one(r"E'a\\b'").1, r"a\b");
        assert_eq!(one(r"$$a\b$$").1, r"a\b");
    }

    #[test]
    fn rendering_is_canonical_and_stable() {
        let sql = "select/*c*/'it''s'::text,U&\"x\" ,$$a\\b$$ --c\r\n+-1 from\"t\"where a<-b and foo'x'";
        let rendered = render(&tokens(sql).unwrap()).unwrap();
        assert_eq!(rendered, "select E'it''s'::text,\"x\" ,E'a\\\\b' + -1 from\"t\"where a< -b and foo E'x'");
        assert_eq!(render(&tokens(&rendered).unwrap()).unwrap(), rendered);
        assert_eq!(render(&tokens("N'x'").unwrap()).unwrap(), "nchar E'x'");
    }
}
