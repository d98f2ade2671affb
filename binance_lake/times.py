"""UTC time helpers. Binance times are integers: milliseconds, or microseconds where
Binance switched (the public archive from 2025, ``X-MBX-TIME-UNIT: MICROSECOND``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Iterator, Optional, Tuple

from binance_lake.errors import BadInputError

MS_PER_MINUTE = 60_000
MS_PER_DAY = 86_400_000
# Any epoch value at or above 1e15 is microseconds: in ms that would be year 33658.
_MICROS_THRESHOLD = 10**15
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Every kline interval Binance has, in its order (binance-spot-api-docs rest-api.md "Kline/Candlestick
# data": "Supported kline intervals (case-sensitive)": seconds 1s; minutes 1m 3m 5m 15m 30m; hours 1h
# 2h 4h 6h 8h 12h; days 1d 3d; weeks 1w; months 1M). All but 1M have a fixed length.
INTERVALS: Tuple[str, ...] = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                              "1d", "3d", "1w", "1M")
MONTH = "1M"
INTERVAL_MS = {
    "1s": 1000, "1m": MS_PER_MINUTE, "3m": 3 * MS_PER_MINUTE, "5m": 5 * MS_PER_MINUTE, "15m": 15 * MS_PER_MINUTE,
    "30m": 30 * MS_PER_MINUTE, "1h": 60 * MS_PER_MINUTE, "2h": 120 * MS_PER_MINUTE, "4h": 240 * MS_PER_MINUTE,
    "6h": 360 * MS_PER_MINUTE, "8h": 480 * MS_PER_MINUTE, "12h": 720 * MS_PER_MINUTE, "1d": MS_PER_DAY,
    "3d": 3 * MS_PER_DAY, "1w": 7 * MS_PER_DAY,
}
# Where the buckets of a fixed interval start: multiples of its length from this instant. Weekly
# candles open on Monday 00:00 UTC (the klines doc's own example row is a 1w candle: open
# 1499040000000 = Monday 2017-07-03, close 1499644799999); the epoch was a Thursday, so 4 days
# later. Every other fixed interval counts from the epoch (3d included: Binance does not document
# a 3d anchor, the project takes the epoch like every other fixed length and the emulator agrees).
_ANCHOR_MS = {"1w": 4 * MS_PER_DAY}


def check_interval(interval: str) -> str:
    """``interval`` if Binance has it, else a clear error listing the valid ones."""
    if interval not in INTERVALS:
        raise BadInputError(f"unsupported interval {interval!r}; use one of {', '.join(INTERVALS)} "
                            "(case-sensitive: 1m is a minute, 1M a month)")
    return interval


def to_ms(value: int) -> int:
    """Normalise a Binance epoch integer (ms or µs) to milliseconds, flooring µs."""
    value = int(value)
    return value // 1000 if abs(value) >= _MICROS_THRESHOLD else value


def interval_ms(interval: str) -> int:
    """The length of one candle. 1M has none (28 to 31 days): its length is that of a month
    of 31 days, an upper bound (use :func:`next_open` to step from candle to candle)."""
    check_interval(interval)
    return INTERVAL_MS.get(interval, 31 * MS_PER_DAY)


def interval_anchor(interval: str) -> int:
    """The instant a fixed interval's buckets count from (0, the epoch; 1w: Monday 1970-01-05)."""
    return _ANCHOR_MS.get(interval, 0)


def is_fixed(interval: str) -> bool:
    return check_interval(interval) != MONTH


def _month_start(year: int, month: int) -> int:
    return int((datetime(year, month, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1))


def open_floor(ms: int, interval: str) -> int:
    """Open time of the candle holding instant ``ms`` (UTC buckets)."""
    if not is_fixed(interval):
        dt = ms_to_datetime(ms)
        return _month_start(dt.year, dt.month)
    step, anchor = INTERVAL_MS[interval], _ANCHOR_MS.get(interval, 0)
    return (ms - anchor) // step * step + anchor


def open_ceil(ms: int, interval: str) -> int:
    """The first candle open at or after ``ms``."""
    start = open_floor(ms, interval)
    return start if start == ms else next_open(start, interval)


def next_open(open_ms: int, interval: str) -> int:
    """Open time of the candle after the one opening at ``open_ms`` (months vary: 28 to 31 days)."""
    if is_fixed(interval):
        return open_ms + INTERVAL_MS[interval]
    dt = ms_to_datetime(open_ms)
    return _month_start(dt.year + dt.month // 12, dt.month % 12 + 1)


def close_of(open_ms: int, interval: str) -> int:
    """Binance's close time of a candle: the last millisecond before the next one opens."""
    return next_open(open_ms, interval) - 1


def candle_opens(start: int, end: int, interval: str) -> Iterator[int]:
    """Every candle open in [start, end), ascending."""
    t = open_ceil(start, interval)
    while t < end:
        yield t
        t = next_open(t, interval)


def count_candles(start: int, end: int, interval: str) -> int:
    """How many candles open in [start, end)."""
    if end <= start:
        return 0
    if is_fixed(interval):
        first, step = open_ceil(start, interval), INTERVAL_MS[interval]
        return max(0, -(-(end - first) // step))
    return sum(1 for _ in candle_opens(start, end, interval))


def span_of(start: int, candles: int, interval: str) -> int:
    """The instant ``candles`` candles after ``start`` (a candle open): a request window's end."""
    if is_fixed(interval):
        return start + candles * INTERVAL_MS[interval]
    t = start
    for _ in range(candles):
        t = next_open(t, interval)
    return t


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
