//! Result cells: PostgreSQL's binary wire format decoded into WIT values.
//!
//! Types with an exact WIT form map to it; dates, times, uuid, inet and
//! intervals become text in PostgreSQL's own output style; json, jsonb and
//! arrays become JSON text. Any other type is refused with a hint to cast.

use std::error::Error as StdError;

use byteorder::{BigEndian, ReadBytesExt};
use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use fallible_iterator::FallibleIterator;
use postgres_types::{FromSql, Kind, Type};

use crate::bindings::types::Value;

type DecodeResult<T> = Result<T, Box<dyn StdError + Sync + Send>>;

/// A cell of any type, decoded from the binary format.
pub struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> DecodeResult<Cell> {
        decode(ty, raw).map(Cell)
    }

    fn from_sql_null(_: &Type) -> DecodeResult<Cell> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether [`decode`] knows `ty`; checked before any row is read, so an
/// unsupported column fails the statement with a clear message.
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
                    | Type::FLOAT4
                    | Type::FLOAT8
                    | Type::NUMERIC
                    | Type::MONEY
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
                    | Type::TIMESTAMPTZ
                    | Type::INTERVAL
                    | Type::INET
                    | Type::CIDR
                    | Type::VOID
            ) || ty.name() == "citext"
        }
    }
}

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date").and_hms_opt(0, 0, 0).expect("valid time")
}

fn text(raw: &[u8]) -> DecodeResult<Value> {
    Ok(Value::Text(std::str::from_utf8(raw)?.to_string()))
}

/// Decode one non-null cell of type `ty`.
pub fn decode(ty: &Type, mut raw: &[u8]) -> DecodeResult<Value> {
    if let Kind::Array(member) = ty.kind() {
        return Ok(Value::Json(array_json(member, raw)?.to_string()));
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
        Type::MONEY => Value::Numeric(scaled(raw.read_i64::<BigEndian>()?, 2)),
        Type::BYTEA => Value::Bytes(raw.to_vec()),
        Type::JSON => Value::Json(std::str::from_utf8(raw)?.to_string()),
        Type::JSONB => match raw.split_first() {
            Some((1, body)) => Value::Json(std::str::from_utf8(body)?.to_string()),
            _ => return Err("unsupported jsonb version".into()),
        },
        Type::UUID => Value::Text(uuid::Uuid::from_slice(raw)?.to_string()),
        Type::DATE => Value::Text(date(raw.read_i32::<BigEndian>()?)),
        Type::TIME => Value::Text(time_of_day(raw.read_i64::<BigEndian>()?)),
        Type::TIMETZ => {
            let micros = raw.read_i64::<BigEndian>()?;
            let west = raw.read_i32::<BigEndian>()?;
            Value::Text(format!("{}{}", time_of_day(micros), utc_offset(-west)))
        }
        Type::TIMESTAMP => Value::Text(timestamp(raw.read_i64::<BigEndian>()?, false)),
        Type::TIMESTAMPTZ => Value::Text(timestamp(raw.read_i64::<BigEndian>()?, true)),
        Type::INTERVAL => {
            let micros = raw.read_i64::<BigEndian>()?;
            let days = raw.read_i32::<BigEndian>()?;
            let months = raw.read_i32::<BigEndian>()?;
            Value::Text(interval(months, days, micros))
        }
        Type::INET | Type::CIDR => Value::Text(inet(raw)?),
        Type::VOID => Value::Null,
        _ => text(raw)?,
    })
}

fn array_json(member: &Type, raw: &[u8]) -> DecodeResult<serde_json::Value> {
    let array = postgres_protocol::types::array_from_sql(raw)?;
    let dims: Vec<usize> = array.dimensions().map(|d| Ok(d.len.max(0) as usize)).collect()?;
    let flat: Vec<serde_json::Value> = array
        .values()
        .map(|v| Ok(v.map(|raw| decode(member, raw)).transpose()?.map_or(serde_json::Value::Null, to_json)))
        .collect()?;
    fn nest(dims: &[usize], items: &mut std::vec::IntoIter<serde_json::Value>) -> serde_json::Value {
        match dims.split_first() {
            None => items.next().unwrap_or(serde_json::Value::Null),
            Some((len, [])) => items.by_ref().take(*len).collect(),
            Some((len, rest)) => (0..*len).map(|_| nest(rest, items)).collect(),
        }
    }
    if dims.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    Ok(nest(&dims, &mut flat.into_iter()))
}

/// A value as JSON, for array elements.
pub fn to_json(value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => b.into(),
        Value::Int(i) => i.into(),
        Value::Float(f) => serde_json::Number::from_f64(f).map_or_else(|| f.to_string().into(), Into::into),
        Value::Numeric(n) | Value::Text(n) => n.into(),
        Value::Bytes(b) => format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()).into(),
        Value::Json(j) => serde_json::from_str(&j).unwrap_or(serde_json::Value::String(j)),
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
    let dscale = raw.read_i16::<BigEndian>()?.max(0) as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits = (0..ndigits).map(|_| raw.read_i16::<BigEndian>()).collect::<Result<Vec<_>, _>>()?;
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

fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => (pg_epoch().date() + Duration::days(days.into())).format("%Y-%m-%d").to_string(),
    }
}

fn fraction(micros: i64) -> String {
    if micros == 0 { String::new() } else { format!(".{micros:06}").trim_end_matches('0').to_string() }
}

fn time_of_day(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let time = NaiveTime::from_num_seconds_from_midnight_opt((secs % 86_400) as u32, 0).unwrap_or_default();
    let hour = if secs == 86_400 { "24:00:00".to_string() } else { time.format("%H:%M:%S").to_string() };
    format!("{hour}{}", fraction(micros.rem_euclid(1_000_000)))
}

fn utc_offset(east_seconds: i32) -> String {
    let sign = if east_seconds < 0 { '-' } else { '+' };
    let abs = east_seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    match (m, s) {
        (0, 0) => format!("{sign}{h:02}"),
        (_, 0) => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}:{s:02}"),
    }
}

/// Timestamps print as PostgreSQL does with DateStyle ISO; timestamptz in UTC.
fn timestamp(micros: i64, utc: bool) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let at = pg_epoch() + Duration::microseconds(micros);
    let base = at.format("%Y-%m-%d %H:%M:%S").to_string();
    format!("{base}{}{}", fraction(micros.rem_euclid(1_000_000)), if utc { "+00" } else { "" })
}

/// intervals print as PostgreSQL's IntervalStyle postgres.
fn interval(months: i32, days: i32, micros: i64) -> String {
    let mut parts = Vec::new();
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n.abs() == 1 { one } else { many });
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        parts.push(plural(years.into(), "year", "years"));
    }
    if months != 0 {
        parts.push(plural(months.into(), "mon", "mons"));
    }
    if days != 0 {
        parts.push(plural(days.into(), "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.unsigned_abs();
        let secs = abs / 1_000_000;
        parts.push(format!(
            "{sign}{:02}:{:02}:{:02}{}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            fraction((abs % 1_000_000) as i64)
        ));
    }
    parts.join(" ")
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

    #[test]
    fn temporal() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(timestamp(1_500_000, true), "2000-01-01 00:00:01.5+00");
        assert_eq!(time_of_day(3_723_000_001), "01:02:03.000001");
        assert_eq!(interval(14, 3, 4 * 3_600_000_000 + 5_500_000), "1 year 2 mons 3 days 04:00:05.5");
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(utc_offset(19_800), "+05:30");
    }
}
