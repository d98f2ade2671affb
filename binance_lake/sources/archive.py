"""The public archive (data.binance.vision) as a source: plan, download, verify, store, parse.

A pure source, like freqtrade's ``binance_public_data.py``: it never writes curated data.
The backfill job (:func:`binance_lake.jobs.backfill_file`) runs one file through it and
hands the parsed rows to the one writer, :func:`binance_lake.fold.fold_archive_file`.

1. **Plan.** Whole past months come as monthly zips, the rest (the current month, or a
   month whose monthly file is not published yet) as daily zips. Every candidate's
   ``.CHECKSUM`` is fetched first: it is tiny, it says whether the file exists, and it is
   what we re-verify against on every run (Binance replaces archive files).
2. **Verify.** A file whose sidecar records the same published checksum is done: skipped
   without downloading. Otherwise the zip is downloaded (or the stored copy reused when
   its sha256 still matches) and must hash to the published sha256; a mismatch is
   retried, then reported. An unverified zip is never written to the lake.
3. **Store raw.** The verified zip is kept, immutable per checksum, under
   ``raw/archive/klines/`` (:func:`binance_lake.layout.archive_key`).
4. **Parse.** Its CSV (ms or µs, header or not) becomes Arrow columns in the REST array's
   order; :func:`binance_lake.columns.candles_from_arrow` casts and checks them exactly
   as REST rows are. Lineage: ``source_key`` is the zip's lake key, ``ingested_at`` its
   download time.
5. **Mark.** Once the fold has written the file's days, the sidecar ``<name>.zip.json``
   (sha256, published checksum, URL, download time, rows, gaps) is written. Its name is
   the coverage claim (:mod:`binance_lake.sources.coverage`), so a crash before this point
   just redoes the file (idempotent: deterministic keys, dedupe on the primary key).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from binance_lake import layout
from binance_lake.columns import candles_from_arrow, ms_array
from binance_lake.errors import BinanceUnavailableError, DamagedFileError, Rejected
from binance_lake.lake import Lake
from binance_lake.sources.coverage import archive_period_range, archive_periods, merge_ranges, missing_ranges
from binance_lake.times import MS_PER_DAY, day_start, interval_ms, ms_to_date, next_open
from binance_lake.urls import check_no_credentials

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
# Kline CSV columns, in the REST array's order (binance-public-data README).
CSV_COLUMNS = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
               "taker_buy_volume", "taker_buy_quote_volume", "ignore"]
_INT_COLUMNS = {"open_time", "close_time", "count"}
_CSV_TYPES = {c: (pa.int64() if c in _INT_COLUMNS else pa.string()) for c in CSV_COLUMNS}

FileProgress = Callable[[int, int, int], None]  # (files done, files total, rows so far)


@dataclass
class ArchiveConfig:
    base_url: str = DEFAULT_ARCHIVE_URL
    workers: int = 4
    attempts: int = 3  # per file, for network errors and checksum mismatches alike
    backoff_s: float = 1.0
    timeout_s: float = 60.0
    force: bool = False  # re-curate verified files from their stored zips (after a lost partition)

    def __post_init__(self) -> None:
        # The URL of every file is stored in its sidecar: no credentials in it (binance_lake.urls).
        check_no_credentials(self.base_url, "--archive-url (or BINANCE_ARCHIVE_URL)")


@dataclass(frozen=True)
class ArchiveFile:
    """One archive zip: a symbol's month (``2024-01``) or day (``2024-01-05``)."""

    symbol: str
    interval: str
    period: str

    @property
    def kind(self) -> str:
        return layout.archive_kind(self.period)

    @property
    def name(self) -> str:
        return layout.archive_name(self.symbol, self.interval, self.period)

    @property
    def key(self) -> str:
        return layout.archive_key(self.symbol, self.interval, self.period)

    @property
    def sidecar_key(self) -> str:
        return layout.sidecar_key(self.key)

    @property
    def span(self) -> Tuple[int, int]:
        return archive_period_range(self.period)

    def url(self, base_url: str) -> str:
        return layout.archive_url(base_url, self.symbol, self.interval, self.period)


@dataclass
class FileResult:
    file: str
    period: str
    status: str  # curated | up-to-date | restored (damaged stored copy re-downloaded) | missing | failed
    rows: int = 0
    rejected: int = 0
    downloaded: bool = False
    exchange_gaps: List[Tuple[int, int]] = field(default_factory=list)
    reason: str = ""


@dataclass
class PlannedFile:
    file: ArchiveFile
    published: Optional[str]  # None: not in the archive (404)
    first: bool = False  # the first file of the symbol found: minutes before its first row are pre-listing


# -- HTTP --------------------------------------------------------------------------------


class NotInArchive(Exception):
    pass


def http_get(url: str, cfg: ArchiveConfig) -> bytes:
    """GET with retries on network errors and 5xx; ``NotInArchive`` on 404/403.

    urllib (not requests) so ``file://`` mirrors work too. S3 answers 403 for a missing
    key of a bucket without public listing, which is what data.binance.vision is.
    """
    for attempt in range(1, cfg.attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=cfg.timeout_s) as resp:  # http(s) or file:// mirrors
                return resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404):
                raise NotInArchive(url) from None
            problem = f"HTTP {exc.code}"
        except FileNotFoundError:
            raise NotInArchive(url) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, FileNotFoundError):
                raise NotInArchive(url) from None
            problem = str(exc.reason)
        except OSError as exc:
            problem = str(exc)
        if attempt < cfg.attempts:
            time.sleep(cfg.backoff_s * attempt)
    raise BinanceUnavailableError(f"archive unavailable: {url} still failing after {cfg.attempts} attempts "
                                  f"({problem})")


def parse_checksum(text: bytes, name: str) -> str:
    """``<sha256>  <name>`` (sha256sum format) -> the hex digest; checks the file name."""
    parts = text.decode("utf-8", "replace").split()
    if len(parts) < 1 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0].lower()):
        raise ValueError(f"{name}.CHECKSUM is not in sha256sum format: {text[:100]!r}")
    if len(parts) > 1 and parts[1].lstrip("*") != name:
        raise ValueError(f"{name}.CHECKSUM names another file: {parts[1]!r}")
    return parts[0].lower()


def published_checksum(f: ArchiveFile, cfg: ArchiveConfig) -> Optional[str]:
    try:
        return parse_checksum(http_get(f.url(cfg.base_url) + ".CHECKSUM", cfg), f.name)
    except NotInArchive:
        return None


# -- planning ----------------------------------------------------------------------------


def month_of(ms: int) -> str:
    return ms_to_date(ms)[:7]


RECENT_MONTHS_MS = 40 * MS_PER_DAY


def months_between(start: int, end: int) -> List[str]:
    """Months overlapping [start, end)."""
    out, m = [], month_of(start)
    while end > archive_period_range(m)[0]:
        out.append(m)
        m = month_of(archive_period_range(m)[1])
    return out


def days_of(month: str, start: int, end: int) -> List[str]:
    lo, hi = archive_period_range(month)
    return [ms_to_date(d) for d in range(max(lo, day_start(start)), min(hi, end), MS_PER_DAY)
            if d + MS_PER_DAY <= end]


def plan_files(symbol: str, interval: str, start: int, end: int, now_ms: int, cfg: ArchiveConfig,
               pool: ThreadPoolExecutor) -> List[PlannedFile]:
    """Archive files for the whole days in [start, end), each with its published checksum.

    A month entirely before today and inside the range comes as one monthly file. A
    monthly file that is not published is replaced by that month's daily files only where
    daily files can help: recent months (Binance publishes a month on the first Monday of
    the next) and holes between monthly files. Elsewhere a missing month is before the
    listing or after a delisting, and asking for 30 daily files each would be waste.
    """
    end = min(end, day_start(now_ms))  # today's file cannot exist yet
    months = months_between(start, end)
    whole = [m for m in months if archive_period_range(m)[0] >= day_start(start) and archive_period_range(m)[1] <= end]
    monthly = [ArchiveFile(symbol, interval, m) for m in whole]
    sums = dict(zip(monthly, pool.map(lambda f: published_checksum(f, cfg), monthly)))
    found = [f.period for f in monthly if sums[f]]
    recent = month_of(day_start(now_ms) - RECENT_MONTHS_MS)  # monthly files may still be unpublished
    files: List[ArchiveFile] = []
    for m in months:
        f = ArchiveFile(symbol, interval, m)
        if sums.get(f):
            files.append(f)
        elif m >= recent or m not in whole or (found and found[0] < m < found[-1]):
            files.extend(ArchiveFile(symbol, interval, d) for d in days_of(m, start, end))
    daily = [f for f in files if f not in sums]
    sums.update(zip(daily, pool.map(lambda f: published_checksum(f, cfg), daily)))
    planned = [PlannedFile(f, sums[f]) for f in files]
    first = next((p for p in planned if p.published), None)
    if first is not None:
        first.first = True
    return planned


# -- one file ----------------------------------------------------------------------------


def read_sidecar(lake: Lake, f: ArchiveFile) -> Optional[Dict[str, Any]]:
    try:
        sidecar = json.loads(lake.read_bytes(f.sidecar_key))
    except (KeyError, ValueError):
        return None
    return sidecar if isinstance(sidecar, dict) else None  # another JSON shape: as unreadable


def verified_zip(lake: Lake, f: ArchiveFile, published: str, cfg: ArchiveConfig) -> Tuple[bytes, int, bool]:
    """(zip bytes matching ``published``, download time ms, downloaded?); raises if it never matches."""
    try:
        stored = lake.read_bytes(f.key)
        if hashlib.sha256(stored).hexdigest() == published:
            sidecar = read_sidecar(lake, f) or {}  # resume: verified earlier, not yet curated
            return stored, int(sidecar.get("downloaded_at", time.time() * 1000)), False
    except KeyError:
        pass
    got = ""
    for attempt in range(1, cfg.attempts + 1):
        data = http_get(f.url(cfg.base_url), cfg)
        got = hashlib.sha256(data).hexdigest()
        if got == published:
            return data, int(time.time() * 1000), True
        log.warning("%s: sha256 %s does not match the published %s (attempt %d/%d)", f.name, got[:12],
                    published[:12], attempt, cfg.attempts)
        if attempt < cfg.attempts:
            time.sleep(cfg.backoff_s * attempt)
    raise ChecksumMismatch(f"{f.name}: sha256 {got} != published {published} after {cfg.attempts} downloads")


class ChecksumMismatch(Exception):
    pass


def stored_files(lake: Lake, symbol: str, interval: str) -> List[ArchiveFile]:
    """Archive files verified and curated earlier (they have a sidecar), oldest first."""
    files = [ArchiveFile(symbol, interval, period) for period in archive_periods(lake, symbol, interval)]
    return sorted(files, key=lambda f: f.span)


def restore_command(f: ArchiveFile) -> str:
    """The backfill that re-downloads and re-verifies ``f`` (its period exactly)."""
    hi = f.span[1]
    end = month_of(hi) if len(f.period) == 7 else ms_to_date(hi)
    return (f"binance-lake backfill --symbol {f.symbol} --interval {f.interval} --start {f.period} --end {end} "
            "--no-rest")


def _damaged(f: ArchiveFile, problem: str) -> DamagedFileError:
    return DamagedFileError(f"stored archive file {f.key} is damaged ({problem}); nothing was read from it. "
                            f"Run `{restore_command(f)}` to re-download and re-verify it")


def checked_zip(lake: Lake, f: ArchiveFile) -> Tuple[Dict[str, Any], bytes]:
    """(sidecar, zip bytes) of a stored file, the bytes hashing to the sha256 its sidecar recorded.

    Checked on every read, not only at download: a zip damaged in the lake (bit rot, a
    truncated copy, an edited file that is still a valid zip) must never feed curated.
    Hashing is cheap next to parsing (a monthly 1m zip is a few MB).
    """
    try:
        sidecar = json.loads(lake.read_bytes(f.sidecar_key))
        recorded = str(sidecar["sha256"])
    except KeyError:
        raise _damaged(f, "its sidecar is missing or names no sha256") from None
    except ValueError:
        raise _damaged(f, "its sidecar is not JSON") from None
    try:
        data = lake.read_bytes(f.key)
    except KeyError:
        raise _damaged(f, "the zip is missing") from None
    got = hashlib.sha256(data).hexdigest()
    if got != recorded:
        raise _damaged(f, f"sha256 {got[:16]}... differs from {recorded[:16]}... recorded when it was verified")
    return sidecar, data


def damaged_files(lake: Lake, symbol: str, interval: str) -> List[str]:
    """One message per stored archive file of the symbol that fails its check (for status)."""
    out = []
    for f in stored_files(lake, symbol, interval):
        try:
            checked_zip(lake, f)
        except DamagedFileError as exc:
            out.append(str(exc))
    return out


def stored_damage(lake: Lake, symbols: Sequence[Tuple[str, str]]) -> List[str]:
    """:func:`damaged_files` of each (symbol, interval)."""
    return [m for symbol, interval in symbols for m in damaged_files(lake, symbol, interval)]


class StoredArchive:
    """The verified archive zips already in the lake, read day by day (no network).

    A curated partition rebuilt "from raw" must include the archive's share of the day,
    not only the REST windows, or a rebuild would drop the rows the archive brought. Only
    files with a sidecar count (verified and folded: the lake's claim). Each file is checked
    against its sidecar's sha256 when read (:func:`checked_zip`); a damaged one raises
    :class:`DamagedFileError` instead of feeding a partition. The last files parsed are
    kept, so a rebuild walking a month's days in order parses its zip once.
    """

    def __init__(self, lake: Lake, symbol: str, interval: str):
        self.lake, self.symbol, self.interval = lake, symbol, interval
        self._parsed: Dict[str, Optional[Tuple[Dict[str, Any], pa.Table, pa.Array]]] = {}
        self._claimed: Optional[set] = None

    def files(self) -> List[ArchiveFile]:
        return stored_files(self.lake, self.symbol, self.interval)

    def days(self) -> List[str]:
        """Every curated partition (a UTC day, or a month from 1h up) a stored file covers."""
        return sorted({layout.period_of(d, self.interval) for f in self.files() for d in range(*f.span, MS_PER_DAY)})

    def check(self) -> None:
        """Raise for the first damaged stored file: a rebuild checks them all before it writes."""
        for f in self.files():
            checked_zip(self.lake, f)

    def _file(self, f: ArchiveFile) -> Optional[Tuple[Dict[str, Any], pa.Table, pa.Array]]:
        if f.key not in self._parsed:
            if len(self._parsed) >= 2:  # a month and one of its days: memory stays ~one month
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[f.key] = self._parse(f)
        return self._parsed[f.key]

    def _is_claimed(self, f: ArchiveFile) -> bool:
        if self._claimed is None:
            self._claimed = {g.key for g in self.files()}
        return f.key in self._claimed

    def _parse(self, f: ArchiveFile) -> Optional[Tuple[Dict[str, Any], pa.Table, pa.Array]]:
        if not self._is_claimed(f):
            return None  # not verified and folded: not part of the lake's claim
        sidecar, data = checked_zip(self.lake, f)
        try:
            raw, _ = read_archive_csv(data, f.name)
        except Rejected as exc:  # hashes as verified, yet does not parse: Binance published it so
            raise _damaged(f, str(exc)) from None
        return sidecar, raw, ms_array(raw.column(0).combine_chunks().cast(pa.int64()))

    def rows(self, date: str) -> Optional[pa.Table]:
        """Curated rows of partition ``date`` (a day, or a month) from the stored files; None if
        no stored file covers it."""
        tables = []
        if layout.is_month(date):  # the monthly file, or the daily files of the month
            candidates = [ArchiveFile(self.symbol, self.interval, date)] + [
                f for f in self.files() if f.kind == "daily" and f.period.startswith(date)]
        else:
            candidates = [ArchiveFile(self.symbol, self.interval, p) for p in (date[:7], date)]
        for f in candidates:
            parsed = self._file(f)
            if parsed is None:
                continue
            sidecar, raw, open_ms = parsed
            day_lo, day_hi = layout.period_bounds(date)
            day = raw.filter(pc.and_(pc.greater_equal(open_ms, day_lo), pc.less(open_ms, day_hi)))
            table, _ = candles_from_arrow(self.symbol, self.interval, day, int(sidecar.get("downloaded_at", 0)),
                                          f.key, date)
            tables.append(table)
        return pa.concat_tables(tables) if tables else None

def read_archive_csv(zip_bytes: bytes, name: str) -> Tuple[pa.Table, bool]:
    """The zip's single CSV as Arrow columns (kline order); (table, had a header row)."""
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
            members = [m for m in zf.namelist() if m.endswith(".csv")]
            if len(members) != 1:
                raise Rejected(f"{name} holds {len(members)} CSV files, expected 1")
            data = zf.read(members[0])
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise Rejected(f"{name} is not a readable zip ({type(exc).__name__}: {str(exc)[:120]})") from None
    first = data[: data.find(b"\n")] if b"\n" in data else data
    header = not first.split(b",", 1)[0].strip().isdigit()  # spot files have none; futures do
    opts = pacsv.ReadOptions(column_names=CSV_COLUMNS, skip_rows=1 if header else 0, block_size=1 << 24)
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=opts,
                               convert_options=pacsv.ConvertOptions(column_types=_CSV_TYPES))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise Rejected(f"{name} is not a kline CSV ({str(exc).splitlines()[0][:120]})") from None
    return table, header


def file_gaps(open_ms: pa.Array, lo: int, hi: int, interval: str, first: bool) -> List[Tuple[int, int]]:
    """``extract.missing_ranges`` over [lo, hi), vectorised (a month is 44,640 rows).

    In the first file of a symbol the minutes before its first row are pre-listing, not a gap.
    """
    present = pc.unique(open_ms).sort()
    if len(present) == 0:
        return [] if first else [(lo, hi)]
    steps = pc.subtract(present[1:], present[:-1])
    # A jump longer than one candle (1M: longer than the longest month) is a hole.
    jumps = pc.indices_nonzero(pc.greater(steps, interval_ms(interval))).to_pylist()
    inner = [(next_open(present[i].as_py(), interval), present[i + 1].as_py()) for i in jumps]
    start = present[0].as_py() if first else lo
    edges = missing_ranges(start, hi, [present[0].as_py(), present[-1].as_py()], interval)
    return merge_ranges([*(g for g in edges if g[0] < present[0].as_py() or g[0] > present[-1].as_py()), *inner])


def split_days(table: pa.Table, open_ms: pa.Array, interval: str = "1m") -> Iterator[Tuple[str, pa.Table, bool]]:
    """(partition, rows, rows are strictly ascending) per curated partition of an archive file's
    rows: a UTC day, or a UTC month for the month-grain intervals (:func:`layout.grain`).

    Archive files are sorted and unique, so the usual case is zero-copy slices at the day
    changes; anything else falls back to one filter per day (merge_day then dedupes).
    """
    if layout.grain(interval) == layout.MONTH:
        yield from _split_months(table, open_ms)
        return
    days = pc.divide(open_ms, MS_PER_DAY)
    n = len(open_ms)
    if n > 1 and pc.all(pc.greater(open_ms[1:], open_ms[:-1])).as_py():
        cuts = [0, *(i + 1 for i in pc.indices_nonzero(pc.not_equal(days[1:], days[:-1])).to_pylist()), n]
        for a, b in zip(cuts, cuts[1:]):
            yield ms_to_date(days[a].as_py() * MS_PER_DAY), table.slice(a, b - a), True
        return
    for day in sorted(pc.unique(days).to_pylist()):
        yield ms_to_date(day * MS_PER_DAY), table.filter(pc.equal(days, day)), False


def _split_months(table: pa.Table, open_ms: pa.Array) -> Iterator[Tuple[str, pa.Table, bool]]:
    """split_days for month partitions: a few hundred rows at most, one filter per month."""
    months = pc.strftime(pc.cast(open_ms, pa.timestamp("ms", tz="UTC")), format="%Y-%m")
    ordered = len(open_ms) <= 1 or pc.all(pc.greater(open_ms[1:], open_ms[:-1])).as_py()
    for month in sorted(pc.unique(months).to_pylist()):
        yield month, table.filter(pc.equal(months, month)), bool(ordered)


def write_sidecar(lake: Lake, f: ArchiveFile, body: Dict[str, Any]) -> None:
    """The commit record of a folded file, made durable after the zip and its partitions."""
    lake.sync()  # the zip and its partitions are durable before the sidecar records them
    lake.write_bytes(f.sidecar_key, json.dumps(body).encode())
    lake.sync()


def drop_gaps_from(lake: Lake, f: ArchiveFile) -> None:
    """Delete exchange-gap records that an earlier version of this archive file produced."""
    prefix = layout.gaps_prefix(f.symbol, f.interval)
    lo, hi = f.span
    for name in lake.list_children(prefix):
        window = layout.parse_window_name(name)
        if not window or window[0] < lo or window[1] > hi:
            continue
        key = layout.child(prefix, name)
        try:
            if json.loads(lake.read_bytes(key)).get("source_key") == f.key:
                lake.delete(key)
        except (KeyError, ValueError):
            continue
