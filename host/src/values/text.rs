//! Result cells in PostgreSQL's text output, for statements with a column
//! the binary decoder does not know (xid, regtype, ranges, geometric types,
//! composites...): such a column comes back as the server prints it, as
//! psycopg2 returns it, and every other column of the statement as the
//! binary decoder would give it.

use postgres_types::{Kind, Type};

use super::DecodeResult;
use crate::bindings::types::{Interval, Value};

/// Whether reading `ty`'s text can fail on what a working server sends:
/// bytea in the escape format and intervals in another IntervalStyle are
/// refused (saying which setting to change), and arrays are parsed. Every
/// other type's text is kept as it came, or is a number or a boolean as
/// the server always prints it.
pub fn text_is_checked(ty: &Type) -> bool {
    if super::is_vector(ty) {
        return false;
    }
    match ty.kind() {
        Kind::Array(_) => true,
        Kind::Domain(base) => text_is_checked(base),
        _ => matches!(*ty, Type::BYTEA | Type::INTERVAL),
    }
}

/// Decode one non-null cell of type `ty` from the server's text output.
pub fn decode_text(ty: &Type, text: &str) -> DecodeResult<Value> {
    if super::is_vector(ty) {
        return Ok(Value::Text(text.to_string()));
    }
    if let Kind::Array(member) = ty.kind() {
        return Ok(Value::Json(array_json(member, text)?));
    }
    if let Kind::Domain(base) = ty.kind() {
        return decode_text(base, text);
    }
    Ok(match *ty {
        Type::BOOL => Value::Boolean(match text {
            "t" => true,
            "f" => false,
            _ => return Err(format!("{text:?} is not a boolean").into()),
        }),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => Value::Int(text.parse()?),
        Type::FLOAT4 | Type::FLOAT8 => Value::Float(float(text)?),
        Type::NUMERIC => Value::Numeric(text.to_string()),
        Type::BYTEA => match text.strip_prefix("\\x") {
            Some(hex) => Value::Bytes(super::bytes_from_hex(hex).ok_or("bytea: not hex digits, two per byte")?),
            None => return Err("bytea in escape format: set bytea_output to hex".into()),
        },
        Type::JSON | Type::JSONB => Value::Json(text.to_string()),
        Type::INTERVAL => Value::Interval(interval(text)?),
        Type::VOID => Value::Null,
        // Text, dates and times, uuid, inet, enums (the binary decoder gives
        // these the server's own text too), and every type without a form.
        _ => Value::Text(text.to_string()),
    })
}

/// An interval as PostgreSQL prints it with IntervalStyle `postgres`
/// (`1 year 2 mons -3 days +04:05:06.7`), its text kept.
fn interval(text: &str) -> DecodeResult<Interval> {
    let unreadable = || format!("interval {text:?}: not in IntervalStyle postgres (set IntervalStyle to postgres)");
    let (mut months, mut days, mut microseconds) = (0i64, 0i64, 0i64);
    let mut words = text.split(' ').peekable();
    while let Some(word) = words.next() {
        if word.contains(':') {
            microseconds = clock_micros(word).ok_or_else(unreadable)?;
            continue;
        }
        let n: i64 = word.parse().map_err(|_| unreadable())?;
        match words.next().ok_or_else(unreadable)?.trim_end_matches('s') {
            "year" => months += n * 12,
            "mon" => months += n,
            "day" => days += n,
            _ => return Err(unreadable().into()),
        }
    }
    Ok(Interval {
        months: i32::try_from(months).map_err(|_| unreadable())?,
        days: i32::try_from(days).map_err(|_| unreadable())?,
        microseconds,
        text: text.to_string(),
    })
}

/// `[+-]H+:MM:SS[.ffffff]` in microseconds.
fn clock_micros(clock: &str) -> Option<i64> {
    let (negative, clock) = match clock.as_bytes().first()? {
        b'-' => (true, &clock[1..]),
        b'+' => (false, &clock[1..]),
        _ => (false, clock),
    };
    let mut parts = clock.splitn(3, ':');
    let hours: i128 = parts.next()?.parse().ok()?;
    let minutes: i128 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (seconds, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i128 = seconds.parse().ok()?;
    let micros: i128 = if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").parse().ok()? };
    let total = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros;
    i64::try_from(if negative { -total } else { total }).ok()
}

/// A float as PostgreSQL prints it (`NaN`, `Infinity`, `-Infinity` included).
fn float(text: &str) -> DecodeResult<f64> {
    Ok(match text {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        _ => text.parse()?,
    })
}

/// The elements' separator in an array of `member`: `;` for box, `,` else.
fn delimiter(member: &Type) -> u8 {
    if *member == Type::BOX { b';' } else { b',' }
}

/// An array literal (`{1,NULL,"a b"}`, nested, with or without explicit
/// bounds) as JSON, each element decoded as `member`.
fn array_json(member: &Type, text: &str) -> DecodeResult<String> {
    // Bounds other than 1 are printed first: `[0:1]={a,b}`.
    let body = match text.strip_prefix('[') {
        Some(_) => text.split_once('=').map(|(_, body)| body).ok_or("array bounds without `=`")?,
        None => text,
    };
    let mut parser = ArrayParser { text: body.as_bytes(), at: 0, delimiter: delimiter(member), member };
    let value = parser.array(0)?;
    if parser.at != parser.text.len() {
        return Err("text after the end of an array".into());
    }
    Ok(value)
}

struct ArrayParser<'a> {
    text: &'a [u8],
    at: usize,
    delimiter: u8,
    member: &'a Type,
}

impl ArrayParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> DecodeResult<()> {
        match self.peek() {
            Some(b) if b == byte => {
                self.at += 1;
                Ok(())
            }
            _ => Err(format!("an array literal lacks `{}` at byte {}", byte as char, self.at).into()),
        }
    }

    fn array(&mut self, depth: usize) -> DecodeResult<String> {
        if depth > super::MAX_ARRAY_DIMENSIONS {
            return Err("an array literal nested too deep".into());
        }
        self.expect(b'{')?;
        let mut items = Vec::new();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok("[]".into());
        }
        loop {
            items.push(match self.peek() {
                Some(b'{') => self.array(depth + 1)?,
                Some(b'"') => self.element(false)?,
                _ => self.element(true)?,
            });
            match self.peek() {
                Some(b'}') => {
                    self.at += 1;
                    return Ok(format!("[{}]", items.join(",")));
                }
                Some(b) if b == self.delimiter => self.at += 1,
                _ => return Err(format!("an array literal is malformed at byte {}", self.at).into()),
            }
        }
    }

    /// One element, quoted (`"..."` with backslash escapes) or bare (where
    /// `NULL` is null).
    fn element(&mut self, bare: bool) -> DecodeResult<String> {
        let mut raw = Vec::new();
        if bare {
            while let Some(b) = self.peek().filter(|&b| b != self.delimiter && b != b'}') {
                raw.push(b);
                self.at += 1;
            }
            if raw == b"NULL" {
                return Ok("null".into());
            }
        } else {
            self.expect(b'"')?;
            loop {
                match self.peek().ok_or("an unterminated quoted array element")? {
                    b'"' => break,
                    b'\\' => {
                        self.at += 1;
                        raw.push(self.peek().ok_or("an array element ends in a backslash")?);
                    }
                    b => raw.push(b),
                }
                self.at += 1;
            }
            self.at += 1;
        }
        let text = std::str::from_utf8(&raw)?;
        Ok(super::json_text(&decode_text(self.member, text)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ty: &Type, text: &str) -> String {
        match decode_text(ty, text).unwrap() {
            Value::Json(j) => j,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scalars_as_the_binary_decoder_gives_them() {
        assert_eq!(decode_text(&Type::BOOL, "t").unwrap(), Value::Boolean(true));
        assert_eq!(decode_text(&Type::INT8, "-9223372036854775808").unwrap(), Value::Int(i64::MIN));
        assert_eq!(decode_text(&Type::FLOAT8, "-Infinity").unwrap(), Value::Float(f64::NEG_INFINITY));
        assert_eq!(decode_text(&Type::NUMERIC, "1.50").unwrap(), Value::Numeric("1.50".into()));
        assert_eq!(decode_text(&Type::BYTEA, "\\x00ff").unwrap(), Value::Bytes(vec![0, 255]));
        assert_eq!(decode_text(&Type::XID, "742").unwrap(), Value::Text("742".into()));
        assert!(decode_text(&Type::BOOL, "yes").is_err());
        assert!(decode_text(&Type::BYTEA, "\\x0").is_err());
    }

    #[test]
    fn intervals_keep_their_parts_and_text() {
        let parts = |text: &str| match decode_text(&Type::INTERVAL, text).unwrap() {
            Value::Interval(i) => (i.months, i.days, i.microseconds, i.text),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parts("1 year 2 mons -3 days +04:05:06.7"),
            (14, -3, 14_706_700_000, "1 year 2 mons -3 days +04:05:06.7".into())
        );
        assert_eq!(parts("-00:00:00.000001"), (0, 0, -1, "-00:00:00.000001".into()));
        assert_eq!(parts("00:00:00"), (0, 0, 0, "00:00:00".into()));
        assert_eq!(parts("-178956970 years -8 mons"), (-2_147_483_648, 0, 0, "-178956970 years -8 mons".into()));
        assert_eq!(parts("2562047788:00:54.775807").2, i64::MAX);
        assert_eq!(parts("-2562047788:00:54.775808").2, i64::MIN);
        for other_style in ["P1Y2M", "@ 1 year", "1-2"] {
            assert!(decode_text(&Type::INTERVAL, other_style).is_err(), "{other_style}");
        }
    }

    #[test]
    fn array_literals() {
        assert_eq!(json(&Type::INT4_ARRAY, "{1,NULL,3}"), "[1,null,3]");
        assert_eq!(json(&Type::INT4_ARRAY, "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
        assert_eq!(json(&Type::INT4_ARRAY, "[0:1]={5,6}"), "[5,6]");
        assert_eq!(json(&Type::TEXT_ARRAY, r#"{"a \"b\"","NULL",NULL,"{,}"}"#), r#"["a \"b\"","NULL",null,"{,}"]"#);
        assert_eq!(json(&Type::BOX_ARRAY, "{(1,1),(0,0);(2,2),(1,1)}"), r#"["(1,1),(0,0)","(2,2),(1,1)"]"#);
        assert_eq!(json(&Type::XID_ARRAY, "{}"), "[]");
        assert_eq!(json(&Type::OID_VECTOR_ARRAY, r#"{"1 2",NULL,""}"#), r#"["1 2",null,""]"#);
        assert_eq!(decode_text(&Type::INT2_VECTOR, "1 2").unwrap(), Value::Text("1 2".into()));
        for bad in ["{1,2", "{1}}", "1,2}", "{\"a}", "[1:2]{1,2}"] {
            assert!(decode_text(&Type::INT4_ARRAY, bad).is_err(), "{bad}");
        }
    }
}
