"""Values as psycopg2 returns them: converters from PostgreSQL's text to
Python objects, chosen once per column by type name (the extension module
calls :func:`converter`)."""

from __future__ import annotations

import datetime as _dt
import json
import re
from decimal import Decimal
from typing import Any, Callable, Optional

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:([+-])(\d{2})(?::?(\d{2}))?(?::?(\d{2}))?)?$")


def _offset(sign: Optional[str], hours: Optional[str], minutes: Optional[str], seconds: Optional[str]):
    if sign is None:
        return None
    delta = _dt.timedelta(hours=int(hours), minutes=int(minutes or 0), seconds=int(seconds or 0))
    return _dt.timezone(-delta if sign == "-" else delta)


def _time_parts(text: str):
    m = _TIME.match(text)
    if m is None:
        return None
    hour, minute, second, fraction, sign, oh, om, os_ = m.groups()
    micro = int((fraction or "0").ljust(6, "0"))
    return int(hour), int(minute), int(second), micro, _offset(sign, oh, om, os_)


def to_date(text: str) -> Any:
    """A date; infinity as date.max/date.min, as psycopg2; a date Python
    cannot hold (BC, after 9999) stays text."""
    if text == "infinity":
        return _dt.date.max
    if text == "-infinity":
        return _dt.date.min
    m = _DATE.match(text)
    return _dt.date(int(m[1]), int(m[2]), int(m[3])) if m else text


def to_time(text: str) -> Any:
    """A time, aware for timetz; 24:00:00 (which Python has not) as psycopg2 reads it, midnight."""
    parts = _time_parts(text)
    if parts is None:
        return text
    hour, minute, second, micro, tz = parts
    if hour == 24:
        hour = 0
    return _dt.time(hour, minute, second, micro, tzinfo=tz)


def to_timestamp(text: str) -> Any:
    """A naive datetime, or aware for timestamptz (in the session's time zone)."""
    if text == "infinity":
        return _dt.datetime.max
    if text == "-infinity":
        return _dt.datetime.min
    date, _, time = text.partition(" ")
    day, parts = to_date(date), _time_parts(time)
    if not isinstance(day, _dt.date) or parts is None:
        return text
    hour, minute, second, micro, tz = parts
    return _dt.datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=tz)


def to_timestamptz(text: str) -> Any:
    """An aware datetime in the session's time zone; infinity as
    datetime.max/min in UTC, as psycopg2."""
    if text in ("infinity", "-infinity"):
        return to_timestamp(text).replace(tzinfo=_dt.timezone.utc)
    return to_timestamp(text)


#: Days in each unit of an interval's text, as psycopg2 counts them (get_df's
#: Arrow durations count alike: ``duration_micros`` in python/src/arrow.rs).
_INTERVAL_DAYS = {"year": 365, "mon": 30, "day": 1}


def to_interval(text: str) -> Any:
    """A timedelta as psycopg2 reads an interval (IntervalStyle postgres:
    ``1 year 2 mons -3 days +04:05:06.7``): a year is 365 days, a month 30;
    one a timedelta cannot hold stays text."""
    days = micros = 0
    words = iter(text.split(" "))
    for word in words:
        if ":" in word:
            sign = -1 if word.startswith("-") else 1
            hours, minutes, seconds = word.lstrip("+-").split(":")
            whole, _, fraction = seconds.partition(".")
            clock = (int(hours) * 60 + int(minutes)) * 60 + int(whole)
            micros = sign * (clock * 1_000_000 + int(fraction.ljust(6, "0")))
        else:
            days += int(word) * _INTERVAL_DAYS[next(words).rstrip("s")]
    try:
        return _dt.timedelta(days=days, microseconds=micros)
    except OverflowError:
        return text


def _json(text: str) -> Any:
    return json.loads(text)


def _bytea(text: str) -> bytes:
    return bytes.fromhex(text[2:])  # the server's hex form: a backslash, x, hex digits


_SCALARS: dict = {
    "date": to_date,
    "time": to_time,
    "timetz": to_time,
    "timestamp": to_timestamp,
    "timestamptz": to_timestamptz,
    "interval": to_interval,
    "json": _json,
    "jsonb": _json,
}


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def _element_converter(element: str) -> Optional[Callable[[Any], Any]]:
    """The converter of an array's elements of type `element`, or None."""
    if element in ("json", "jsonb"):
        return None  # JSON values in the array's JSON already, not text
    if element == "numeric":
        return _decimal
    if element in ("float4", "float8"):
        return float  # NaN and the infinities are their names in JSON
    if element == "bytea":
        return _bytea
    return _SCALARS.get(element)


def _array(element: str) -> Callable[[str], Any]:
    convert = _element_converter(element)

    def apply(value: Any) -> Any:
        if isinstance(value, list):
            return [apply(v) for v in value]
        if value is None or convert is None:
            return value
        return convert(value) if isinstance(value, str) or convert is _decimal else value

    def array(text: str) -> Any:
        if convert is _decimal:
            # Every digit kept: a numeric[] element is never a float.
            return apply(json.loads(text, parse_float=Decimal))
        return apply(json.loads(text))

    return array


def converter(type_name: str, builtin: bool = True) -> Optional[Callable[[str], Any]]:
    """The converter of a column of `type_name`, or None for plain text. A
    type of another schema than PostgreSQL's (`builtin` false: the caller
    asks only for its arrays) may share a built-in's name: its array's
    elements come as they are."""
    if type_name.startswith("_"):
        return _array(type_name[1:] if builtin else "")
    return _SCALARS.get(type_name) if builtin else None
