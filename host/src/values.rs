//! Result cells: PostgreSQL's binary wire format decoded into WIT values.
//!
//! Types with an exact WIT form map to it; dates, times, uuid, inet,
//! intervals, int2vector and oidvector become text in PostgreSQL's own
//! output style; json, jsonb and arrays become JSON text. A statement with
//! a column of any other type is read in the text format instead
//! ([`decode_text`]).

use std::error::Error as StdError;

use byteorder::{BigEndian, ReadBytesExt};
use fallible_iterator::FallibleIterator;
use postgres_types::FromSql;
/// A column's type as the server describes it, and its kind (rust-postgres's).
pub use postgres_types::{Kind, Type};

use crate::bindings::types::{Interval, Value};

mod temporal;
mod text;

pub use temporal::{clock_parts, date_parts, split_timestamp};
pub use text::{decode_text, text_is_checked};

type DecodeResult<T> = Result<T, Box<dyn StdError + Sync + Send>>;

/// A cell of any type in the binary format, its bytes as they came (`None`
/// for NULL), for [`decode`] to read later.
pub struct RawBytes<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawBytes<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> DecodeResult<RawBytes<'a>> {
        Ok(RawBytes(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> DecodeResult<RawBytes<'a>> {
        Ok(RawBytes(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether a column of `ty` is read in the binary format, which [`decode`]
/// knows; checked before the statement runs. A statement with any other
/// column is read in the text format ([`decode_text`]). float4, timestamptz
/// and money are among those: their text says more than their binary form
/// (float4 at its own precision, timestamptz in the session's time zone
/// with its offset, money as the session's locale prints it), and it is
/// what psycopg2 reads.
pub fn supported(ty: &Type) -> bool {
    match ty.kind() {
        Kind::Enum(_) => true,
        Kind::Array(member) => supported(member),
        Kind::Domain(base) => supported(base),
        _ => {
            matches!(
                *ty,
                Type::BOOL
                    | Type::INT2
                    | Type::INT4
                    | Type::INT8
                    | Type::OID
                    | Type::FLOAT8
                    | Type::NUMERIC
                    | Type::TEXT
                    | Type::VARCHAR
                    | Type::BPCHAR
                    | Type::NAME
                    | Type::UNKNOWN
                    | Type::CHAR
                    | Type::XML
                    | Type::BYTEA
                    | Type::JSON
                    | Type::JSONB
                    | Type::UUID
                    | Type::DATE
                    | Type::TIME
                    | Type::TIMETZ
                    | Type::TIMESTAMP
                    | Type::INTERVAL
                    | Type::INET
                    | Type::CIDR
                    | Type::VOID
            ) || ty.name() == "citext"
        }
    }
}

fn text(raw: &[u8]) -> DecodeResult<Value> {
    Ok(Value::Text(std::str::from_utf8(raw)?.to_string()))
}

/// `raw`, if it is exactly `len` bytes: the size of every `what` value.
fn sized<'a>(raw: &'a [u8], len: usize, what: &str) -> DecodeResult<&'a [u8]> {
    if raw.len() == len { Ok(raw) } else { Err(format!("a {what} value is {len} bytes, got {}", raw.len()).into()) }
}

/// PostgreSQL 15's text for a `"char"`: the byte itself, or `\ooo` when its
/// high bit is set (it is not a character of any encoding then).
fn single_char(raw: &[u8]) -> DecodeResult<String> {
    Ok(match sized(raw, 1, "\"char\"")?[0] {
        0 => String::new(),
        byte if byte.is_ascii() => char::from(byte).to_string(),
        byte => format!("\\{byte:03o}"),
    })
}

/// Decode one non-null cell of type `ty`. Bytes that are not a value of
/// `ty` as PostgreSQL sends it are an error, never a panic.
pub fn decode(ty: &Type, raw: &[u8]) -> DecodeResult<Value> {
    if let Kind::Array(member) = ty.kind() {
        if is_vector(ty) {
            return Ok(Value::Text(vector_text(member, raw)?));
        }
        return Ok(Value::Json(array_json(member, raw)?));
    }
    if let Kind::Domain(base) = ty.kind() {
        return decode(base, raw);
    }
    if let Kind::Enum(_) = ty.kind() {
        return text(raw);
    }
    Ok(match *ty {
        Type::BOOL => Value::Boolean(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
        Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
        Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
        Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
        Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
        Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
        Type::NUMERIC => Value::Numeric(numeric(raw)?),
        Type::MONEY => Value::Numeric(scaled(sized(raw, 8, "money")?.read_i64::<BigEndian>()?, 2)),
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        Type::JSON => Value::Json(std::str::from_utf8(raw)?.to_string()),
        Type::JSONB => match raw.split_first() {
            Some((1, body)) => Value::Json(std::str::from_utf8(body)?.to_string()),
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::UUID => Value::Text(uuid::Uuid::from_slice(raw)?.to_string()),
        Type::CHAR => Value::Text(single_char(raw)?),
        Type::DATE => Value::Text(temporal::date(sized(raw, 4, "date")?.read_i32::<BigEndian>()?)?),
        Type::TIME => Value::Text(temporal::time_of_day(sized(raw, 8, "time")?.read_i64::<BigEndian>()?)?),
        Type::TIMETZ => {
            let mut raw = sized(raw, 12, "timetz")?;
            let micros = raw.read_i64::<BigEndian>()?;
            let seconds_west = raw.read_i32::<BigEndian>()?;
            Value::Text(temporal::time_with_zone(micros, seconds_west)?)
        }
        Type::TIMESTAMP => {
            Value::Text(temporal::timestamp(sized(raw, 8, "timestamp")?.read_i64::<BigEndian>()?, false)?)
        }
        Type::TIMESTAMPTZ => {
            Value::Text(temporal::timestamp(sized(raw, 8, "timestamptz")?.read_i64::<BigEndian>()?, true)?)
        }
        Type::INTERVAL => {
            let mut raw = sized(raw, 16, "interval")?;
            let micros = raw.read_i64::<BigEndian>()?;
            let days = raw.read_i32::<BigEndian>()?;
            let months = raw.read_i32::<BigEndian>()?;
            let text = temporal::interval(months, days, micros);
            Value::Interval(Interval { months, days, microseconds: micros, text })
        }
        Type::INET | Type::CIDR => Value::Text(inet(raw)?),
        Type::VOID => Value::Null,
        _ => text(raw)?,
    })
}

/// int2vector and oidvector (`pg_index.indkey`, `pg_proc.proargtypes`):
/// arrays on the wire, but printed as their elements separated by spaces
/// (`1 2`), which is what psycopg2 returns for them.
fn is_vector(ty: &Type) -> bool {
    matches!(*ty, Type::INT2_VECTOR | Type::OID_VECTOR)
}

/// A vector's elements (never null) as the server prints them.
fn vector_text(member: &Type, raw: &[u8]) -> DecodeResult<String> {
    let array = postgres_protocol::types::array_from_sql(raw)?;
    let items: Vec<String> = array
        .values()
        .map(|v| match v.map(|raw| decode(member, raw)).transpose()? {
            Some(Value::Int(i)) => Ok(i.to_string()),
            _ => Err("a vector element that is not an integer".into()),
        })
        .collect()?;
    Ok(items.join(" "))
}

/// PostgreSQL's limit on array dimensions (MAXDIM).
const MAX_ARRAY_DIMENSIONS: usize = 6;

fn array_json(member: &Type, raw: &[u8]) -> DecodeResult<String> {
    let array = postgres_protocol::types::array_from_sql(raw)?;
    let dims: Vec<usize> = array.dimensions().map(|d| Ok(usize::try_from(d.len)?)).collect()?;
    if dims.len() > MAX_ARRAY_DIMENSIONS {
        return Err(format!("an array of {} dimensions (PostgreSQL allows {MAX_ARRAY_DIMENSIONS})", dims.len()).into());
    }
    // array_from_sql checked that the elements fill the dimensions exactly.
    let flat: Vec<String> = array
        .values()
        .map(|v| Ok(json_text(&v.map(|raw| decode(member, raw)).transpose()?.unwrap_or(Value::Null))))
        .collect()?;
    // PostgreSQL stores every empty array with no dimensions; a zero-length
    // dimension must not make nest build the others' worth of empty lists.
    if flat.is_empty() {
        return Ok("[]".into());
    }
    Ok(nest(&dims, &mut flat.into_iter()))
}

/// Elements (JSON texts) laid out in `dims` as nested JSON arrays.
fn nest(dims: &[usize], items: &mut std::vec::IntoIter<String>) -> String {
    match dims.split_first() {
        None => items.next().unwrap_or_else(|| "null".into()),
        Some((len, [])) => format!("[{}]", items.by_ref().take(*len).collect::<Vec<_>>().join(",")),
        Some((len, rest)) => format!("[{}]", (0..*len).map(|_| nest(rest, items)).collect::<Vec<_>>().join(",")),
    }
}

/// A value as JSON text, exactly: json and jsonb as the server sent them
/// (an integer of any size stays as written), numeric and text as strings,
/// bytes as `\\x` hex, a float that JSON cannot hold (NaN, infinities) as
/// its name.
pub fn json_text(value: &Value) -> String {
    let string = |s: &str| serde_json::Value::from(s).to_string();
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or_else(|| string(&float_name(*f)), |n| n.to_string()),
        Value::Numeric(n) | Value::Text(n) => string(n),
        Value::Interval(i) => string(&i.text),
        Value::Bytes(b) => string(&bytea_text(b)),
        Value::Json(j) => j.clone(),
    }
}

/// bytea as PostgreSQL prints it, in hex: `\x00ff`.
pub fn bytea_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("\\x{hex}")
}

/// The bytes of hex digits, two per byte (bytea's hex form without its
/// `\x`); `None` if they are not.
pub fn bytes_from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    hex.as_bytes().chunks(2).map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)).collect()
}

/// PostgreSQL's name for a float JSON cannot hold.
fn float_name(f: f64) -> String {
    match f {
        f if f.is_nan() => "NaN".into(),
        f if f > 0.0 => "Infinity".into(),
        _ => "-Infinity".into(),
    }
}

fn scaled(value: i64, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let unit = 10u64.pow(scale);
    format!("{sign}{}.{:0width$}", abs / unit, abs % unit, width = scale as usize)
}

/// numeric's binary form: base-10000 digits with weight, sign and scale.
fn numeric(mut raw: &[u8]) -> DecodeResult<String> {
    let ndigits = raw.read_i16::<BigEndian>()?;
    let weight = raw.read_i16::<BigEndian>()?;
    let sign = raw.read_u16::<BigEndian>()?;
    let dscale = usize::try_from(raw.read_i16::<BigEndian>()?).map_err(|_| "negative numeric scale")?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0 | 0x4000 => {}
        _ => return Err(format!("invalid numeric sign {sign:#06x}").into()),
    }
    let digits = (0..ndigits).map(|_| raw.read_i16::<BigEndian>()).collect::<Result<Vec<_>, _>>()?;
    if !raw.is_empty() || digits.iter().any(|d| !(0..10_000).contains(d)) {
        return Err("invalid numeric digits".into());
    }
    let digit = |i: i32| -> i16 { if i >= 0 && (i as usize) < digits.len() { digits[i as usize] } else { 0 } };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight as i32 {
            let d = digit(i);
            if i == 0 {
                out += &d.to_string();
            } else {
                out += &format!("{d:04}");
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight as i32 + 1;
        while frac.len() < dscale {
            frac += &format!("{:04}", digit(i));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out += &frac;
    }
    Ok(out)
}

fn inet(raw: &[u8]) -> DecodeResult<String> {
    let [family, bits, is_cidr, len, addr @ ..] = raw else {
        return Err("short inet value".into());
    };
    let address = match (*family, *len, addr) {
        (2, 4, [a, b, c, d]) => std::net::IpAddr::from([*a, *b, *c, *d]),
        (3, 16, bytes) if bytes.len() == 16 => {
            let octets: [u8; 16] = bytes.try_into()?;
            std::net::IpAddr::from(octets)
        }
        _ => return Err("invalid inet value".into()),
    };
    let full = if address.is_ipv4() { 32 } else { 128 };
    if *bits > full {
        return Err(format!("invalid inet mask length {bits}").into());
    }
    Ok(if *is_cidr != 0 || *bits != full { format!("{address}/{bits}") } else { address.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits, weight] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics() {
        assert_eq!(numeric(&numeric_bytes(2, 1, 0, 2, &[12, 3456])).unwrap(), "123456.00");
        assert_eq!(numeric(&numeric_bytes(2, 0, 0x4000, 3, &[1, 5000])).unwrap(), "-1.500");
        assert_eq!(numeric(&numeric_bytes(1, -1, 0, 4, &[123])).unwrap(), "0.0123");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert_eq!(scaled(-1234, 2), "-12.34");
    }

    /// Decode `raw` as `ty`, which must fail cleanly.
    fn refused(ty: &Type, raw: &[u8]) -> String {
        match decode(ty, raw) {
            Ok(v) => panic!("{ty} {raw:?} decoded to {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn text_of(ty: &Type, raw: &[u8]) -> String {
        match decode(ty, raw).unwrap() {
            Value::Text(t) => t,
            Value::Interval(i) => i.text,
            other => panic!("{ty}: {other:?}"),
        }
    }

    #[test]
    fn temporal_values_from_the_wire() {
        // Past chrono's range, which used to panic the host.
        let days_to_300000 = 108_842_265i32;
        assert_eq!(text_of(&Type::DATE, &days_to_300000.to_be_bytes()), "300000-01-01");
        assert_eq!(text_of(&Type::DATE, &i32::MAX.to_be_bytes()), "infinity");
        let last = 9_223_371_331_199_999_999i64;
        assert_eq!(text_of(&Type::TIMESTAMP, &last.to_be_bytes()), "294276-12-31 23:59:59.999999");
        assert_eq!(text_of(&Type::TIMESTAMPTZ, &last.to_be_bytes()), "294276-12-31 23:59:59.999999+00");
        assert_eq!(text_of(&Type::TIMESTAMPTZ, &i64::MIN.to_be_bytes()), "-infinity");
        let timetz = [3_723_000_001i64.to_be_bytes().as_slice(), &(-19_800i32).to_be_bytes()].concat();
        assert_eq!(text_of(&Type::TIMETZ, &timetz), "01:02:03.000001+05:30");
        let interval = [(-1i64).to_be_bytes().as_slice(), &1i32.to_be_bytes(), &(-12i32).to_be_bytes()].concat();
        assert_eq!(text_of(&Type::INTERVAL, &interval), "-1 years +1 day -00:00:00.000001");
        let dates = array_bytes(1082, &[Some(&days_to_300000.to_be_bytes()), None]);
        assert_eq!(decode(&Type::DATE_ARRAY, &dates).unwrap(), Value::Json(r#"["300000-01-01",null]"#.into()));
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        assert!(refused(&Type::DATE, &(i32::MAX - 1).to_be_bytes()).contains("out of range"));
        assert!(refused(&Type::DATE, &[0, 0, 0]).contains("4 bytes"));
        assert!(refused(&Type::DATE, &[0; 5]).contains("4 bytes"));
        assert!(refused(&Type::TIMESTAMP, &(i64::MIN + 1).to_be_bytes()).contains("out of range"));
        assert!(refused(&Type::TIMESTAMPTZ, &(-211_813_488_000_000_001i64).to_be_bytes()).contains("out of range"));
        assert!(refused(&Type::TIME, &(-1i64).to_be_bytes()).contains("out of range"));
        let west_min = [0i64.to_be_bytes().as_slice(), &i32::MIN.to_be_bytes()].concat();
        assert!(refused(&Type::TIMETZ, &west_min).contains("out of range"));
        refused(&Type::INTERVAL, &[0; 15]);
        refused(&Type::MONEY, &[0; 7]);
        refused(&Type::CHAR, &[]);
        refused(&Type::NUMERIC, &numeric_bytes(1, 0, 0, 0, &[10_000]));
        refused(&Type::NUMERIC, &numeric_bytes(1, 0, 0, -1, &[1]));
        refused(&Type::NUMERIC, &numeric_bytes(1, 0, 0x1234, 0, &[1]));
        refused(&Type::NUMERIC, &numeric_bytes(2, 0, 0, 0, &[1]));
        refused(&Type::INET, &[2, 33, 0, 4, 10, 0, 0, 1]);
        refused(&Type::DATE_ARRAY, &array_bytes(1082, &[Some(&[1, 2])]));
        // Seven dimensions of one element: more than PostgreSQL ever sends.
        let mut deep = [7i32, 0, 1082].iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        deep.extend((0..7).flat_map(|_| [1i32, 1]).flat_map(i32::to_be_bytes));
        deep.extend([4i32, 0].iter().flat_map(|x| x.to_be_bytes()));
        assert!(refused(&Type::DATE_ARRAY, &deep).contains("dimensions"));
    }

    #[test]
    fn an_empty_dimension_builds_no_lists() {
        // [i32::MAX][0]: no elements, and no two billion empty lists either.
        let raw = [2i32, 0, 1082, i32::MAX, 1, 0, 1].iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(decode(&Type::DATE_ARRAY, &raw).unwrap(), Value::Json("[]".into()));
        let empty = [0i32, 0, 1082].iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(decode(&Type::DATE_ARRAY, &empty).unwrap(), Value::Json("[]".into()));
    }

    #[test]
    fn vectors_print_as_the_server_prints_them() {
        let two = array_bytes(21, &[Some(&1i16.to_be_bytes()), Some(&2i16.to_be_bytes())]);
        assert_eq!(text_of(&Type::INT2_VECTOR, &two), "1 2");
        assert_eq!(text_of(&Type::OID_VECTOR, &array_bytes(26, &[Some(&u32::MAX.to_be_bytes())])), "4294967295");
        assert_eq!(
            text_of(&Type::OID_VECTOR, &[0i32, 0, 26].iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<_>>()),
            ""
        );
        let vectors = array_bytes(22, &[Some(&two), None]);
        assert_eq!(decode(&Type::INT2_VECTOR_ARRAY, &vectors).unwrap(), Value::Json(r#"["1 2",null]"#.into()));
        refused(&Type::INT2_VECTOR, &array_bytes(21, &[None]));
    }

    #[test]
    fn single_chars_print_as_postgresql_15() {
        assert_eq!(text_of(&Type::CHAR, b"a"), "a");
        assert_eq!(text_of(&Type::CHAR, &[0]), "");
        assert_eq!(text_of(&Type::CHAR, &[0xe9]), "\\351");
    }

    /// A one-dimensional array in the binary format.
    fn array_bytes(element_oid: i32, items: &[Option<&[u8]>]) -> Vec<u8> {
        let header = [1, i32::from(items.iter().any(Option::is_none)), element_oid, items.len() as i32, 1];
        let mut raw: Vec<u8> = header.iter().flat_map(|x| x.to_be_bytes()).collect();
        for item in items {
            match item {
                Some(bytes) => {
                    raw.extend((bytes.len() as i32).to_be_bytes());
                    raw.extend_from_slice(bytes);
                }
                None => raw.extend((-1i32).to_be_bytes()),
            }
        }
        raw
    }
}
