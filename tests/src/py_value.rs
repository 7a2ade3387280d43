//! The common ground on which a result of Airflow's `PostgresHook` and one of
//! pghook are compared: the Python value psycopg2 hands to Airflow. Airflow's
//! side arrives tagged by type ([`crate::airflow::airflow_hook`]); pghook's
//! [`Value`]s are mapped with their column's type name, as psycopg2 would
//! have typecast the same server value, by [`Py::from_pghook`].
//!
//! The mapping only changes notation, never information psycopg2 has:
//! PostgreSQL's `2024-02-29 13:14:15.5+05:30` is Python's
//! `2024-02-29T13:14:15.500000+05:30`; an interval's text becomes the
//! `timedelta` psycopg2 makes of it (a year as 365 days, a month as 30).

use pghook::{Column, Value};

/// A Python value as psycopg2 returns it.
#[derive(Debug, Clone)]
pub enum Py {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int`, in decimal digits (any size).
    Int(String),
    /// `float`, equal bit for bit (NaN equals NaN).
    Float(f64),
    /// `decimal.Decimal`, as `str()` prints it.
    Decimal(String),
    /// `str`.
    Str(String),
    /// `bytes` (psycopg2's `memoryview` for bytea).
    Bytes(Vec<u8>),
    /// `datetime.date`, `isoformat()`.
    Date(String),
    /// `datetime.time`, `isoformat()` (with its offset for timetz).
    Time(String),
    /// `datetime.datetime`, `isoformat()` (with its offset for timestamptz).
    DateTime(String),
    /// `datetime.timedelta` as days, seconds, microseconds.
    TimeDelta(i64, i64, i64),
    /// `uuid.UUID`.
    Uuid(String),
    /// psycopg2's `Range`: `None` when empty, else lower inclusive, lower,
    /// upper, upper inclusive (an unbounded end is `None`).
    Range(Option<Box<(bool, Py, Py, bool)>>),
    /// `list` or `tuple`.
    List(Vec<Py>),
    /// `dict`, in its order.
    Dict(Vec<(String, Py)>),
}

impl PartialEq for Py {
    fn eq(&self, other: &Py) -> bool {
        use Py::*;
        match (self, other) {
            (None, None) => true,
            (Bool(a), Bool(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (Int(a), Int(b))
            | (Decimal(a), Decimal(b))
            | (Str(a), Str(b))
            | (Date(a), Date(b))
            | (Time(a), Time(b))
            | (DateTime(a), DateTime(b))
            | (Uuid(a), Uuid(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (TimeDelta(a, b, c), TimeDelta(x, y, z)) => (a, b, c) == (x, y, z),
            (Range(a), Range(b)) => a == b,
            (List(a), List(b)) => a == b,
            (Dict(a), Dict(b)) => a == b,
            _ => false,
        }
    }
}

impl Py {
    /// Airflow's side: the tagged JSON [`crate::airflow::airflow_hook`] returns.
    pub fn from_tagged(json: &serde_json::Value) -> Py {
        use serde_json::Value as J;
        let text = |v: &J| v.as_str().unwrap_or_else(|| panic!("a tag's text: {v}")).to_string();
        let object = match json {
            J::Null => return Py::None,
            J::Array(items) => return Py::List(items.iter().map(Py::from_tagged).collect()),
            J::Object(object) if object.len() == 1 => object,
            other => panic!("not a tagged value: {other}"),
        };
        let (tag, v) = object.iter().next().unwrap();
        match tag.as_str() {
            "bool" => Py::Bool(v.as_bool().unwrap()),
            "int" => Py::Int(text(v)),
            "float" => Py::Float(python_float(&text(v))),
            "decimal" => Py::Decimal(text(v)),
            "str" => Py::Str(text(v)),
            "bytes" => Py::Bytes(from_hex(&text(v))),
            "date" => Py::Date(text(v)),
            "time" => Py::Time(text(v)),
            "datetime" => Py::DateTime(text(v)),
            "timedelta" => {
                let n: Vec<i64> = v.as_array().unwrap().iter().map(|n| n.as_i64().unwrap()).collect();
                Py::TimeDelta(n[0], n[1], n[2])
            }
            "uuid" => Py::Uuid(text(v)),
            "range" if v == "empty" => Py::Range(Option::None),
            "range" => {
                let r = v.as_array().unwrap();
                let bound = |i: usize| Py::from_tagged(&r[i]);
                Py::Range(Some(Box::new((r[0].as_bool().unwrap(), bound(1), bound(2), r[3].as_bool().unwrap()))))
            }
            "dict" => Py::Dict(v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), Py::from_tagged(v))).collect()),
            other => panic!("unknown tag {other}"),
        }
    }

    /// pghook's side: what psycopg2 would have made of the server value that
    /// pghook returned as `value` for a column of type `type_name`.
    pub fn from_pghook(value: &Value, type_name: &str) -> Py {
        match value {
            Value::Null => Py::None,
            Value::Boolean(b) => Py::Bool(*b),
            Value::Int(i) => Py::Int(i.to_string()),
            Value::Float(f) => Py::Float(*f),
            Value::Numeric(n) => Py::Decimal(n.clone()),
            Value::Bytes(b) => Py::Bytes(b.clone()),
            Value::Text(text) => Py::from_server_text(text, type_name),
            Value::Interval(interval) => {
                // The parts and the text must say the same.
                let from_text = psycopg2_interval(&interval.text);
                let from_parts = psycopg2_interval_parts(interval.months, interval.days, interval.microseconds);
                assert_eq!(from_parts, from_text, "interval {interval:?}: parts and text differ");
                Py::TimeDelta(from_text.0, from_text.1, from_text.2)
            }
            Value::Json(text) => {
                let json = Json::parse(text);
                match type_name.strip_prefix('_') {
                    Some(element) => Py::from_array(&json, element),
                    Option::None => Py::from_json(&json),
                }
            }
        }
    }

    /// Rows as psycopg2's list of tuples: each value mapped with its column's type.
    pub fn from_rows(columns: &[Column], rows: &[Vec<Value>]) -> Py {
        Py::List(
            rows.iter()
                .map(|row| {
                    assert_eq!(row.len(), columns.len(), "a row's width");
                    Py::List(row.iter().zip(columns).map(|(v, c)| Py::from_pghook(v, &c.type_name)).collect())
                })
                .collect(),
        )
    }

    /// A value PostgreSQL printed as `text`, typecast as psycopg2 does for `type_name`.
    fn from_server_text(text: &str, type_name: &str) -> Py {
        match type_name {
            "date" => Py::Date(text.to_string()),
            "time" | "timetz" => Py::Time(iso_time(text)),
            "timestamp" | "timestamptz" => {
                let (date, time) = text.split_once(' ').unwrap_or_else(|| panic!("a timestamp: {text}"));
                Py::DateTime(format!("{date}T{}", iso_time(time)))
            }
            "interval" => {
                let (days, seconds, micros) = psycopg2_interval(text);
                Py::TimeDelta(days, seconds, micros)
            }
            "int4range" | "int8range" => Py::from_range(text, |b| Py::Int(b.to_string())),
            "numrange" => Py::from_range(text, |b| Py::Decimal(b.to_string())),
            "bytea" => Py::Bytes(from_hex(text.strip_prefix("\\x").unwrap_or_else(|| panic!("bytea text: {text}")))),
            "bool" => Py::Bool(text == "t"),
            "int2" | "int4" | "int8" | "oid" => Py::Int(text.to_string()),
            "float4" | "float8" => Py::Float(text.parse().unwrap()),
            "numeric" => Py::Decimal(text.to_string()),
            // psycopg2 has no typecaster for these (uuid, money, xid, regtype,
            // point, tsvector...): it returns the server's text.
            _ => Py::Str(text.to_string()),
        }
    }

    /// A range's text (`[1,5)`, `(,3]`, `empty`) as psycopg2's `Range`.
    fn from_range(text: &str, bound: impl Fn(&str) -> Py) -> Py {
        if text == "empty" {
            return Py::Range(Option::None);
        }
        let lower_inc = text.starts_with('[');
        let upper_inc = text.ends_with(']');
        let (lower, upper) = text[1..text.len() - 1].split_once(',').unwrap();
        let end = |b: &str| if b.is_empty() { Py::None } else { bound(b) };
        Py::Range(Some(Box::new((lower_inc, end(lower), end(upper), upper_inc))))
    }

    /// A json/jsonb document as Python's `json.loads` reads it.
    fn from_json(json: &Json) -> Py {
        match json {
            Json::Null => Py::None,
            Json::Bool(b) => Py::Bool(*b),
            Json::Number(n) if n.contains(['.', 'e', 'E']) => Py::Float(n.parse().unwrap()),
            Json::Number(n) => Py::Int(if n == "-0" { "0".to_string() } else { n.clone() }),
            Json::String(s) => Py::Str(s.clone()),
            Json::Array(items) => Py::List(items.iter().map(Py::from_json).collect()),
            Json::Object(fields) => Py::Dict(fields.iter().map(|(k, v)| (k.clone(), Py::from_json(v))).collect()),
        }
    }

    /// An array pghook sent as JSON, elements of type `element`, as
    /// psycopg2's (nested) list.
    fn from_array(json: &Json, element: &str) -> Py {
        match (json, element) {
            (Json::Null, _) => Py::None,
            (_, "json" | "jsonb") => Py::from_json(json),
            (Json::Array(items), _) => Py::List(items.iter().map(|i| Py::from_array(i, element)).collect()),
            (Json::Bool(b), "bool") => Py::Bool(*b),
            (Json::Number(n), "int2" | "int4" | "int8" | "oid" | "float4" | "float8" | "numeric") => {
                Py::from_server_text(n, element)
            }
            (Json::String(s), _) if !matches!(element, "bool" | "int2" | "int4" | "int8" | "oid") => {
                Py::from_server_text(s, element)
            }
            (other, _) => panic!("{other:?} in an array of {element}"),
        }
    }
}

/// Python's `float()` of a `repr`: `nan`, `inf`, `-inf` or a decimal.
fn python_float(repr: &str) -> f64 {
    repr.parse().unwrap_or_else(|_| panic!("a Python float: {repr}"))
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// PostgreSQL's `13:14:15.5+05:30` as Python's `13:14:15.500000+05:30`:
/// microseconds in six digits when there are any, the offset with minutes.
fn iso_time(text: &str) -> String {
    let offset_at = text.find(['+', '-']).unwrap_or(text.len());
    let (clock, offset) = text.split_at(offset_at);
    let clock = match clock.split_once('.') {
        Some((whole, fraction)) => format!("{whole}.{fraction:0<6}"),
        Option::None => clock.to_string(),
    };
    let offset = if offset.len() == 3 { format!("{offset}:00") } else { offset.to_string() };
    format!("{clock}{offset}")
}

/// An interval as PostgreSQL prints it (IntervalStyle `postgres`: `1 year 2
/// mons -3 days -04:05:06.7`) as the `timedelta` psycopg2 makes of it: a
/// year is 365 days and a month 30, normalised as Python does (seconds and
/// microseconds never negative).
fn psycopg2_interval(text: &str) -> (i64, i64, i64) {
    const MICROS_PER_DAY: i128 = 86_400_000_000;
    let mut micros: i128 = 0;
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        if word.contains(':') {
            let (sign, clock) = match word.strip_prefix('-') {
                Some(rest) => (-1, rest),
                Option::None => (1, word.trim_start_matches('+')),
            };
            let parts: Vec<&str> = clock.split(':').collect();
            let (seconds, fraction) = parts[2].split_once('.').unwrap_or((parts[2], ""));
            let whole: i128 = parts[0].parse::<i128>().unwrap() * 3600
                + parts[1].parse::<i128>().unwrap() * 60
                + seconds.parse::<i128>().unwrap();
            let fraction: i128 = format!("{fraction:0<6}")[..6].parse().unwrap();
            micros += sign * (whole * 1_000_000 + fraction);
        } else {
            let n: i128 = word.parse().unwrap_or_else(|_| panic!("an interval: {text}"));
            let days = match words.next() {
                Some("year" | "years") => 365,
                Some("mon" | "mons") => 30,
                Some("day" | "days") => 1,
                unit => panic!("an interval unit {unit:?} in {text}"),
            };
            micros += n * days * MICROS_PER_DAY;
        }
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    (days as i64, (rest / 1_000_000) as i64, (rest % 1_000_000) as i64)
}

/// The `timedelta` psycopg2 makes of an interval's parts, reading them as
/// PostgreSQL prints them: months as years (365 days) and months (30).
fn psycopg2_interval_parts(months: i32, days: i32, micros: i64) -> (i64, i64, i64) {
    const MICROS_PER_DAY: i128 = 86_400_000_000;
    let (years, months) = (i128::from(months / 12), i128::from(months % 12));
    let days = years * 365 + months * 30 + i128::from(days);
    let total = days * MICROS_PER_DAY + i128::from(micros);
    let rest = total.rem_euclid(MICROS_PER_DAY);
    (total.div_euclid(MICROS_PER_DAY) as i64, (rest / 1_000_000) as i64, (rest % 1_000_000) as i64)
}

/// A JSON document with every number kept as its text, so that
/// `123456789012345678901234567890` stays exact (serde_json would make it a
/// float), and objects in their order.
#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let mut reader = JsonReader { text: text.as_bytes(), at: 0 };
        let json = reader.value();
        reader.space();
        assert_eq!(reader.at, text.len(), "trailing text in JSON {text:?}");
        json
    }
}

struct JsonReader<'a> {
    text: &'a [u8],
    at: usize,
}

impl JsonReader<'_> {
    fn space(&mut self) {
        while self.text.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) {
        self.space();
        assert_eq!(self.text.get(self.at), Some(&byte), "JSON at {}", self.at);
        self.at += 1;
    }

    /// A list of `item`s between `open` and `close`, separated by commas.
    fn list<T>(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        self.expect(open);
        let mut items = Vec::new();
        self.space();
        if self.text[self.at] == close {
            self.at += 1;
            return items;
        }
        loop {
            items.push(item(self));
            self.space();
            self.at += 1;
            match self.text[self.at - 1] {
                b',' => continue,
                b if b == close => return items,
                b => panic!("JSON: {:?} at {}", b as char, self.at - 1),
            }
        }
    }

    fn value(&mut self) -> Json {
        self.space();
        let rest = &self.text[self.at..];
        for (word, json) in [("null", Json::Null), ("true", Json::Bool(true)), ("false", Json::Bool(false))] {
            if rest.starts_with(word.as_bytes()) {
                self.at += word.len();
                return json;
            }
        }
        match rest[0] {
            b'"' => Json::String(self.string()),
            b'[' => Json::Array(self.list(b'[', b']', |r| r.value())),
            b'{' => Json::Object(self.list(b'{', b'}', |r| {
                let key = r.string();
                r.expect(b':');
                (key, r.value())
            })),
            _ => {
                let start = self.at;
                while self.text.get(self.at).is_some_and(|b| b"+-.eE0123456789".contains(b)) {
                    self.at += 1;
                }
                assert!(self.at > start, "JSON at {start}");
                Json::Number(String::from_utf8(self.text[start..self.at].to_vec()).unwrap())
            }
        }
    }

    /// A string, read by serde_json (escapes, surrogate pairs).
    fn string(&mut self) -> String {
        self.space();
        let start = self.at;
        self.at += 1;
        while self.text[self.at] != b'"' {
            self.at += if self.text[self.at] == b'\\' { 2 } else { 1 };
        }
        self.at += 1;
        serde_json::from_slice(&self.text[start..self.at]).unwrap()
    }
}
