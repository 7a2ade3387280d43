//! Dates and timestamps read in Rust: the server's plain ISO text
//! (`2024-02-29`, `2024-02-29 13:45:00.5`, `... +05:30`) straight into
//! `datetime.date`/`datetime.datetime`, as `pghook._values` reads them, without
//! a Python call per cell to parse it. Any other text (infinity, BC, a year
//! past 9999, a date Python rejects) goes to the Python converter, which
//! keeps the one definition of those cases.

use std::collections::HashMap;

use pghook::Value;
use pghook::values::{self, Type};
use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyTzInfo};

use crate::datetime_api;

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
    /// For a result of columns of `types`.
    pub(crate) fn new(types: &[&Type]) -> Temporal {
        let kinds = types
            .iter()
            .map(|ty| match **ty {
                Type::DATE => Some(Kind::Date),
                Type::TIMESTAMP => Some(Kind::Timestamp),
                Type::TIMESTAMPTZ => Some(Kind::Timestamptz),
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
        let Value::Text(text) = &value else { return Ok(Err(value)) };
        Ok(self.read_text(py, column, text)?.ok_or(value))
    }

    /// Column `column`'s text as a Python date or datetime, when the column
    /// is one and the text is in the plain ISO form.
    pub(crate) fn read_text<'py>(
        &mut self,
        py: Python<'py>,
        column: usize,
        text: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(Some(kind)) = self.kinds.get(column) else { return Ok(None) };
        Ok(match kind {
            Kind::Date => date(text).and_then(|(y, m, d)| datetime_api::date(py, y, m, d).ok()),
            Kind::Timestamp => match timestamp(text) {
                Some((day, clock, None)) => datetime(py, day, clock, None),
                _ => None,
            },
            Kind::Timestamptz => match timestamp(text) {
                Some((day, clock, Some(offset))) => {
                    let zone = self.zone(py, offset)?;
                    datetime(py, day, clock, Some(zone.as_any()))
                }
                _ => None,
            },
        })
    }

    /// Column `column`'s binary value as a Python date or naive datetime,
    /// when the column is a date or timestamp within Python's years (1 to
    /// 9999): infinity and the rest go the long way, by their text.
    pub(crate) fn read_binary<'py>(&self, py: Python<'py>, column: usize, bytes: &[u8]) -> Option<Bound<'py, PyAny>> {
        match self.kinds.get(column)? {
            Some(Kind::Date) => {
                let days = i32::from_be_bytes(bytes.try_into().ok()?);
                let (y, m, d) = day_from_epoch(days.into())?;
                datetime_api::date(py, y, m, d).ok()
            }
            Some(Kind::Timestamp) => {
                let (days, of_day) = values::split_timestamp(i64::from_be_bytes(bytes.try_into().ok()?));
                let (hours, minutes, seconds, micros) = values::clock_parts(of_day);
                let clock = (hours as u8, minutes as u8, seconds as u8, micros as u32);
                datetime(py, day_from_epoch(days)?, clock, None)
            }
            _ => None,
        }
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

/// The date `days` after PostgreSQL's epoch (2000-01-01), if its year is
/// one Python has (1 to 9999).
fn day_from_epoch(days: i64) -> Option<Day> {
    let (year, month, day) = values::date_parts(days);
    (1..=9999).contains(&year).then_some((year as i32, month as u8, day as u8))
}

/// A date: year, month, day.
pub(crate) type Day = (i32, u8, u8);
/// A time of day: hour, minute, second, microsecond.
pub(crate) type Clock = (u8, u8, u8, u32);

/// The datetime, or `None` where Python refuses it (the converter then says why).
fn datetime<'py>(
    py: Python<'py>,
    day: Day,
    clock: Clock,
    zone: Option<&Bound<'py, PyAny>>,
) -> Option<Bound<'py, PyAny>> {
    datetime_api::datetime(py, day, clock, zone).ok()
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
