"""Backfill from Binance's public archive (data.binance.vision) straight into curated.

How archive data enters the lake (one file at a time, so memory stays at about one month):

1. **Plan.** Whole past months come as monthly zips, the rest (the current month, or a
   month whose monthly file is not published yet) as daily zips. Every candidate's
   ``.CHECKSUM`` is fetched first: it is tiny, it says whether the file exists, and it is
   what we re-verify against on every run (Binance replaces archive files).
2. **Verify.** A file whose sidecar records the same published checksum is done: skipped
   without downloading. Otherwise the zip is downloaded (or the stored copy reused when
   its sha256 still matches) and must hash to the published sha256; a mismatch is
   retried, then reported. An unverified zip is never written to the lake.
3. **Store raw.** The verified zip is kept, immutable per checksum, at
   ``raw/archive/klines/interval=1m/symbol=X/<monthly|daily>/<X>-1m-<period>.zip``.
4. **Curate.** Its CSV (ms or µs, header or not) goes through
   :func:`binance_lake.transform.candles_from_arrow` -- the same casts, checks and schema
   as the REST path -- and each UTC day is merged into its curated partition with the
   core ``dedupe`` (newest ``ingested_at`` wins). Lineage: ``source_key`` is the zip's
   lake key, ``ingested_at`` its download time. Minutes missing from the file are
   recorded as exchange gaps, like REST ones.
5. **Mark.** Only then the sidecar ``<name>.zip.json`` (sha256, published checksum, URL,
   download time, rows, gaps) is written. Its name is the coverage claim that
   ``extract.archive_coverage`` and the REST watermark read, so a crash before this
   point just redoes the file (idempotent: deterministic keys, dedupe on open time).

Finally the REST path (``jobs.sync_candles``) fills what the archive lacks: holes and
the days after its end, up to the last closed candle, starting exactly at the archive's
end so the boundary has no duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from binance_lake.errors import BadInputError, BinanceError, BinanceUnavailableError, GeoBlockedError, IpBannedError
from binance_lake.extract import (
    SIDECAR_SUFFIX,
    archive_coverage,
    archive_dir,
    archive_period_range,
    archive_periods,
    gap_key,
    merge_ranges,
    missing_ranges,
    parse_window_name,
    record_exchange_gap,
)
from binance_lake.lake import Lake, sync_lake
from binance_lake.schema import CANDLES
from binance_lake.times import MS_PER_DAY, date_to_ms, day_start, interval_ms, ms_to_date, ms_to_iso
from binance_lake.transform import (
    Rejected,
    candles_from_arrow,
    dedupe,
    ms_array,
    quarantine_rows,
    read_partition,
    rebuild_candles,
    write_partition,
)

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


@dataclass(frozen=True)
class ArchiveFile:
    """One archive zip: a symbol's month (``2024-01``) or day (``2024-01-05``)."""

    symbol: str
    interval: str
    period: str

    @property
    def kind(self) -> str:
        return "monthly" if len(self.period) == 7 else "daily"

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.interval}-{self.period}.zip"

    @property
    def key(self) -> str:
        return f"{archive_dir(self.symbol, self.interval, self.kind)}/{self.name}"

    @property
    def sidecar_key(self) -> str:
        return self.key[: -len(".zip")] + SIDECAR_SUFFIX

    @property
    def span(self) -> Tuple[int, int]:
        return archive_period_range(self.period)

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/data/spot/{self.kind}/klines/{self.symbol}/{self.interval}/{self.name}"


@dataclass
class FileResult:
    file: str
    period: str
    status: str  # curated | up-to-date | missing | failed
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
        return json.loads(lake.read_bytes(f.sidecar_key))
    except (KeyError, ValueError):
        return None


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


def recurate_stored(lake: Lake, symbol: str, interval: str) -> List[FileResult]:
    """Re-curate every stored, verified archive zip from the lake alone (no network).

    ``transform --rebuild`` calls it so that days the archive brought are rebuilt too; each
    zip is checked against the sha256 its sidecar recorded before it is used.
    """
    results = []
    for i, f in enumerate(stored_files(lake, symbol, interval)):
        result = FileResult(f.name, f.period, "failed")
        sidecar = read_sidecar(lake, f) or {}
        try:
            data = lake.read_bytes(f.key)
            if hashlib.sha256(data).hexdigest() != sidecar.get("sha256"):
                raise Rejected(f"{f.name}: stored zip no longer matches its recorded sha256; run backfill again")
            table, _ = read_archive_csv(data, f.name)
            curate_file(lake, f, table, int(sidecar.get("downloaded_at", 0)), i == 0, False, result)
            result.status = "curated"
        except (KeyError, Rejected) as exc:
            result.reason = str(exc)
            log.error("archive file %s not re-curated: %s", f.name, exc)
        results.append(result)
    return results


def stored_archive_rows(lake: Lake, symbol: str, interval: str, date: str) -> Optional[pa.Table]:
    """Curated rows of ``date`` from the verified archive zips already in the lake (no network).

    A curated partition rebuilt "from raw" must include the archive's share of the day,
    not only the REST windows, or a rebuild would drop the rows the archive brought.
    """
    tables = []
    for f in (ArchiveFile(symbol, interval, date[:7]), ArchiveFile(symbol, interval, date)):
        sidecar = read_sidecar(lake, f)
        if sidecar is None:
            continue  # not verified and curated: not part of the lake's claim
        try:
            raw, _ = read_archive_csv(lake.read_bytes(f.key), f.name)
        except (KeyError, Rejected) as exc:
            log.warning("%s: stored archive file unusable for a rebuild (%s); run backfill again", f.name, exc)
            continue
        day_lo = date_to_ms(date)
        open_ms = ms_array(raw.column(0).combine_chunks().cast(pa.int64()))
        day = raw.filter(pc.and_(pc.greater_equal(open_ms, day_lo), pc.less(open_ms, day_lo + MS_PER_DAY)))
        table, _ = candles_from_arrow(symbol, interval, day, int(sidecar.get("downloaded_at", 0)), f.key, date)
        tables.append(table)
    return pa.concat_tables(tables) if tables else None



def read_archive_csv(zip_bytes: bytes, name: str) -> Tuple[pa.Table, bool]:
    """The zip's single CSV as Arrow columns (kline order); (table, had a header row)."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        members = [m for m in zf.namelist() if m.endswith(".csv")]
        if len(members) != 1:
            raise Rejected(f"{name} holds {len(members)} CSV files, expected 1")
        data = zf.read(members[0])
    first = data[: data.find(b"\n")] if b"\n" in data else data
    header = not first.split(b",", 1)[0].strip().isdigit()  # spot files have none; futures do
    opts = pacsv.ReadOptions(column_names=CSV_COLUMNS, skip_rows=1 if header else 0, block_size=1 << 24)
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=opts,
                               convert_options=pacsv.ConvertOptions(column_types=_CSV_TYPES))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise Rejected(f"{name} is not a kline CSV ({str(exc).splitlines()[0][:120]})") from None
    return table, header


def process_file(lake: Lake, planned: PlannedFile, cfg: ArchiveConfig) -> FileResult:
    """Verify, store, curate and mark one archive file. Never raises for one bad file."""
    f, published = planned.file, planned.published
    result = FileResult(f.name, f.period, "missing")
    if published is None:
        return result
    sidecar = read_sidecar(lake, f)
    if sidecar and sidecar.get("published_checksum") == published and not cfg.force:
        result.status, result.rows = "up-to-date", int(sidecar.get("rows", 0))
        return result
    try:
        data, downloaded_at, result.downloaded = verified_zip(lake, f, published, cfg)
        if result.downloaded:
            lake.write_bytes(f.key, data)  # verified: a replaced file overwrites the old version
        table, header = read_archive_csv(data, f.name)
        replaced = bool(sidecar) and sidecar.get("published_checksum") != published
        curate_file(lake, f, table, downloaded_at, planned.first, replaced, result)
    except (ChecksumMismatch, Rejected, BinanceUnavailableError) as exc:
        result.status, result.reason = "failed", str(exc)
        log.error("archive file %s not used: %s", f.name, exc)
        return result
    body = {"file": f.name, "url": f.url(cfg.base_url), "sha256": published, "published_checksum": published,
            "downloaded_at": downloaded_at, "curated_at": int(time.time() * 1000), "rows": result.rows,
            "rejected_rows": result.rejected, "header_row": header, "covered": list(f.span),
            "exchange_gaps": [list(g) for g in result.exchange_gaps]}
    sync_lake(lake)  # the zip and its partitions are durable before the sidecar records them
    lake.write_bytes(f.sidecar_key, json.dumps(body).encode())
    sync_lake(lake)
    result.status = "curated"
    return result


def curate_file(lake: Lake, f: ArchiveFile, raw: pa.Table, downloaded_at: int, first: bool, replaced: bool,
                result: FileResult) -> None:
    """One archive file's rows -> its UTC days' curated partitions, plus its exchange gaps."""
    table, rejected = candles_from_arrow(f.symbol, f.interval, raw, downloaded_at, f.key)
    lo, hi = f.span
    open_ms = table["candle_open_time"].cast(pa.int64())
    inside = pc.and_(pc.greater_equal(open_ms, lo), pc.less(open_ms, hi))
    if not pc.all(inside).as_py():
        stray = table.filter(pc.invert(inside))
        rejected += [(r, f"open time outside {f.name}'s period") for r in stray.to_pylist()]
        table, open_ms = table.filter(inside), open_ms.filter(inside)
    quarantine_rows(lake, CANDLES.partition_path(interval=f.interval, symbol=f.symbol, date=ms_to_date(lo)),
                    f.key, rejected)
    for date, rows, ordered in split_days(table, open_ms):
        merge_day(lake, f, date, rows, ordered)
    result.rows, result.rejected = table.num_rows, len(rejected)
    result.exchange_gaps = file_gaps(open_ms, lo, hi, interval_ms(f.interval), first)
    if replaced:
        drop_gaps_from(lake, f)  # a re-published file may have filled what the old one lacked
    for gap in result.exchange_gaps:
        record_exchange_gap(lake, f.symbol, f.interval, gap, f.key)


def file_gaps(open_ms: pa.Array, lo: int, hi: int, step: int, first: bool) -> List[Tuple[int, int]]:
    """``extract.missing_ranges`` over [lo, hi), vectorised (a month is 44,640 rows).

    In the first file of a symbol the minutes before its first row are pre-listing, not a gap.
    """
    present = pc.unique(open_ms).sort()
    if len(present) == 0:
        return [] if first else [(lo, hi)]
    steps = pc.subtract(present[1:], present[:-1])
    jumps = pc.indices_nonzero(pc.greater(steps, step)).to_pylist()
    inner = [(present[i].as_py() + step, present[i + 1].as_py()) for i in jumps]
    start = present[0].as_py() if first else lo
    edges = missing_ranges(start, hi, [present[0].as_py(), present[-1].as_py()], step)
    return merge_ranges([*(g for g in edges if g[0] < present[0].as_py() or g[0] > present[-1].as_py()), *inner])


def split_days(table: pa.Table, open_ms: pa.Array) -> Iterator[Tuple[str, pa.Table, bool]]:
    """(date, rows, rows are strictly ascending) per UTC day of an archive file's rows.

    Archive files are sorted and unique, so the usual case is zero-copy slices at the day
    changes; anything else falls back to one filter per day (merge_day then dedupes).
    """
    days = pc.divide(open_ms, MS_PER_DAY)
    n = len(open_ms)
    if n > 1 and pc.all(pc.greater(open_ms[1:], open_ms[:-1])).as_py():
        cuts = [0, *(i + 1 for i in pc.indices_nonzero(pc.not_equal(days[1:], days[:-1])).to_pylist()), n]
        for a, b in zip(cuts, cuts[1:]):
            yield ms_to_date(days[a].as_py() * MS_PER_DAY), table.slice(a, b - a), True
        return
    for day in sorted(pc.unique(days).to_pylist()):
        yield ms_to_date(day * MS_PER_DAY), table.filter(pc.equal(days, day)), False


def merge_day(lake: Lake, f: ArchiveFile, date: str, rows: pa.Table, ordered: bool = False) -> None:
    partition = CANDLES.partition_path(interval=f.interval, symbol=f.symbol, date=date)
    try:
        existing = read_partition(lake, partition, CANDLES)
    except Rejected as exc:
        # Keep what REST raw holds for this day, then lay the archive over it.
        log.warning("%s: %s; rebuilding it from raw before merging the archive", partition, exc)
        if _has_rest_raw(lake, f, date):
            rebuild_candles(lake, f.symbol, f.interval, [date])
        existing = _readable(lake, partition)
    if existing is None and ordered:
        merged = rows  # strictly ascending: already what dedupe would return
    elif existing is None and pc.count_distinct(rows["candle_open_time"]).as_py() == rows.num_rows:
        merged = rows.sort_by("candle_open_time")  # what dedupe returns for unique keys, without its group_by
    else:
        merged = dedupe(rows if existing is None else pa.concat_tables([existing, rows]),
                        ["candle_open_time"], ["ingested_at"])
    write_partition(lake, partition, merged)


def _has_rest_raw(lake: Lake, f: ArchiveFile, date: str) -> bool:
    return bool(lake.list_children(f"{CANDLES.raw_prefix}/interval={f.interval}/symbol={f.symbol}/date={date}"))


def _readable(lake: Lake, partition: str) -> Optional[pa.Table]:
    try:
        return read_partition(lake, partition, CANDLES)
    except Rejected:
        return None


def drop_gaps_from(lake: Lake, f: ArchiveFile) -> None:
    """Delete exchange-gap records that an earlier version of this archive file produced."""
    prefix = gap_key(f.symbol, f.interval, 0, 0).rsplit("/", 1)[0]
    lo, hi = f.span
    for name in lake.list_children(prefix):
        window = parse_window_name(name)
        if not window or window[0] < lo or window[1] > hi:
            continue
        try:
            if json.loads(lake.read_bytes(f"{prefix}/{name}")).get("source_key") == f.key:
                lake.delete(f"{prefix}/{name}")
        except (KeyError, ValueError):
            continue


# -- a symbol ----------------------------------------------------------------------------


@dataclass
class BackfillResult:
    symbol: str
    start: int
    end: int
    files: List[FileResult] = field(default_factory=list)
    archive_end: Optional[int] = None
    rest: List[Dict[str, Any]] = field(default_factory=list)
    rest_ranges: List[Tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0
    # REST refused or unreachable (HTTP 451 geo-block, a persisting WAF 403, no network): why,
    # the exit code that error carries, and the ranges REST should have filled but could not.
    rest_error: Optional[str] = None
    rest_exit_code: int = 0
    rest_unfilled: List[Tuple[int, int]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files if f.status == "curated")

    def summary(self) -> Dict[str, Any]:
        return {
            "symbol": self.symbol, "start": ms_to_iso(self.start), "end": ms_to_iso(self.end),
            "files_curated": self.count("curated"), "files_up_to_date": self.count("up-to-date"),
            "files_missing": self.count("missing"), "files_failed": self.count("failed"),
            "files_downloaded": sum(1 for f in self.files if f.downloaded),
            "rows": self.rows, "rejected_rows": sum(f.rejected for f in self.files),
            "failed": [{"file": f.file, "reason": f.reason} for f in self.files if f.status == "failed"],
            "exchange_gaps": [[ms_to_iso(s), ms_to_iso(e)]
                              for s, e in merge_ranges(g for f in self.files for g in f.exchange_gaps)],
            "archive_end": ms_to_iso(self.archive_end) if self.archive_end is not None else None,
            "rest_ranges": [[ms_to_iso(s), ms_to_iso(e)] for s, e in self.rest_ranges],
            "rest_rows": sum(int(r.get("rows", 0)) for r in self.rest), "seconds": round(self.seconds, 3),
            "rest_error": self.rest_error, "rest_exit_code": self.rest_exit_code,
            "rest_unfilled": [[ms_to_iso(s), ms_to_iso(e)] for s, e in self.rest_unfilled],
        }


def run_files(lake: Lake, planned: Sequence[PlannedFile], cfg: ArchiveConfig, pool: ThreadPoolExecutor,
              progress: Optional[FileProgress] = None) -> Iterator[FileResult]:
    """process_file over ``planned``, at most 2 x workers in flight: memory stays ~workers months."""
    futures: List[Any] = []
    done, rows = 0, 0
    try:
        for i, p in enumerate(planned):
            futures.append(pool.submit(process_file, lake, p, cfg))
            last = i == len(planned) - 1
            while futures and (last or len(futures) >= 2 * max(1, cfg.workers)):
                r = futures.pop(0).result()
                done, rows = done + 1, rows + r.rows
                if progress:
                    progress(done, len(planned), rows)
                yield r
    finally:
        for fut in futures:  # interrupted: files not started stay for the rerun
            fut.cancel()


def backfill_archive(lake: Lake, symbol: str, start: int, end: int, now_ms: int, cfg: ArchiveConfig,
                     interval: str = "1m", progress: Optional[FileProgress] = None) -> BackfillResult:
    """Archive part of a backfill for one symbol: plan, verify, store, curate, mark."""
    started = time.time()
    if start >= end:
        raise BadInputError(f"--start {ms_to_iso(start)} is not before --end {ms_to_iso(end)}")
    result = BackfillResult(symbol, start, end)
    with deferred_sync(lake), ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        planned = plan_files(symbol, interval, start, end, now_ms, cfg, pool)
        result.files = list(run_files(lake, planned, cfg, pool, progress))
    covered = [c for c in archive_coverage(lake, symbol, interval) if c[1] > start and c[0] < end]
    result.archive_end = covered[-1][1] if covered else None
    result.rest_ranges = rest_ranges(start, end, covered)
    result.seconds = time.time() - started
    return result


@contextlib.contextmanager
def deferred_sync(lake: Lake) -> Iterator[None]:
    """fsync once per archive file (before its sidecar) instead of per partition written.

    Safe here because the sidecar is the commit record: a file without one is curated
    again on rerun (see ``LocalLake`` for what a power loss may leave). About 30 day
    partitions per month otherwise cost ~60 fsyncs each.
    """
    before = getattr(lake, "defer_sync", None)
    if before is None:  # S3: every PUT is durable already
        yield
        return
    lake.defer_sync = True  # type: ignore[attr-defined]
    try:
        yield
    finally:
        lake.defer_sync = before  # type: ignore[attr-defined]


def rest_ranges(start: int, end: int, covered: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    """What REST must fetch: holes between archive files and the tail after the archive.

    Nothing before the archive's first file (the symbol was not listed); everything if
    the archive has no file of the range at all (REST itself skips pre-listing minutes).
    """
    if not covered:
        return [(start, end)]
    holes, cursor = [], covered[0][0]
    for s, e in covered:
        if s > cursor:
            holes.append((cursor, s))
        cursor = max(cursor, e)
    if cursor < end:
        holes.append((cursor, end))
    return holes


def utc_now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def backfill(lake: Lake, symbol: str, start: Optional[int], end: Optional[int], cfg: ArchiveConfig,
             client: Any = None, interval: str = "1m", progress: Optional[FileProgress] = None,
             rest_progress: Optional[Callable[[int, int], None]] = None, now_ms: Optional[int] = None
             ) -> BackfillResult:
    """Archive first, then REST (when ``client`` is given) for the holes and the tail.

    Without ``--start`` the range begins at the symbol's first candle (asked of the REST
    API when a client is given, else 2017-07-01, before Binance's first archive month).
    """
    from binance_lake import jobs  # jobs pulls in the REST client; the Spark path needs neither
    from binance_lake.extract import first_candle_ms
    from binance_lake.times import floor_to

    step = interval_ms(interval)
    refused: Optional[BinanceError] = None
    listed = None
    if client is not None:
        try:
            now_ms = client.server_time() if now_ms is None else now_ms
            client.symbol_info(symbol)  # unknown symbol: a clear error before anything is written
            listed = first_candle_ms(client, symbol, interval) if start is None else None
        except REST_REFUSED as exc:
            # REST is refused (451) or unreachable: the archive part needs no REST at all.
            refused = exc
            log.warning("%s; backfilling from the public archive only", exc)
    if now_ms is None:
        now_ms = utc_now_ms()
    if start is None:
        # The listing month's monthly file holds the first candle: start at that month.
        start = archive_period_range(month_of(listed))[0] if listed is not None else EARLIEST_ARCHIVE_MS
    last_closed_end = floor_to(now_ms, step)
    end = last_closed_end if end is None else min(end, last_closed_end)
    result = backfill_archive(lake, symbol, start, end, now_ms, cfg, interval, progress)
    if client is not None:
        todo = [(s, e) for s, e in result.rest_ranges if s < e]
        for i, (s, e) in enumerate(todo):
            if refused is not None:
                result.rest_unfilled = todo[i:]
                break
            try:
                result.rest.append(jobs.sync_candles(client, lake, symbol, interval, s, e, cfg.workers,
                                                     rest_progress))
            except REST_REFUSED as exc:
                refused = exc
                result.rest_unfilled = todo[i:]  # what this range stored before failing stays
        if refused is not None:
            result.rest_error = str(refused)
            result.rest_exit_code = refused.exit_code if result.rest_unfilled else 0
    result.seconds = result.seconds if client is None else result.seconds + sum(
        float(r.get("seconds", 0)) for r in result.rest)
    return result


# REST failures a backfill survives: the archive part does not need REST.
REST_REFUSED = (GeoBlockedError, BinanceUnavailableError, IpBannedError)


EARLIEST_ARCHIVE_MS = 1498867200000  # 2017-07-01: before Binance's first archive month (2017-08)
