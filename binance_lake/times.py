"""UTC time helpers. Binance times are integers: milliseconds, or microseconds where
Binance switched (the public archive from 2025, ``X-MBX-TIME-UNIT: MICROSECOND``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional

from binance_lake.errors import BadInputError

MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
# Any epoch value at or above 1e15 is microseconds: in ms that would be year 33658.
_MICROS_THRESHOLD = 10**15

INTERVAL_MS = {
    "1m": MS_PER_MINUTE, "3m": 3 * MS_PER_MINUTE, "5m": 5 * MS_PER_MINUTE, "15m": 15 * MS_PER_MINUTE,
    "30m": 30 * MS_PER_MINUTE, "1h": 60 * MS_PER_MINUTE, "2h": 120 * MS_PER_MINUTE, "4h": 240 * MS_PER_MINUTE,
    "6h": 360 * MS_PER_MINUTE, "8h": 480 * MS_PER_MINUTE, "12h": 720 * MS_PER_MINUTE, "1d": MS_PER_DAY,
}


def to_ms(value: int) -> int:
    """Normalise a Binance epoch integer (ms or µs) to milliseconds, flooring µs."""
    value = int(value)
    return value // 1000 if abs(value) >= _MICROS_THRESHOLD else value


def interval_ms(interval: str) -> int:
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise BadInputError(
            f"unsupported interval {interval!r}; use one of {', '.join(INTERVAL_MS)}") from None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def ms_to_iso(ms: int) -> str:
    """``2024-03-01T00:00:00Z`` (milliseconds shown only when present)."""
    dt = ms_to_datetime(ms)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def ms_to_date(ms: int) -> str:
    return ms_to_datetime(ms).strftime("%Y-%m-%d")


def date_to_ms(date: str) -> int:
    return parse_time(date, "date")


def day_start(ms: int) -> int:
    return ms - ms % MS_PER_DAY


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_DURATION_MS = {"s": 1000, "m": MS_PER_MINUTE, "h": 60 * MS_PER_MINUTE, "d": MS_PER_DAY, "w": 7 * MS_PER_DAY}


def parse_duration(text: str) -> int:
    """``15m``, ``24h``, ``7d`` -> milliseconds."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise BadInputError(f"bad duration {text!r}; use a number and a unit, e.g. 15m, 2h, 7d")
    return int(match.group(1)) * _DURATION_MS[match.group(2)]


MIN_YEAR, MAX_YEAR = 1970, 3000  # accepted years of a time given on the command line


def parse_time(text: str, what: str = "time") -> int:
    """ISO-8601 UTC (``2024-03-01``, ``2024-03-01T00:00:00Z``) -> epoch ms.

    A bare date is midnight UTC. A time without an offset is taken as UTC (documented);
    an explicit non-UTC offset is converted.
    """
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            dt = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        else:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
    except ValueError:
        raise BadInputError(
            f"bad {what} {text!r}: use ISO-8601 UTC, e.g. 2024-03-01 or 2024-03-01T00:00:00Z") from None
    if not MIN_YEAR <= dt.year < MAX_YEAR:
        # Binance's data starts in 2017; a year like 9999 is a typo, and the arithmetic on it
        # (a candle's close time, the next day) would leave what datetime can represent.
        raise BadInputError(f"bad {what} {text!r}: the year must be between {MIN_YEAR} and {MAX_YEAR - 1}")
    return int((dt - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(milliseconds=1))


def floor_to(ms: int, step: int) -> int:
    return ms - ms % step


def optional_time(text: Optional[str], what: str) -> Optional[int]:
    return None if text is None else parse_time(text, what)
