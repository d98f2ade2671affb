"""Backfill: verified public-archive files through the fold, then REST for the holes and the tail.

Per archive file (:func:`backfill_file`, also what each Spark task runs): verify and store the
zip (:mod:`binance_lake.sources.archive`), fold its days into curated under the symbol's lock
(:func:`binance_lake.fold.fold_archive_file`), then write its sidecar (the commit record).
Then :func:`binance_lake.jobs.sync.sync_candles` fills what the archive lacks: holes and the
days after its end, up to the last closed candle, starting exactly at the archive's end so the
boundary has no duplicate. A sync running at the same time is safe: both write through the fold.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from binance_lake.errors import (
    BadInputError,
    BinanceError,
    BinanceUnavailableError,
    DamagedFileError,
    GeoBlockedError,
    IpBannedError,
    Rejected,
)
from binance_lake.fold import fold_archive_file
from binance_lake.jobs.sync import sync_candles
from binance_lake.lake import Lake
from binance_lake.sources.archive import (
    ArchiveConfig,
    ArchiveFile,
    ChecksumMismatch,
    FileProgress,
    FileResult,
    NotInArchive,
    PlannedFile,
    checked_zip,
    month_of,
    plan_files,
    read_archive_csv,
    read_sidecar,
    verified_zip,
    write_sidecar,
)
from binance_lake.sources.coverage import archive_coverage, archive_period_range, merge_ranges
from binance_lake.sources.rest.candles import first_candle_ms
from binance_lake.times import floor_to, interval_ms, ms_to_iso
from binance_lake.verify import ArchiveCheck, against_archive

log = logging.getLogger(__name__)


def backfill_file(lake: Lake, planned: PlannedFile, cfg: ArchiveConfig) -> FileResult:
    """Verify, store, fold and mark one archive file. Never raises for one bad file."""
    f, published = planned.file, planned.published
    result = FileResult(f.name, f.period, "missing")
    if published is None:
        return result
    sidecar = read_sidecar(lake, f)
    if sidecar and sidecar.get("published_checksum") == published and not cfg.force:
        result.status, result.rows = "up-to-date", int(sidecar.get("rows", 0))
        try:
            checked_zip(lake, f)  # "verified once" is not enough: the stored copy may have been damaged since
        except DamagedFileError as exc:
            restore_file(lake, planned, cfg, result, exc)
        return result
    try:
        data, downloaded_at, result.downloaded = verified_zip(lake, f, published, cfg)
        if result.downloaded:
            lake.write_bytes(f.key, data)  # verified: a replaced file overwrites the old version
        table, header = read_archive_csv(data, f.name)
        replaced = bool(sidecar) and sidecar.get("published_checksum") != published
        fold_archive_file(lake, f, table, downloaded_at, planned.first, replaced, result)
    except (ChecksumMismatch, Rejected, BinanceUnavailableError) as exc:
        result.status, result.reason = "failed", str(exc)
        log.error("archive file %s not used: %s", f.name, exc)
        return result
    body = {"file": f.name, "url": f.url(cfg.base_url), "sha256": published, "published_checksum": published,
            "downloaded_at": downloaded_at, "curated_at": int(time.time() * 1000), "rows": result.rows,
            "rejected_rows": result.rejected, "header_row": header, "covered": list(f.span),
            "exchange_gaps": [list(g) for g in result.exchange_gaps]}
    write_sidecar(lake, f, body)
    result.status = "curated"
    return result


def restore_file(lake: Lake, planned: PlannedFile, cfg: ArchiveConfig, result: FileResult,
                 damage: DamagedFileError) -> None:
    """Replace a damaged stored zip with a fresh download that hashes to the published sha256.

    The sidecar already records that sha256, so the new bytes are the ones curated was made
    from, byte for byte: nothing is re-folded and the sidecar (the coverage claim) stays.
    """
    f = planned.file
    log.warning("%s; re-downloading it", damage)
    try:
        data, _, _ = verified_zip(lake, f, str(planned.published), cfg)
    except (ChecksumMismatch, BinanceUnavailableError, NotInArchive) as exc:
        result.status, result.reason = "failed", f"{damage}; the re-download failed too: {exc or 'not in the archive'}"
        log.error("archive file %s not restored: %s", f.name, result.reason)
        return
    lake.write_bytes(f.key, data)
    result.status, result.downloaded = "restored", True


# -- backfill: archive files through the fold, then REST for the holes and the tail ----------


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
            "files_restored": self.count("restored"),
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
    """backfill_file over ``planned``, at most 2 x workers in flight: memory stays ~workers months."""
    futures: List[Any] = []
    done, rows = 0, 0
    try:
        for i, p in enumerate(planned):
            futures.append(pool.submit(backfill_file, lake, p, cfg))
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
    with lake.deferred_sync(), ThreadPoolExecutor(max_workers=max(1, cfg.workers)) as pool:
        planned = plan_files(symbol, interval, start, end, now_ms, cfg, pool)
        result.files = list(run_files(lake, planned, cfg, pool, progress))
    covered = [c for c in archive_coverage(lake, symbol, interval) if c[1] > start and c[0] < end]
    result.archive_end = covered[-1][1] if covered else None
    result.rest_ranges = rest_ranges(start, end, covered)
    result.seconds = time.time() - started
    return result


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
                result.rest.append(sync_candles(client, lake, symbol, interval, s, e, cfg.workers,
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


def verify_against_archive(lake: Lake, symbols: Sequence[str], interval: str, dates: Sequence[str],
                           cfg: ArchiveConfig, adopt: bool) -> List[ArchiveCheck]:
    """``verify --against-archive``: each day's REST candles against its published daily file.

    The archive wins a disagreement (see :mod:`binance_lake.verify`); with ``adopt`` (not a dry
    run) a mismatched day's verified zip is backfilled: stored in raw and folded as the newest
    fetch, the REST pages kept in raw. A day whose daily file was folded before and still
    differs (REST fetched again since) is left as reported, for a human.
    """
    checks = [against_archive(lake, s, interval, d, cfg) for s in symbols for d in dates]
    for c in checks:
        if not (adopt and c.status == "mismatch" and c.published):
            continue
        f = ArchiveFile(c.symbol, c.interval, c.date)
        if read_sidecar(lake, f) is not None:
            c.reason = "the daily file was folded before and REST differs again; compare the two and decide"
            continue
        r = backfill_file(lake, PlannedFile(f, c.published), cfg)
        c.status, c.reason = ("adopted", "") if r.status == "curated" else ("mismatch", r.reason)
    return checks


# REST failures a backfill survives: the archive part does not need REST.
REST_REFUSED = (GeoBlockedError, BinanceUnavailableError, IpBannedError)


EARLIEST_ARCHIVE_MS = 1498867200000  # 2017-07-01: before Binance's first archive month (2017-08)
