//! Dates and timestamps read in Rust: the server's plain ISO text
//! (`2024-02-29`, `2024-02-29 13:45:00.5`, `... +05:30`) straight into
//! `datetime.date`/`datetime.datetime`, as `pghook._values` reads them, without
//! a Python call per cell to parse it. Any other text (infinity, BC, a year
//! past 9999, a date Python rejects) goes to the Python converter, which
//! keeps the one definition of those cases.

use std::collections::HashMap;

use pghook::Value;
use pyo3::prelude::*;
use pyo3::types::{PyDate, PyDateTime, PyDelta, PyTzInfo};

/// The column types read here.
#[derive(Clone, Copy)]
enum Kind {
    Date,
    Timestamp,
    Timestamptz,
}

/// Reads one result's date and timestamp columns; keeps the time zones it
/// made (one per offset), as a result rarely has more than two.
pub(crate) struct Temporal {
    kinds: Vec<Option<Kind>>,
    zones: HashMap<i32, Py<PyTzInfo>>,
}

impl Temporal {
    /// For a result of `columns`.
    pub(crate) fn new(columns: &[pghook::Column]) -> Temporal {
        let kinds = columns
            .iter()
            .map(|c| match c.type_name.as_str() {
                "date" => Some(Kind::Date),
                "timestamp" => Some(Kind::Timestamp),
                "timestamptz" => Some(Kind::Timestamptz),
                _ => None,
            })
            .collect();
        Temporal { kinds, zones: HashMap::new() }
    }

    /// Column `column`'s `value` as a Python date or datetime when it is one
    /// in the plain ISO form; otherwise the value back, for the Python
    /// converter.
    pub(crate) fn convert<'py>(
        &mut self,
        py: Python<'py>,
        column: usize,
        value: Value,
    ) -> PyResult<Result<Bound<'py, PyAny>, Value>> {
        let (Some(Some(kind)), Value::Text(text)) = (self.kinds.get(column), &value) else { return Ok(Err(value)) };
        let made = match kind {
            Kind::Date => date(text).and_then(|(y, m, d)| PyDate::new(py, y, m, d).ok().map(Bound::into_any)),
            Kind::Timestamp => match timestamp(text) {
                Some((day, clock, None)) => datetime(py, day, clock, None),
                _ => None,
            },
            Kind::Timestamptz => match timestamp(text) {
                Some((day, clock, Some(offset))) => {
                    let zone = self.zone(py, offset)?;
                    datetime(py, day, clock, Some(&zone))
                }
                _ => None,
            },
        };
        Ok(made.ok_or(value))
    }

    /// `datetime.timezone` of `offset` seconds east of UTC, as `_values` makes it.
    fn zone<'py>(&mut self, py: Python<'py>, offset: i32) -> PyResult<Bound<'py, PyTzInfo>> {
        if let Some(zone) = self.zones.get(&offset) {
            return Ok(zone.bind(py).clone());
        }
        let zone = PyTzInfo::fixed_offset(py, PyDelta::new(py, 0, offset, 0, true)?)?;
        self.zones.insert(offset, zone.clone().unbind());
        Ok(zone)
    }
}

/// A date: year, month, day.
pub(crate) type Day = (i32, u8, u8);
/// A time of day: hour, minute, second, microsecond.
pub(crate) type Clock = (u8, u8, u8, u32);

fn datetime<'py>(
    py: Python<'py>,
    (year, month, day): Day,
    (hour, minute, second, micro): Clock,
    zone: Option<&Bound<'py, PyTzInfo>>,
) -> Option<Bound<'py, PyAny>> {
    PyDateTime::new(py, year, month, day, hour, minute, second, micro, zone).ok().map(Bound::into_any)
}

/// `text` as a number, if it is one or more ASCII digits only.
fn digits(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// `YYYY-MM-DD`.
pub(crate) fn date(text: &str) -> Option<Day> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    Some((digits(&text[..4])? as i32, digits(&text[5..7])? as u8, digits(&text[8..])? as u8))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][±HH[:MM[:SS]]]`: the day, the clock and the
/// offset in seconds east of UTC.
pub(crate) fn timestamp(text: &str) -> Option<(Day, Clock, Option<i32>)> {
    let (day, time) = text.split_once(' ')?;
    let day = date(day)?;
    let (time, offset) = match time.find(['+', '-']) {
        Some(at) => (&time[..at], Some(offset(&time[at..])?)),
        None => (time, None),
    };
    Some((day, clock(time)?, offset))
}

/// `HH:MM:SS[.ffffff]`.
pub(crate) fn clock(text: &str) -> Option<Clock> {
    let (whole, micro) = match text.split_once('.') {
        Some((whole, fraction)) if fraction.len() <= 6 => {
            (whole, digits(fraction)? * 10u32.pow(6 - fraction.len() as u32))
        }
        Some(_) => return None,
        None => (text, 0),
    };
    let b = whole.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    Some((digits(&whole[..2])? as u8, digits(&whole[3..5])? as u8, digits(&whole[6..])? as u8, micro))
}

/// `±HH[:MM[:SS]]` in seconds east of UTC.
fn offset(text: &str) -> Option<i32> {
    let sign = if text.starts_with('-') { -1 } else { 1 };
    let mut seconds = 0;
    let mut parts = text[1..].split(':');
    for unit in [3600, 60, 1] {
        let Some(part) = parts.next() else { break };
        if part.len() != 2 {
            return None;
        }
        seconds += digits(part)? as i32 * unit;
    }
    (parts.next().is_none() && !text[1..].is_empty()).then_some(sign * seconds)
}
