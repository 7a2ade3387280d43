//! Query results as Arrow columns, for `PostgresHook.get_df`: pandas (through
//! pyarrow) and polars take them through the Arrow PyCapsule interface
//! (`__arrow_c_stream__`), so no Python object is made per value.
//!
//! Each column's Arrow type comes from its PostgreSQL type, not from guessing
//! at values: integers as Int64, floats as Float64, numeric as Decimal128
//! (Float64 when pandas' `coerce_float` asks), dates, times, timestamps
//! (timestamptz in UTC, as pandas.read_sql and polars give them) and
//! intervals (psycopg2's days: a month is 30, a year 365) as Arrow's own
//! temporal types (their text read by [`crate::temporal`]), bytea as
//! Binary, and everything else (json, arrays, uuid, timetz...) as the text
//! the rows carry. A value a column's Arrow type cannot hold (a numeric past
//! 38 digits, NaN, a year past 9999) turns that column into text rather than
//! failing.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Decimal128Type, DurationMicrosecondType, Float64Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, LargeBinaryArray, LargeStringArray, PrimitiveArray, RecordBatch,
    RecordBatchIterator, RecordBatchOptions, StringArray,
};
use arrow_schema::{Field, Schema};
use pghook::{Column, Interval, Records, Value};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::temporal::{self, Clock, Day};
use crate::{Core, GuestError};

/// Adds get_df's class and function to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ArrowResult>()?;
    m.add_function(wrap_pyfunction!(get_arrow, m)?)
}

/// A query's result as one Arrow record batch. `pyarrow.table(result)`
/// and `polars.DataFrame(result)` read it through `__arrow_c_stream__`.
#[pyclass(frozen, module = "pghook._pghook")]
pub struct ArrowResult {
    batch: RecordBatch,
}

#[pymethods]
impl ArrowResult {
    /// The Arrow PyCapsule interface: a new stream of the one batch on
    /// each call. A `requested_schema` is not applied (the protocol allows it).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let reader = RecordBatchIterator::new([Ok(self.batch.clone())], self.batch.schema());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new(py, stream, Some(c"arrow_array_stream".to_owned()))
    }

    /// Rows in the result.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// `get_records(sql, parameters)` as Arrow columns; numeric columns as
/// Float64 when `numeric_as_float` (pandas.read_sql's `coerce_float`).
#[pyfunction]
#[pyo3(signature = (core, sql, parameters=None, numeric_as_float=false))]
pub fn get_arrow(
    py: Python<'_>,
    core: &Bound<'_, Core>,
    sql: String,
    parameters: Option<&Bound<'_, PyAny>>,
    numeric_as_float: bool,
) -> PyResult<ArrowResult> {
    let params = crate::parameters(parameters)?;
    let records = core.get().call(py, move |h| Box::pin(async move { h.get_records(&sql, params).await }))?;
    let batch = match py.allow_threads(|| record_batch(records, numeric_as_float)) {
        Ok(batch) => batch,
        Err(Failure::Cell(e)) => return Err(crate::python_error(py, e)),
        Err(Failure::Arrow(e)) => return Err(GuestError::new_err(format!("building the Arrow result: {e}"))),
    };
    Ok(ArrowResult { batch })
}

/// Why a record batch could not be made.
enum Failure {
    /// A cell the server sent could not be read: a database error, as in `get_records`.
    Cell(pghook::Error),
    Arrow(arrow_schema::ArrowError),
}

/// The rows, column by column, as one record batch.
fn record_batch(records: Records, numeric_as_float: bool) -> Result<RecordBatch, Failure> {
    let row_count = records.rows.len();
    let mut columns: Vec<Vec<Value>> = records.columns.iter().map(|_| Vec::with_capacity(row_count)).collect();
    // Run by run, each freed once its values are out.
    for chunk in records.rows.into_chunks() {
        for row in chunk.iter() {
            for (column, value) in columns.iter_mut().zip(row.values().map_err(Failure::Cell)?) {
                column.push(value);
            }
        }
    }
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = records
        .columns
        .iter()
        .zip(columns)
        .map(|(column, values)| {
            let array = array(column, &values, numeric_as_float);
            (Field::new(&column.name, array.data_type().clone(), true), array)
        })
        .unzip();
    let options = RecordBatchOptions::new().with_row_count(Some(row_count));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options).map_err(Failure::Arrow)
}

/// What a column's values become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Boolean,
    Numeric,
    Text,
    Bytes,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
}

/// The kind of a column: its type name for the types that travel as text,
/// else the form of its values (so domains and enums follow their base).
fn kind(column: &Column, values: &[Value]) -> Kind {
    match column.type_name.as_str() {
        "date" => return Kind::Date,
        "time" => return Kind::Time,
        "timestamp" => return Kind::Timestamp,
        "timestamptz" => return Kind::TimestampTz,
        _ => {}
    }
    match values.iter().find(|v| !matches!(v, Value::Null)) {
        Some(Value::Int(_)) => Kind::Int,
        Some(Value::Float(_)) => Kind::Float,
        Some(Value::Boolean(_)) => Kind::Boolean,
        Some(Value::Numeric(_)) => Kind::Numeric,
        Some(Value::Bytes(_)) => Kind::Bytes,
        Some(Value::Interval(_)) => Kind::Interval,
        Some(Value::Text(_) | Value::Json(_)) => Kind::Text,
        Some(Value::Null) | None => match column.type_name.as_str() {
            "int2" | "int4" | "int8" | "oid" => Kind::Int,
            "float4" | "float8" => Kind::Float,
            "bool" => Kind::Boolean,
            "numeric" => Kind::Numeric,
            "bytea" => Kind::Bytes,
            "interval" => Kind::Interval,
            _ => Kind::Text,
        },
    }
}

/// A column as an Arrow array: of its kind, or text if a value does not fit.
fn array(column: &Column, values: &[Value], numeric_as_float: bool) -> ArrayRef {
    let typed: Option<ArrayRef> = match kind(column, values) {
        Kind::Int => primitive::<Int64Type>(values, |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
        .map(|a| Arc::new(a) as ArrayRef),
        Kind::Float => primitive::<Float64Type>(values, |v| match v {
            Value::Float(f) => Some(*f),
            _ => None,
        })
        .map(|a| Arc::new(a) as ArrayRef),
        Kind::Boolean => values
            .iter()
            .map(|v| match v {
                Value::Null => Some(None),
                Value::Boolean(b) => Some(Some(*b)),
                _ => None,
            })
            .collect::<Option<BooleanArray>>()
            .map(|a| Arc::new(a) as ArrayRef),
        Kind::Numeric if numeric_as_float => {
            primitive::<Float64Type>(values, |v| numeric_text(v)?.parse().ok()).map(|a| Arc::new(a) as ArrayRef)
        }
        Kind::Numeric => decimals(values),
        Kind::Bytes => bytes(values),
        Kind::Date => primitive::<Date32Type>(values, |v| {
            let days = match text(v)? {
                "infinity" => DATE_MAX_DAYS,
                "-infinity" => DATE_MIN_DAYS,
                text => parse_date(text)?,
            };
            i32::try_from(days).ok()
        })
        .map(|a| Arc::new(a) as ArrayRef),
        Kind::Time => {
            primitive::<Time64MicrosecondType>(values, |v| parse_time(text(v)?)).map(|a| Arc::new(a) as ArrayRef)
        }
        Kind::Timestamp => primitive::<TimestampMicrosecondType>(values, |v| parse_timestamp(text(v)?, false))
            .map(|a| Arc::new(a) as ArrayRef),
        Kind::TimestampTz => primitive::<TimestampMicrosecondType>(values, |v| parse_timestamp(text(v)?, true))
            .map(|a| Arc::new(a.with_timezone("UTC")) as ArrayRef),
        Kind::Interval => primitive::<DurationMicrosecondType>(values, |v| match v {
            Value::Interval(interval) => duration_micros(interval),
            _ => None,
        })
        .map(|a| Arc::new(a) as ArrayRef),
        Kind::Text => None,
    };
    typed.unwrap_or_else(|| texts(values))
}

/// A primitive column, or None if `cell` refuses a non-null value.
fn primitive<T: ArrowPrimitiveType>(
    values: &[Value],
    cell: impl Fn(&Value) -> Option<T::Native>,
) -> Option<PrimitiveArray<T>> {
    values
        .iter()
        .map(|v| match v {
            Value::Null => Some(None),
            v => cell(v).map(Some),
        })
        .collect()
}

/// Past this many bytes a column needs Arrow's 64-bit offsets.
const SMALL_OFFSETS_LIMIT: usize = i32::MAX as usize;

/// Every value as text: PostgreSQL's own for text, json and arrays.
fn texts(values: &[Value]) -> ArrayRef {
    let cells: Vec<Option<Cow<'_, str>>> = values.iter().map(value_text).collect();
    let size: usize = cells.iter().flatten().map(|c| c.len()).sum();
    if size < SMALL_OFFSETS_LIMIT {
        Arc::new(cells.into_iter().collect::<StringArray>())
    } else {
        Arc::new(cells.into_iter().collect::<LargeStringArray>())
    }
}

fn bytes(values: &[Value]) -> Option<ArrayRef> {
    let cells = values
        .iter()
        .map(|v| match v {
            Value::Null => Some(None),
            Value::Bytes(b) => Some(Some(b.as_slice())),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let size: usize = cells.iter().flatten().map(|c| c.len()).sum();
    Some(if size < SMALL_OFFSETS_LIMIT {
        Arc::new(cells.into_iter().collect::<BinaryArray>())
    } else {
        Arc::new(cells.into_iter().collect::<LargeBinaryArray>())
    })
}

/// A value as text, as PostgreSQL prints it where the value is text.
fn value_text(value: &Value) -> Option<Cow<'_, str>> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::Float(f) => Cow::Owned(f.to_string()),
        Value::Numeric(t) | Value::Text(t) | Value::Json(t) => Cow::Borrowed(t),
        Value::Bytes(b) => Cow::Owned(format!("\\x{}", b.iter().map(|b| format!("{b:02x}")).collect::<String>())),
        Value::Interval(i) => Cow::Borrowed(&i.text),
    })
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Text(t) => Some(t),
        _ => None,
    }
}

fn numeric_text(value: &Value) -> Option<&str> {
    match value {
        Value::Numeric(t) => Some(t),
        _ => None,
    }
}

/// Arrow's widest Decimal128 precision.
const DECIMAL_DIGITS: u8 = 38;

/// A numeric column as Decimal128(38, s), `s` its largest scale (polars
/// infers the same from psycopg2's Decimals); None if a value has more
/// digits than 38, or is NaN or infinite.
fn decimals(values: &[Value]) -> Option<ArrayRef> {
    let scale = values.iter().filter_map(numeric_text).map(|t| t.split_once('.').map_or(0, |(_, f)| f.len())).max();
    let scale = u8::try_from(scale.unwrap_or(0)).ok().filter(|s| *s <= DECIMAL_DIGITS)?;
    let array = primitive::<Decimal128Type>(values, |v| decimal_units(numeric_text(v)?, scale))?;
    let array = array.with_precision_and_scale(DECIMAL_DIGITS, scale as i8).ok()?;
    Some(Arc::new(array))
}

/// `text` (PostgreSQL's `-123.45`) in units of 10^-scale, if it has at most
/// 38 digits at that scale.
fn decimal_units(text: &str, scale: u8) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || fraction.len() > usize::from(scale) {
        return None;
    }
    let padding = usize::from(scale) - fraction.len();
    let all = whole.trim_start_matches('0').chars().chain(fraction.chars()).chain(std::iter::repeat_n('0', padding));
    let mut units: i128 = 0;
    let mut count = 0;
    for c in all {
        count += 1;
        units = units.checked_mul(10)?.checked_add(i128::from(c.to_digit(10)?))?;
    }
    if count > usize::from(DECIMAL_DIGITS) {
        return None;
    }
    Some(if negative { -units } else { units })
}

/// Microseconds in a day.
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// psycopg2's `date.max` and `date.min` for infinity and -infinity, in days
/// since 1970-01-01: 9999-12-31 and 0001-01-01 (as `pghook._values` reads
/// infinity for get_records: keep the two alike).
const DATE_MAX_DAYS: i64 = 2_932_896;
/// -infinity's day, as [`DATE_MAX_DAYS`] says.
const DATE_MIN_DAYS: i64 = -719_162;

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Howard Hinnant's days_from_civil.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `text` without a trailing ` BC`, and whether it had one.
fn era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

/// Days since 1970-01-01 of a date, BC or not.
fn days((year, month, day): Day, bc: bool) -> i64 {
    // There is no year 0: 1 BC is astronomical year 0.
    let year = if bc { 1 - i64::from(year) } else { i64::from(year) };
    days_from_civil(year, month.into(), day.into())
}

/// Microseconds since midnight; 24:00:00 is midnight, as psycopg2 reads it
/// (and `pghook._values.to_time`).
fn micros((hour, minute, second, micro): Clock) -> i64 {
    ((i64::from(hour % 24) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1_000_000 + i64::from(micro)
}

/// Days since 1970-01-01 of `YYYY-MM-DD[ BC]` (DateStyle ISO).
fn parse_date(text: &str) -> Option<i64> {
    let (text, bc) = era(text);
    Some(days(temporal::date(text)?, bc))
}

/// Microseconds since midnight of `HH:MM:SS[.ffffff]`.
fn parse_time(text: &str) -> Option<i64> {
    Some(micros(temporal::clock(text)?))
}

/// Microseconds since 1970-01-01 of `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]][ BC]`,
/// the offset (there exactly when `zoned`) taken away; infinity as
/// psycopg2's `datetime.max`/`datetime.min`.
fn parse_timestamp(text: &str, zoned: bool) -> Option<i64> {
    match text {
        "infinity" => return Some(DATE_MAX_DAYS * MICROS_PER_DAY + MICROS_PER_DAY - 1),
        "-infinity" => return Some(DATE_MIN_DAYS * MICROS_PER_DAY),
        _ => {}
    }
    let (text, bc) = era(text);
    let (day, clock, offset) = temporal::timestamp(text)?;
    if offset.is_some() != zoned {
        return None;
    }
    let local = days(day, bc).checked_mul(MICROS_PER_DAY)?.checked_add(micros(clock))?;
    local.checked_sub(i64::from(offset.unwrap_or(0)) * 1_000_000)
}

/// An interval as psycopg2's timedelta counts it (a year is 365 days, a
/// month 30), in microseconds: the rule `pghook._values.to_interval` applies
/// to the interval's text for get_records; keep the two alike.
fn duration_micros(interval: &Interval) -> Option<i64> {
    let days = i64::from(interval.months / 12) * 365 + i64::from(interval.months % 12) * 30 + i64::from(interval.days);
    days.checked_mul(MICROS_PER_DAY)?.checked_add(interval.microseconds)
}
