//! PostgreSQL's date and time types as the text PostgreSQL itself prints with
//! DateStyle ISO and IntervalStyle postgres (timestamptz in UTC).
//!
//! Exact integer arithmetic over PostgreSQL's whole range (4714-11-24 BC to
//! 5874897-12-31 for dates, to 294276-12-31 for timestamps): a general
//! calendar library covers less, and a value it cannot hold must not panic.
//! A value PostgreSQL itself would refuse is an error, never garbage.

use std::fmt::Write;

/// Microseconds in a day.
const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const UNIX_DAYS_AT_PG_EPOCH: i64 = 10_957;
/// The first date, 4714-11-24 BC (Julian day 0), in days since 2000-01-01.
const MIN_DATE: i32 = -2_451_545;
/// The last date, 5874897-12-31, in days since 2000-01-01.
const MAX_DATE: i32 = 2_145_031_948;
/// The first timestamp, 4714-11-24 00:00:00 BC (Julian day 0), in
/// microseconds since 2000-01-01: PostgreSQL prints nothing before it.
const MIN_TIMESTAMP: i64 = -211_813_488_000_000_000;
/// The first timestamp past the range PostgreSQL accepts, 294277-01-01
/// 00:00:00. It still prints later ones up to infinity: rounding to a
/// precision, `timestamp(0)` say, can step past the last.
#[cfg(test)]
const END_TIMESTAMP: i64 = 9_223_371_331_200_000_000;
/// timetz offsets are below 16 hours either way, as PostgreSQL checks on input.
const TZ_DISPLACEMENT_LIMIT: i32 = 16 * 3600;

/// Why a value cannot be rendered: the server sent what PostgreSQL never makes.
pub type OutOfRange = String;

/// The proleptic Gregorian date `days_since_1970` days after 1970-01-01:
/// astronomical year (0 is 1 BC), month, day.
fn civil_from_days(days_since_1970: i64) -> (i64, i64, i64) {
    // Howard Hinnant's civil_from_days, on i64: exact for every input here.
    let z = days_since_1970 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The date `days` after PostgreSQL's epoch (2000-01-01): astronomical
/// year (0 is 1 BC), month, day.
pub fn date_parts(days: i64) -> (i64, i64, i64) {
    civil_from_days(days + UNIX_DAYS_AT_PG_EPOCH)
}

/// A timestamp's day since 2000-01-01 and microseconds into that day, from
/// microseconds since 2000-01-01 00:00.
pub fn split_timestamp(micros: i64) -> (i64, u64) {
    (micros.div_euclid(USECS_PER_DAY), micros.rem_euclid(USECS_PER_DAY).unsigned_abs())
}

/// Hours (which may pass 24), minutes, seconds and microseconds in
/// `micros` since midnight.
pub fn clock_parts(micros: u64) -> (u64, u64, u64, u64) {
    let secs = micros / 1_000_000;
    (secs / 3600, secs / 60 % 60, secs % 60, micros % 1_000_000)
}

/// `YYYY-MM-DD` for a day since 2000-01-01, and whether it is BC.
fn calendar_date(days: i64) -> (String, bool) {
    let (year, month, day) = date_parts(days);
    // There is no year 0: astronomical 0 is 1 BC, -43 is 44 BC.
    let (shown, bc) = if year > 0 { (year, false) } else { (1 - year, true) };
    (format!("{shown:04}-{month:02}-{day:02}"), bc)
}

fn bc_suffix(bc: bool) -> &'static str {
    if bc { " BC" } else { "" }
}

/// A `date`, given as days since 2000-01-01.
pub fn date(days: i32) -> Result<String, OutOfRange> {
    match days {
        i32::MAX => Ok("infinity".into()),
        i32::MIN => Ok("-infinity".into()),
        MIN_DATE..=MAX_DATE => {
            let (text, bc) = calendar_date(days.into());
            Ok(format!("{text}{}", bc_suffix(bc)))
        }
        _ => Err(format!("date {days} days from 2000-01-01 is out of range")),
    }
}

/// `.ffffff` without trailing zeros, or nothing for whole seconds.
fn fraction(micros: u64) -> String {
    if micros == 0 { String::new() } else { format!(".{micros:06}").trim_end_matches('0').to_string() }
}

/// `HH:MM:SS[.ffffff]` for microseconds since midnight (hours may pass 24).
fn clock(micros: u64) -> String {
    let (hours, minutes, seconds, micros) = clock_parts(micros);
    format!("{hours:02}:{minutes:02}:{seconds:02}{}", fraction(micros))
}

/// A `time`, given as microseconds since midnight; `24:00:00` is valid.
pub fn time_of_day(micros: i64) -> Result<String, OutOfRange> {
    match u64::try_from(micros) {
        Ok(micros) if micros <= USECS_PER_DAY as u64 => Ok(clock(micros)),
        _ => Err(format!("time {micros} microseconds from midnight is out of range")),
    }
}

/// A `timetz`: microseconds since midnight and the offset in seconds west of
/// UTC, as the wire carries it.
pub fn time_with_zone(micros: i64, seconds_west: i32) -> Result<String, OutOfRange> {
    if seconds_west.unsigned_abs() >= TZ_DISPLACEMENT_LIMIT.unsigned_abs() {
        return Err(format!("time zone displacement {seconds_west} seconds is out of range"));
    }
    Ok(format!("{}{}", time_of_day(micros)?, utc_offset(seconds_west)))
}

/// `+HH`, `+HH:MM` or `+HH:MM:SS` east of UTC.
fn utc_offset(seconds_west: i32) -> String {
    let sign = if seconds_west <= 0 { '+' } else { '-' };
    let abs = seconds_west.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
    match (m, s) {
        (0, 0) => format!("{sign}{h:02}"),
        (_, 0) => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}:{s:02}"),
    }
}

/// A `timestamp` (or, with `utc`, a `timestamptz` shown in UTC), given as
/// microseconds since 2000-01-01 00:00.
pub fn timestamp(micros: i64, utc: bool) -> Result<String, OutOfRange> {
    match micros {
        i64::MAX => return Ok("infinity".into()),
        i64::MIN => return Ok("-infinity".into()),
        MIN_TIMESTAMP.. => {}
        _ => return Err(format!("timestamp {micros} microseconds from 2000-01-01 is out of range")),
    }
    let (days, of_day) = split_timestamp(micros);
    let (day, bc) = calendar_date(days);
    let clock = clock(of_day);
    // PostgreSQL puts the zone before the era: `0044-03-15 12:00:00+00 BC`.
    Ok(format!("{day} {clock}{}{}", if utc { "+00" } else { "" }, bc_suffix(bc)))
}

/// An `interval` as IntervalStyle postgres prints it: each field keeps its
/// own sign, a positive field after a negative one gets a `+`, and only 1
/// (not -1) is singular.
pub fn interval(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    let mut after_negative = false;
    for (value, unit) in [(months / 12, "year"), (months % 12, "mon"), (days, "day")] {
        if value == 0 {
            continue;
        }
        let space = if out.is_empty() { "" } else { " " };
        let plus = if after_negative && value > 0 { "+" } else { "" };
        let plural = if value == 1 { "" } else { "s" };
        let _ = write!(out, "{space}{plus}{value} {unit}{plural}");
        after_negative = value < 0;
    }
    if out.is_empty() || micros != 0 {
        let space = if out.is_empty() { "" } else { " " };
        let sign = if micros < 0 {
            "-"
        } else if after_negative {
            "+"
        } else {
            ""
        };
        let _ = write!(out, "{space}{sign}{}", clock(micros.unsigned_abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    //! Every expectation here is what PostgreSQL 15 prints for the same value
    //! with `SET TimeZone = 'UTC'` and DateStyle ISO (checked with psql).
    use super::*;

    const USECS_PER_SEC: i64 = 1_000_000;

    /// Days since 2000-01-01 of a proleptic Gregorian astronomical date, by
    /// counting whole years: slow, obviously right, independent of the code
    /// under test.
    fn days_by_counting(year: i64, month: i64, day: i64) -> i64 {
        let leap = |y: i64| y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0);
        let year_days = |y: i64| if leap(y) { 366 } else { 365 };
        let mut days: i64 =
            if year >= 2000 { (2000..year).map(year_days).sum() } else { -(year..2000).map(year_days).sum::<i64>() };
        let month_days = [31, if leap(year) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        days += month_days[..(month - 1) as usize].iter().sum::<i64>() + day - 1;
        days
    }

    #[test]
    fn dates_in_range_print_as_today() {
        assert_eq!(date(0).unwrap(), "2000-01-01");
        assert_eq!(date(-1).unwrap(), "1999-12-31");
        assert_eq!(date(8825).unwrap(), "2024-02-29");
        assert_eq!(date(-10_957).unwrap(), "1970-01-01");
        assert_eq!(date(2_914_635).unwrap(), "9980-01-01");
    }

    #[test]
    fn dates_at_the_extremes_and_bc() {
        assert_eq!(date(MAX_DATE).unwrap(), "5874897-12-31");
        assert_eq!(date(MIN_DATE).unwrap(), "4714-11-24 BC");
        assert_eq!(date(days_by_counting(300_000, 1, 1) as i32).unwrap(), "300000-01-01");
        assert_eq!(date(days_by_counting(10_000, 1, 1) as i32).unwrap(), "10000-01-01");
        assert_eq!(date(days_by_counting(-4712, 1, 1) as i32).unwrap(), "4713-01-01 BC");
        // Astronomical -43 is 44 BC; year 0 is 1 BC; there is no year 0.
        assert_eq!(date(days_by_counting(-43, 3, 15) as i32).unwrap(), "0044-03-15 BC");
        assert_eq!(date(days_by_counting(0, 12, 31) as i32).unwrap(), "0001-12-31 BC");
        assert_eq!(date(days_by_counting(1, 1, 1) as i32).unwrap(), "0001-01-01");
        assert_eq!(date(days_by_counting(0, 2, 29) as i32).unwrap(), "0001-02-29 BC");
        assert_eq!(date(i32::MAX).unwrap(), "infinity");
        assert_eq!(date(i32::MIN).unwrap(), "-infinity");
    }

    #[test]
    fn dates_out_of_range_are_errors() {
        assert!(date(MAX_DATE + 1).is_err());
        assert!(date(MIN_DATE - 1).is_err());
        assert!(date(i32::MAX - 1).is_err());
        assert!(date(i32::MIN + 1).is_err());
    }

    #[test]
    fn calendar_agrees_with_counting_days() {
        for year in [-4713, -401, -400, -101, -100, -1, 0, 1, 99, 100, 400, 1582, 1900, 2000, 2100, 2400, 12345] {
            for (month, day) in [(1, 1), (2, 28), (3, 1), (12, 31)] {
                let days = days_by_counting(year, month, day);
                assert_eq!(civil_from_days(days + UNIX_DAYS_AT_PG_EPOCH), (year, month, day), "{days}");
            }
        }
    }

    #[test]
    fn timestamps_in_range_print_as_today() {
        assert_eq!(timestamp(1_500_000, true).unwrap(), "2000-01-01 00:00:01.5+00");
        assert_eq!(timestamp(0, false).unwrap(), "2000-01-01 00:00:00");
        assert_eq!(timestamp(-1, false).unwrap(), "1999-12-31 23:59:59.999999");
        let leap_day = days_by_counting(2024, 2, 29) * USECS_PER_DAY;
        assert_eq!(timestamp(leap_day + 47_655_500_000, false).unwrap(), "2024-02-29 13:14:15.5");
    }

    #[test]
    fn timestamps_at_the_extremes_and_bc() {
        assert_eq!(timestamp(END_TIMESTAMP - 1, false).unwrap(), "294276-12-31 23:59:59.999999");
        assert_eq!(timestamp(END_TIMESTAMP - 1, true).unwrap(), "294276-12-31 23:59:59.999999+00");
        assert_eq!(timestamp(MIN_TIMESTAMP, false).unwrap(), "4714-11-24 00:00:00 BC");
        assert_eq!(timestamp(MIN_TIMESTAMP, true).unwrap(), "4714-11-24 00:00:00+00 BC");
        let ides = days_by_counting(-43, 3, 15) * USECS_PER_DAY + 12 * 3600 * USECS_PER_SEC;
        assert_eq!(timestamp(ides, false).unwrap(), "0044-03-15 12:00:00 BC");
        assert_eq!(timestamp(ides + 500_000, true).unwrap(), "0044-03-15 12:00:00.5+00 BC");
        assert_eq!(timestamp(days_by_counting(-4712, 1, 1) * USECS_PER_DAY, false).unwrap(), "4713-01-01 00:00:00 BC");
        assert_eq!(timestamp(i64::MAX, true).unwrap(), "infinity");
        assert_eq!(timestamp(i64::MIN, false).unwrap(), "-infinity");
        // What '294276-12-31 23:59:59.999999'::timestamptz(2) rounds to.
        assert_eq!(timestamp(END_TIMESTAMP, true).unwrap(), "294277-01-01 00:00:00+00");
        assert_eq!(timestamp(i64::MAX - 1, false).unwrap(), "294277-01-09 04:00:54.775806");
        assert!(timestamp(MIN_TIMESTAMP - 1, true).is_err());
        assert!(timestamp(i64::MIN + 1, false).is_err());
    }

    #[test]
    fn times_of_day() {
        assert_eq!(time_of_day(3_723_000_001).unwrap(), "01:02:03.000001");
        assert_eq!(time_of_day(0).unwrap(), "00:00:00");
        assert_eq!(time_of_day(USECS_PER_DAY).unwrap(), "24:00:00");
        assert_eq!(time_of_day(USECS_PER_DAY - 1).unwrap(), "23:59:59.999999");
        assert!(time_of_day(USECS_PER_DAY + 1).is_err());
        assert!(time_of_day(-1).is_err());
        assert!(time_of_day(i64::MIN).is_err());
        assert_eq!(time_with_zone(USECS_PER_DAY, -57_540).unwrap(), "24:00:00+15:59");
        assert_eq!(time_with_zone(0, 57_599).unwrap(), "00:00:00-15:59:59");
        assert_eq!(time_with_zone(0, 0).unwrap(), "00:00:00+00");
        assert_eq!(time_with_zone(0, -19_800).unwrap(), "00:00:00+05:30");
        assert!(time_with_zone(0, 57_600).is_err());
        assert!(time_with_zone(0, i32::MIN).is_err());
        assert!(time_with_zone(-1, 0).is_err());
    }

    #[test]
    fn intervals() {
        let hour = 3600 * USECS_PER_SEC;
        assert_eq!(interval(14, 3, 4 * hour + 5_500_000), "1 year 2 mons 3 days 04:00:05.5");
        assert_eq!(interval(0, 0, 0), "00:00:00");
        assert_eq!(interval(-12, 0, 0), "-1 years");
        assert_eq!(interval(-10, 0, 0), "-10 mons");
        assert_eq!(interval(10, 3, -4 * hour), "10 mons 3 days -04:00:00");
        assert_eq!(interval(0, -1, USECS_PER_SEC), "-1 days +00:00:01");
        assert_eq!(interval(1, -1, 0), "1 mon -1 days");
        assert_eq!(interval(0, 1, -1), "1 day -00:00:00.000001");
        assert_eq!(interval(0, 0, -500_000), "-00:00:00.5");
        assert_eq!(interval(-13, 0, 0), "-1 years -1 mons");
        assert_eq!(interval(11, 0, 0), "11 mons");
        assert_eq!(
            interval(i32::MAX, i32::MAX, i64::MAX),
            "178956970 years 7 mons 2147483647 days 2562047788:00:54.775807"
        );
        assert_eq!(
            interval(i32::MIN, i32::MIN, i64::MIN),
            "-178956970 years -8 mons -2147483648 days -2562047788:00:54.775808"
        );
    }
}
