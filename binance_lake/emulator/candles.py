"""Deterministic 1m candle generator and kline paging, as pure functions.

Every interval Binance has is served: intervals longer than a minute aggregate the 1m candles
of their bucket (months are calendar months, weeks open on Monday); 1s candles split each
minute into 60: the first second carries the minute's whole candle (open, high, low, close,
volumes, trades) and the other 59 are flat at its close with no trades, so 60 seconds
aggregate back to exactly the minute.

Every candle is a pure function of (symbol key, open minute): no state and no iteration
from the listing date, so any minute of any year can be produced in O(1) and the ground
truth stays reproducible across processes. Decimals are built from integers in units of
1e-8 so that strings are exact (``"23140.48000000"``), like Binance prints them.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator, Optional

MS_PER_MINUTE = 60_000
UNITS = 100_000_000  # 1e8: every decimal is an int count of 1e-8
_MASK = (1 << 64) - 1

# Interval name -> length in ms (1M: 0, a calendar month has no fixed length).
INTERVALS_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000, "1M": 0,
}
MS_PER_SECOND = 1_000
# Weekly candles open on Monday 00:00 UTC; the epoch was a Thursday.
_WEEK_OFFSET_MS = 4 * 86_400_000

Row = list  # the 12-field kline array


def dec8(units: int) -> str:
    """Format an int count of 1e-8 as Binance does: always 8 decimals."""
    if units < 0:
        return "-" + dec8(-units)
    return "%d.%08d" % divmod(units, UNITS)  # noqa: UP031 (fastest exact formatting)


def _mix(x: int) -> int:
    """splitmix64 finalizer: a fast, well-spread 64-bit hash of an int."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def symbol_key(symbol: str, seed: int) -> int:
    digest = hashlib.blake2b(f"{symbol}|{seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class SymbolSpec:
    """Static facts about a symbol that shape its generated candles and exchangeInfo."""

    symbol: str
    base: str
    quote: str
    listed_at_ms: int
    key: int
    base_price: float
    tick_units: int  # PRICE_FILTER tickSize in 1e-8
    step_units: int  # LOT_SIZE stepSize in 1e-8
    typical_steps: int  # mean base volume per minute, in steps

    @classmethod
    def make(cls, symbol: str, base: str, quote: str, listed_at_ms: int, seed: int) -> SymbolSpec:
        key = symbol_key(symbol, seed)
        # BTC pairs stay near real magnitudes (tick 0.01, step 1e-5); others 0.1 .. 1000
        price = 30_000.0 if base == "BTC" else 10 ** (((key >> 8) % 4000) / 1000 - 1)
        mag = math.floor(math.log10(price))
        tick = min(max(10 ** (mag - 6 + 8), 1), 1_000_000)
        step = min(max(10 ** (8 - math.ceil(math.log10(price) + 1e-12)), 1), UNITS)
        # ~10 BTC a minute for BTC pairs; cheaper coins trade more units
        typical = max(1, int(10 * math.sqrt(30_000 / price) * UNITS / step))
        return cls(symbol, base, quote, listed_at_ms, key, price, tick, step, typical)

    @property
    def first_open_ms(self) -> int:
        return -(-self.listed_at_ms // MS_PER_MINUTE) * MS_PER_MINUTE


# Multi-scale value noise: (period in minutes, amplitude of log price). Smooth trends over
# a year down to 10-minute wiggles, plus per-minute jitter from the minute hash.
_SCALES = ((525_600, 0.35), (43_200, 0.10), (10_080, 0.045), (1_440, 0.02), (60, 0.005), (10, 0.0018))
_JITTER = 0.0005


@lru_cache(maxsize=1 << 16)
def _lattice(key: int, level: int, i: int) -> float:
    return (_mix(key ^ ((level + 1) * 0x632BE59BD9B4E019) ^ (i & _MASK)) >> 11) / 2**52 - 1.0


def _noise(key: int, level: int, minute: int) -> float:
    period, amp = _SCALES[level]
    i, rem = divmod(minute, period)
    f = rem / period
    f = f * f * (3 - 2 * f)  # smoothstep keeps the path free of kinks at lattice points
    a = _lattice(key, level, i)
    return amp * (a + (_lattice(key, level, i + 1) - a) * f)


@lru_cache(maxsize=1 << 15)
def _coarse(key: int, block: int) -> float:
    # Scales of a day and longer are sampled once per 10 minutes (their change within 10
    # minutes is far below one tick of jitter), which makes paging 3x faster.
    minute = block * 10
    return sum(_noise(key, level, minute) for level in range(4))


def _log_price(key: int, minute: int) -> float:
    jitter = (_mix(key ^ (minute * 0xD1B54A32D192ED03 & _MASK)) >> 11) / 2**52 - 1.0
    return _coarse(key, minute // 10) + _noise(key, 4, minute) + _noise(key, 5, minute) + _JITTER * jitter


def _price_ticks(spec: SymbolSpec, minute: int) -> int:
    price = spec.base_price * math.exp(_log_price(spec.key, minute))
    return max(1, round(price * UNITS / spec.tick_units))


def generate_row(spec: SymbolSpec, open_ms: int, memo: Optional[dict] = None) -> Row:
    """The generated 1m candle opening at open_ms (ms, minute-aligned).

    memo carries the previous row's close so that paging computes one price per minute.
    The formatting is inlined ("%d.%08d" % divmod) because this is the benchmark hot path.
    """
    minute = open_ms // MS_PER_MINUTE
    memo = {} if memo is None else memo
    o = memo.get(minute)
    if o is None:
        o = _price_ticks(spec, minute)
    c = _price_ticks(spec, minute + 1)
    memo.clear()
    memo[minute + 1] = c  # the next minute's open is this close
    h = _mix(spec.key ^ (minute * 0x9E3779B97F4A7C15 & _MASK) ^ 0x5DEECE66D)
    tick = spec.tick_units
    close_ms = open_ms + MS_PER_MINUTE - 1
    if h & 0x3F == 0:  # ~1.6 % of minutes have no trades: flat candle at the open
        px = _F8 % divmod(o * tick, UNITS)
        return [open_ms, px, px, px, px, _ZERO, close_ms, _ZERO, 0, _ZERO, _ZERO, "0"]
    top, bot = (o, c) if o >= c else (c, o)
    hi = top + (top * ((h >> 6) & 0xFFF)) // 4_096_000  # wick up to ~0.1 %
    lo = bot - (bot * ((h >> 18) & 0xFFF)) // 4_096_000
    if lo < 1:
        lo = 1
    # exponential volume with a daily cycle
    u = (((h >> 30) & 0xFFFFF) + 1) / 0x100001
    day = 1.0 + 0.5 * math.sin(_TWO_PI_PER_DAY * (minute % 1440))
    steps = int(-math.log(u) * spec.typical_steps * day) + 1
    vol = steps * spec.step_units
    vwap_px = (lo + (hi - lo) * (((h >> 50) & 0xFF) + 1) // 257) * tick  # inside [low, high]
    taker = (steps * ((h >> 58) & 0x3F) // 63) * spec.step_units
    trades = 1 + int(math.sqrt(steps) * day) + ((h >> 40) & 0x3FF) % 64
    return [open_ms, _F8 % divmod(o * tick, UNITS), _F8 % divmod(hi * tick, UNITS),
            _F8 % divmod(lo * tick, UNITS), _F8 % divmod(c * tick, UNITS), _F8 % divmod(vol, UNITS),
            close_ms, _F8 % divmod(vol * vwap_px // UNITS, UNITS), trades, _F8 % divmod(taker, UNITS),
            _F8 % divmod(taker * vwap_px // UNITS, UNITS), "0"]


_F8 = "%d.%08d"
_ZERO = "0.00000000"
_TWO_PI_PER_DAY = 2 * math.pi / 1440


# ---------------------------------------------------------------------------- fixtures


def _dec(units_str: str) -> Decimal:
    return Decimal(units_str)


def _fmt(d: Decimal) -> str:
    return f"{d.quantize(Decimal('0.00000001'), rounding=ROUND_HALF_EVEN):.8f}"


def fixture_row(symbol: str, open_ms: int, o: str, h: str, lo: str, c: str, v: str) -> Row:
    """A full 12-field row from a 6-column CSV row. The missing fields are derived:
    quote volume = volume * (o+h+l+c)/4; taker buy base = a hash-chosen fraction of volume
    (rounded down); taker buy quote = taker base * the same average (rounded down);
    trades = 0 when volume is 0, else 1 + hash % 40 + floor(volume * 10)."""
    po, ph, pl, pc, vol = (_dec(x) for x in (o, h, lo, c, v))
    avg = (po + ph + pl + pc) / 4
    hsh = _mix(symbol_key(symbol, 0) ^ open_ms)
    frac = Decimal((hsh >> 8) % 1001) / 1000
    q8 = Decimal("0.00000001")
    taker = (vol * frac).quantize(q8, rounding=ROUND_DOWN)
    taker_quote = (taker * avg).quantize(q8, rounding=ROUND_DOWN)
    trades = 0 if vol == 0 else 1 + hsh % 40 + int(vol * 10)
    return [open_ms, _fmt(po), _fmt(ph), _fmt(pl), _fmt(pc), _fmt(vol), open_ms + MS_PER_MINUTE - 1,
            _fmt(vol * avg), trades, _fmt(taker), f"{taker_quote:.8f}", "0"]


def load_csv_rows(symbol: str, path: str | Path) -> list[Row]:
    """Rows of a CSV with header open_time,open,high,low,close,volume (ISO or ms times)."""
    rows = []
    with open(path, newline="") as fh:
        for rec in csv.DictReader(fh):
            t = rec["open_time"].strip()
            if t.isdigit():
                open_ms = int(t) // 1000 if int(t) >= 10**15 else int(t)
            else:
                dt = datetime.fromisoformat(t)
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
                open_ms = int(dt.timestamp() * 1000)
            rows.append(fixture_row(symbol, open_ms, rec["open"], rec["high"], rec["low"],
                                    rec["close"], rec["volume"]))
    return rows


# ---------------------------------------------------------------------------- paging


def bucket_start(t_ms: int, interval_ms: int, tz_offset_ms: int = 0) -> int:
    """Open time of the interval bucket containing t_ms (UTC + offset bucketing); ``interval_ms``
    0 is a calendar month."""
    if interval_ms == 0:
        local = datetime.fromtimestamp((t_ms + tz_offset_ms) / 1000, tz=timezone.utc)
        return _month_ms(local.year, local.month) - tz_offset_ms
    anchor = _WEEK_OFFSET_MS if interval_ms == INTERVALS_MS["1w"] else 0
    shift = anchor - tz_offset_ms
    return (t_ms - shift) // interval_ms * interval_ms + shift


def _month_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=timezone.utc).timestamp()) * 1000


def bucket_after(b: int, interval_ms: int, tz_offset_ms: int = 0) -> int:
    """Open time of the bucket after the one opening at ``b``."""
    if interval_ms:
        return b + interval_ms
    local = datetime.fromtimestamp((b + tz_offset_ms) / 1000, tz=timezone.utc)
    return _month_ms(local.year + local.month // 12, local.month % 12 + 1) - tz_offset_ms


def bucket_before(b: int, interval_ms: int, tz_offset_ms: int = 0) -> int:
    return b - interval_ms if interval_ms else bucket_start(b - 1, 0, tz_offset_ms)


@dataclass
class Series:
    """One symbol's kline source: generator + overrides + exchange gaps, bounded by
    listing and the data clock."""

    spec: SymbolSpec
    overrides: dict[int, Row]
    gaps: list[tuple[int, int]]  # sorted [start, end) ms
    # Generated rows by open time, when the emulator was built with row_cache=True. Off by
    # default: a year is ~0.4 GB. Benchmarks turn it on so that every client meets the same
    # cheap server (generating a 1000-row page costs ~8 ms of serial work; Binance has no
    # such floor).
    cache: Optional[dict[int, Row]] = None

    def remove_gap(self, start: int, end: int) -> None:
        """[start, end) is no longer a gap (late publication); gaps around it are cut, not dropped."""
        kept = []
        for s, e in self.gaps:
            kept += [(a, b) for a, b in ((s, min(e, start)), (max(s, end), e)) if a < b]
        self.gaps[:] = sorted(kept)

    def gap_end(self, t: int) -> Optional[int]:
        for start, end in self.gaps:
            if start <= t < end:
                return end
        return None

    def minute_row(self, t: int, memo: dict) -> Optional[Row]:
        if self.gap_end(t) is not None:
            return None
        row = self.overrides.get(t)
        if row is not None:
            memo.clear()
            return list(row)
        if self.cache is None:
            return generate_row(self.spec, t, memo)
        row = self.cache.get(t)
        if row is None:
            row = self.cache[t] = generate_row(self.spec, t, memo)
        else:
            memo.clear()  # the next generated row computes its own open
        return list(row)  # callers may rewrite times (µs): never hand out the cached list

    def minute_opens(self, lo: int, hi: int, reverse: bool = False) -> Iterator[int]:
        """Minute open times in [lo, hi] (inclusive) outside gaps, ascending or descending."""
        lo = max(lo, self.spec.first_open_ms)
        lo = -(-lo // MS_PER_MINUTE) * MS_PER_MINUTE
        hi = hi // MS_PER_MINUTE * MS_PER_MINUTE
        if not reverse:
            t = lo
            while t <= hi:
                end = self.gap_end(t)
                if end is not None:
                    t = -(-end // MS_PER_MINUTE) * MS_PER_MINUTE
                    continue
                yield t
                t += MS_PER_MINUTE
        else:
            t = hi
            while t >= lo:
                start = next((s for s, e in self.gaps if s <= t < e), None)
                if start is not None:
                    t = (start - 1) // MS_PER_MINUTE * MS_PER_MINUTE
                    continue
                yield t
                t -= MS_PER_MINUTE

    def second_row(self, t: int, memo: dict) -> Optional[Row]:
        """The 1s candle opening at ``t`` (see the module doc), None in an exchange gap."""
        minute = t - t % MS_PER_MINUTE
        if self.gap_end(t) is not None or minute < self.spec.first_open_ms:
            return None
        if memo.get("minute") != minute:
            memo.clear()
            memo["minute"], memo["row"] = minute, self.minute_row(minute, memo.setdefault("gen", {}))
        row = memo["row"]
        if row is None:
            return None
        if t == minute:
            return [t, row[1], row[2], row[3], row[4], row[5], t + MS_PER_SECOND - 1, row[7], row[8], row[9],
                    row[10], "0"]
        zero = dec8(0)
        return [t, row[4], row[4], row[4], row[4], zero, t + MS_PER_SECOND - 1, zero, 0, zero, zero, "0"]

    def agg_row(self, open_ms: int, interval_ms: int, now_ms: int, tz_offset_ms: int = 0) -> Optional[Row]:
        """Aggregate the 1m candles of one bucket (skipping gaps); None if it has none."""
        memo: dict = {}
        close_ms = bucket_after(open_ms, interval_ms, tz_offset_ms) - 1
        rows = [r for t in self.minute_opens(open_ms, min(close_ms, now_ms))
                if (r := self.minute_row(t, memo)) is not None]
        if not rows:
            return None
        sums = [sum(_units(r[i]) for r in rows) for i in (5, 7, 9, 10)]
        return [open_ms, rows[0][1], dec8(max(_units(r[2]) for r in rows)),
                dec8(min(_units(r[3]) for r in rows)), rows[-1][4], dec8(sums[0]),
                close_ms, dec8(sums[1]), sum(r[8] for r in rows),
                dec8(sums[2]), dec8(sums[3]), "0"]


def _units(s: str) -> int:
    whole, _, frac = s.partition(".")
    return int(whole) * UNITS + int((frac + "00000000")[:8]) * (-1 if s.startswith("-") else 1)


def select_klines(series: Series, interval: str, now_ms: int, start: Optional[int],
                  end: Optional[int], limit: int, tz_offset_ms: int = 0) -> list[Row]:
    """Binance's paging rule: no start/end -> the newest `limit` up to now (open candle
    included); start -> the oldest from start; end only -> the newest up to end; both ->
    from start, never past end. Bounds are on open time and inclusive."""
    step = INTERVALS_MS[interval]
    last = now_ms if end is None else min(end, now_ms)
    if start is not None and start > last:
        return []
    if step == MS_PER_MINUTE:
        return _select_1m(series, start, last, limit)
    if step == MS_PER_SECOND:
        return _select_1s(series, start, last, limit)
    return _select_agg(series, step, now_ms, start, last, limit, tz_offset_ms)


def _select_1s(series: Series, start: Optional[int], last: int, limit: int) -> list[Row]:
    memo: dict = {}
    first = series.spec.first_open_ms
    out: list[Row] = []
    if start is not None:
        t = max(-(-start // MS_PER_SECOND) * MS_PER_SECOND, first)
        while t <= last and len(out) < limit:
            row = series.second_row(t, memo)
            if row is not None:
                out.append(row)
            t += MS_PER_SECOND
        return out
    t = last // MS_PER_SECOND * MS_PER_SECOND
    while t >= first and len(out) < limit:
        row = series.second_row(t, memo)
        if row is not None:
            out.append(row)
        t -= MS_PER_SECOND
    out.reverse()
    return out


def _select_1m(series: Series, start: Optional[int], last: int, limit: int) -> list[Row]:
    memo: dict = {}
    out: list[Row] = []
    if start is not None:
        for t in series.minute_opens(start, last):
            row = series.minute_row(t, memo)
            if row is not None:
                out.append(row)
                if len(out) >= limit:
                    break
        return out
    opens = []
    for t in series.minute_opens(series.spec.first_open_ms, last, reverse=True):
        opens.append(t)
        if len(opens) >= limit:
            break
    for t in reversed(opens):
        row = series.minute_row(t, memo)
        if row is not None:
            out.append(row)
    return out


def _select_agg(series: Series, step: int, now_ms: int, start: Optional[int], last: int,
                limit: int, tz: int) -> list[Row]:
    first = bucket_start(series.spec.first_open_ms, step, tz)
    out: list[Row] = []
    fetch: Callable[[int], Optional[Row]] = lambda b: series.agg_row(b, step, now_ms, tz)  # noqa: E731
    if start is not None:
        b = max(bucket_start(start, step, tz), first)
        if b < start:
            b = bucket_after(b, step, tz)
        while b <= last and len(out) < limit:
            row = fetch(b)
            if row is not None:
                out.append(row)
            b = bucket_after(b, step, tz)
        return out
    b = bucket_start(last, step, tz)
    while b >= first and len(out) < limit:
        row = fetch(b)
        if row is not None:
            out.append(row)
        b = bucket_before(b, step, tz)
    out.reverse()
    return out
