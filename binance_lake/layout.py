"""The lake's layout: the only module that builds or parses a lake key.

Modelled on dlt's ``destinations/impl/filesystem/layout.py``: every other module (core,
CDK zone prefixes, verify, the Python API, the DuckDB views) asks this one for a key or
a prefix and for the values encoded in one. Keys are ``/``-separated, relative to the
lake root; partition directories are Hive style (``name=value``)::

    raw/klines/interval=1m/symbol=BTCUSDT/date=2024-03-01/<start_ms>-<end_ms>.json   REST page
    raw/klines/.../date=2024-03-01/<start_ms>-<end_ms>.r<fetched_ms>.json    the same window re-fetched
                                                      with candles that were missing (late data)
    raw/orders/symbol=BTCUSDT/date=2024-03-01/<fetched>-<run>-<page>-<kind>-<first>-<last>.json
    raw/trades/symbol=BTCUSDT/date=2024-03-01/<fetched>-<run>-<page>-<kind>-<first>-<last>.json
    raw/_pending/<raw key without raw/>               marker: raw file not yet in curated
    raw/_gaps/candles/interval=1m/symbol=X/<start_ms>-<end_ms>.json   exchange gap
    raw/_resolved/orders/symbol=X/<order id>.json     order Binance no longer knows
    raw/_runs/<table>/symbol=X/last.json              last run summary (one symbol's run: the CLI)
    raw/_runs/<table>/tick.json                       last run summary of every symbol of a tick
    raw/archive/klines/interval=1m/symbol=X/<monthly|daily>/<X>-1m-<period>.zip (+ .zip.json sidecar)
    curated/candles/interval=1m/symbol=X/date=D/part-0.parquet         day partition (below 1h)
    curated/candles/interval=1h/symbol=X/date=M/part-0.parquet         month partition (1h and up), M = 2024-03
    curated/orders/symbol=X/date=D/part-0.parquet
    curated/_locks/<table>/symbol=X.lock              per-(table, symbol) writer lease
    curated/_index/orders/symbol=X.json               orders cursor
    curated/_index/trades/symbol=X.json               trades cursor
    curated/_verify/<started>-<run>.json              verify reports
    curated/_verify/<started>-<run>-archive.json      the daily verify's REST-against-archive report
    quarantine/<raw key without raw/>(.reason.json)   unusable raw file
    quarantine/<partition without curated/>/<name>    rejected rows

Pure string functions (no I/O, no pyarrow): the extractor Lambdas and the CDK use it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from binance_lake.errors import BadInputError
from binance_lake.schema import CANDLES, ORDERS, TABLES, TRADES, Table
from binance_lake.times import INTERVALS, MS_PER_DAY, check_interval, date_to_ms, ms_to_date, next_open

RAW, CURATED, QUARANTINE = "raw", "curated", "quarantine"
PENDING = f"{RAW}/_pending"
GAPS = f"{RAW}/_gaps"
RESOLVED = f"{RAW}/_resolved"
RUNS = f"{RAW}/_runs"
ARCHIVE_ZONE = f"{RAW}/archive"
ARCHIVE = f"{ARCHIVE_ZONE}/klines"
LOCKS = f"{CURATED}/_locks"
INDEX = f"{CURATED}/_index"
VERIFY = f"{CURATED}/_verify"
ARCHIVE_KINDS = ("monthly", "daily")
SIDECAR_SUFFIX = ".zip.json"
PART_NAME = "part-0.parquet"
REASON_SUFFIX = ".reason.json"


def zone(name: str) -> str:
    """A prefix as the CDK names it in IAM resources and lifecycle rules: ``raw/_pending/``."""
    return name.rstrip("/") + "/"


# -- partition grain: how much time one candle partition holds ----------------------------------
#
# The one definition of the grain (docs/intervals.md). Below 1h a UTC day is a useful file (1s:
# 86,400 rows, 1m: 1,440, 30m: 48); from 1h up a day would hold 24 rows or fewer (1d: one, 1M: a
# file per day with no row at all on most days), so those intervals get one partition per UTC
# month (1h: up to 744 rows, 1d: up to 31, 1M: one). The partition directory keeps its name,
# ``date=``, so every reader (DuckDB's Hive columns, the Python API) sees one ``date`` column:
# ``YYYY-MM-DD`` for a day partition, ``YYYY-MM`` for a month partition. Orders and trades are
# always day partitions. Raw REST pages are filed under the same grain (a page is cut at
# partition boundaries); raw pages an older version filed by day stay where they are (raw is
# immutable) and fold into the month that holds their day.
DAY, MONTH = "day", "month"
MONTH_GRAIN_INTERVALS = frozenset(INTERVALS[INTERVALS.index("1h"):])


def grain(interval: str) -> str:
    """``day`` or ``month``: the curated candle partition size of ``interval``."""
    return MONTH if check_interval(interval) in MONTH_GRAIN_INTERVALS else DAY


def is_month(period: str) -> bool:
    return len(period) == 7


def period_of(ms: int, interval: str) -> str:
    """The partition value holding a candle that opens at ``ms``: ``2024-03-05`` or ``2024-03``."""
    day = ms_to_date(ms)
    return day[:7] if grain(interval) == MONTH else day


def period_of_value(value: str, interval: str) -> str:
    """The curated partition of a raw or curated ``date=`` value (a day or a month) under the
    current grain: ``2024-03-05`` of a 1h interval is ``2024-03``."""
    return value[:7] if grain(interval) == MONTH else value


def is_old_layout(interval: str, value: str) -> bool:
    """A day partition of a month-grain interval: written before intervals from 1h got month
    partitions; ``transform --rebuild`` rewrites it as its month."""
    return grain(interval) == MONTH and not is_month(value)


def curated_candle_periods(keys: List[str]) -> List[str]:
    """The ``date=`` values of the partition files among ``keys`` (a listing of curated candles)."""
    return sorted({values_of(k)["date"] for k in keys if k.endswith("/" + PART_NAME) and "date" in values_of(k)})


def period_bounds(period: str) -> Tuple[int, int]:
    """[start, end) in epoch ms of a day (``2024-03-05``) or a month (``2024-03``)."""
    if is_month(period):
        lo = date_to_ms(period + "-01")
        return lo, next_open(lo, "1M")
    lo = date_to_ms(period)
    return lo, lo + MS_PER_DAY


def periods_between(start: int, end: int, interval: str) -> List[str]:
    """The partitions of ``interval`` that [start, end) touches, ascending."""
    out: List[str] = []
    t = start
    while t < end:
        out.append(period_of(t, interval))
        t = period_bounds(out[-1])[1]
    return out


def split_by_period(start: int, end: int, interval: str) -> List[Tuple[int, int]]:
    """[start, end) cut at partition boundaries, so each raw file belongs to one partition."""
    out, s = [], start
    while s < end:
        e = min(period_bounds(period_of(s, interval))[1], end)
        out.append((s, e))
        s = e
    return out


def period_in(value: str, lo: Optional[int], hi: Optional[int]) -> bool:
    """Whether partition ``value`` (a day or a month) can hold a time in ``[lo, hi)``."""
    try:
        p_lo, p_hi = period_bounds(value)
    except BadInputError:
        return False  # not a partition name
    return (lo is None or p_hi > lo) and (hi is None or p_lo < hi)


# -- partition directories ---------------------------------------------------------------


def hive(name: str, value: str) -> str:
    return f"{name}={value}"


def values_of(key: str) -> Dict[str, str]:
    """Every ``name=value`` directory of a key: ``{"interval": "1m", "symbol": "X", "date": "D"}``."""
    return dict(p.split("=", 1) for p in key.split("/") if "=" in p)


def child(prefix: str, name: str) -> str:
    """The key of ``name`` listed under ``prefix`` (``Lake.list_children``)."""
    return f"{prefix.rstrip('/')}/{name}"


def value_of(part: str) -> str:
    """``symbol=BTCUSDT`` -> ``BTCUSDT`` (a name without ``=`` is returned as is)."""
    return part.split("=", 1)[1] if "=" in part else part


def _dirs(table: Table, values: Dict[str, str]) -> List[str]:
    return [hive(p.name, values[p.name]) for p in table.partition_keys if p.name in values]


def partition(table: Table, **values: str) -> str:
    """Curated partition directory; all of the table's partition keys must be given."""
    missing = [p.name for p in table.partition_keys if p.name not in values]
    if missing:
        raise ValueError(f"partition of {table.name} needs {missing}")
    return "/".join([table.curated_prefix, *_dirs(table, values)])


def partition_prefix(table: Table, **values: str) -> str:
    """Curated directory for a leading subset of the partition keys (``interval``, ``symbol``)."""
    return "/".join([table.curated_prefix, *_dirs(table, values)])


def part_key(partition_dir: str) -> str:
    return f"{partition_dir}/{PART_NAME}"


def curated_glob(table: Table) -> str:
    """Every data file of a curated table, for DuckDB's ``read_parquet``."""
    return "/".join([table.curated_prefix, *("*" for _ in table.partition_keys), "*.parquet"])


# -- raw REST pages ------------------------------------------------------------------------


def raw_prefix(table: Table, **values: str) -> str:
    return "/".join([table.raw_prefix, *_dirs(table, values)])


def raw_partition(table_name: str, symbol: str, date: str, interval: Optional[str] = None) -> str:
    if table_name == CANDLES.name:
        return raw_prefix(CANDLES, interval=interval or "", symbol=symbol, date=date)
    return raw_prefix(TABLES[table_name], symbol=symbol, date=date)


def window_name(start: int, end: int) -> str:
    return f"{start}-{end}.json"


# A window re-fetched after Binance published minutes it had answered empty: raw is immutable,
# so the new reply gets its own name, ``<start>-<end>.r<fetched_ms>.json`` (the fetch time keeps
# every revision unique and sorts after the window's first file).
REVISION_MARK = ".r"


def revision_name(start: int, end: int, fetched_ms: int) -> str:
    return f"{start}-{end}{REVISION_MARK}{fetched_ms}.json"


def _window_parts(name: str) -> Optional[Tuple[int, int, Optional[int]]]:
    stem = name[:-5] if name.endswith(".json") else name
    window, mark, revision = stem.partition(REVISION_MARK)
    if mark and not revision.isdigit():
        return None
    parts = window.split("-")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1]), int(revision) if mark else None
    return None


def parse_window_name(name: str) -> Optional[Tuple[int, int]]:
    """``<start>-<end>.json`` (or a revision of it) -> (start, end); None for any other name."""
    parts = _window_parts(name)
    return (parts[0], parts[1]) if parts else None


def window_revision(name: str) -> Optional[int]:
    """The fetch time of a revision name (``<start>-<end>.r<fetched>.json``); None otherwise."""
    parts = _window_parts(name)
    return parts[2] if parts else None


def candle_raw_key(symbol: str, interval: str, start: int, end: int, revision: Optional[int] = None) -> str:
    """A REST candle page lives in the partition (day or month, :func:`grain`) of its first
    candle; ``revision`` (a fetch time) names a later reply for a window whose first file already exists."""
    name = window_name(start, end) if revision is None else revision_name(start, end, revision)
    return f"{raw_partition(CANDLES.name, symbol, period_of(start, interval), interval)}/{name}"


def candle_partition_of_raw(raw_key: str) -> Tuple[str, str, str, str]:
    """raw/klines/interval=1m/symbol=X/date=D/f.json -> (curated partition, interval, symbol, period).
    A raw page filed by day under a month-grain interval (an older lake) goes to its month."""
    v = values_of(raw_key)
    interval, symbol = v["interval"], v["symbol"]
    period = period_of_value(v["date"], interval)
    return candle_partition(symbol, interval, period), interval, symbol, period


def candle_partition(symbol: str, interval: str, period: str) -> str:
    """The curated candle partition of ``period`` (checked against the interval's grain)."""
    if is_month(period) != (grain(interval) == MONTH):
        raise ValueError(f"{period!r} is not a {grain(interval)} partition of interval {interval}")
    return partition(CANDLES, interval=interval, symbol=symbol, date=period)


def symbol_of(key: str) -> str:
    return values_of(key)["symbol"]


def date_of(key: str) -> str:
    return values_of(key)["date"]


def raw_dir_of(raw_key: str) -> str:
    return raw_key.rsplit("/", 1)[0]


def file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


# Raw orders pages are named <fetched>-<run>-<page>-<kind>-<first id>-<last id>.json.
def order_page_name(fetched: int, run_id: str, page: int, kind: str, first: int, last: int) -> str:
    return f"{fetched}-{run_id}-{page:05d}-{kind}-{first}-{last}.json"


def parse_order_page(raw_key: str) -> Optional[Tuple[int, str, int, int]]:
    """(fetched ms, kind, first id, last id) of a raw orders page key or name, or None."""
    parts = file_name(raw_key)[: -len(".json")].split("-")
    if len(parts) == 6 and parts[0].isdigit() and parts[4].isdigit() and parts[5].isdigit():
        return int(parts[0]), parts[3], int(parts[4]), int(parts[5])
    return None


# -- pending markers -------------------------------------------------------------------------


def pending_key(raw_key: str) -> str:
    """``raw/klines/...`` -> ``raw/_pending/klines/...``."""
    return f"{PENDING}/{raw_key[len(RAW) + 1:]}"


def is_marker(key: str) -> bool:
    return key.startswith(PENDING + "/")


def raw_key_of_marker(marker: str) -> str:
    """``raw/_pending/klines/...`` -> ``raw/klines/...``; a raw key is returned as is."""
    return f"{RAW}/{marker[len(PENDING) + 1:]}" if is_marker(marker) else marker


def pending_prefix(table: Table, **values: str) -> str:
    return pending_key(raw_prefix(table, **values))


# -- exchange gaps, resolved orders, run records, index, locks, reports ------------------------


def gaps_prefix(symbol: str, interval: str) -> str:
    return f"{GAPS}/{CANDLES.name}/{hive('interval', interval)}/{hive('symbol', symbol)}"


def gap_key(symbol: str, interval: str, start: int, end: int) -> str:
    return f"{gaps_prefix(symbol, interval)}/{window_name(start, end)}"


def resolved_prefix(symbol: str) -> str:
    return f"{RESOLVED}/{ORDERS.name}/{hive('symbol', symbol)}"


def resolved_key(symbol: str, order_id: int) -> str:
    return f"{resolved_prefix(symbol)}/{order_id}.json"


def parse_resolved_name(name: str) -> Optional[int]:
    return int(name[:-5]) if name.endswith(".json") and name[:-5].isdigit() else None


def last_run_key(table: str, symbol: str) -> str:
    """``table`` is ``orders`` or ``candles/interval=1m`` (see :func:`run_table`)."""
    return f"{RUNS}/{table}/{hive('symbol', symbol)}/last.json"


def tick_run_key(table: str) -> str:
    """One record for every symbol an extractor Lambda ran in a tick (one PUT, not one per symbol)."""
    return f"{RUNS}/{table}/tick.json"


def run_table(table: Table, interval: Optional[str] = None) -> str:
    return f"{table.name}/{hive('interval', interval)}" if interval else table.name


def orders_index_key(symbol: str) -> str:
    return f"{INDEX}/{ORDERS.name}/{hive('symbol', symbol)}.json"


def trades_index_key(symbol: str) -> str:
    """The trades cursor of a symbol (highest stored trade id), written by the fold."""
    return f"{INDEX}/{TRADES.name}/{hive('symbol', symbol)}.json"


def lock_key(table: str, symbol: str) -> str:
    return f"{LOCKS}/{table}/{hive('symbol', symbol)}.lock"


def run_lock_key() -> str:
    """The one lease a transform run holds for all of its (table, symbol) pairs (binance_lake.lock.run_lock)."""
    return f"{LOCKS}/run.lock"


def verify_report_key(started: str, run_id: str) -> str:
    return f"{VERIFY}/{started}-{run_id}.json"


def archive_report_key(started: str, run_id: str) -> str:
    """The daily verify's REST-against-archive report (per minute, both values): next to its verify report."""
    return f"{VERIFY}/{started}-{run_id}-archive.json"


# The transform Lambda's freshness state (binance_lake.aws.freshness): one small object, a hint
# that only ever reads staler than curated; covered by the curated/* grants.
FRESHNESS_STATE_KEY = f"{CURATED}/_state/freshness.json"


# -- quarantine --------------------------------------------------------------------------------


def quarantine_file_keys(raw_key: str) -> Tuple[str, str]:
    """(copy of an unusable raw file, its reason record)."""
    return f"{QUARANTINE}/{raw_key}", f"{QUARANTINE}/{raw_key}{REASON_SUFFIX}"


def quarantined_raw_keys(keys: List[str]) -> List[str]:
    """The raw keys of quarantined raw files, from a listing of ``quarantine/raw/``."""
    return [k[len(QUARANTINE) + 1:-len(REASON_SUFFIX)] for k in keys if k.endswith(REASON_SUFFIX)]


def quarantine_rows_key(partition_dir: str, name: str) -> str:
    """Rejected rows of a curated partition: ``quarantine/candles/.../<name>``."""
    return f"{QUARANTINE}/{partition_dir[len(CURATED) + 1:]}/{name}"


# -- public archive files ------------------------------------------------------------------------


def archive_dir(symbol: str, interval: str, kind: str) -> str:
    return f"{ARCHIVE}/{hive('interval', interval)}/{hive('symbol', symbol)}/{kind}"


def archive_kind(period: str) -> str:
    """``2024-01`` is a monthly file, ``2024-01-05`` a daily one."""
    return "monthly" if len(period) == 7 else "daily"


# data.binance.vision spells the month interval ``1mo`` in its paths and file names (its README,
# "Intervals": ``1s 1m ... 1d 3d 1w 1mo``; ``1mo`` is used instead of ``1M`` to support
# non-case-sensitive file systems); the lake keeps Binance's API name ``1M`` in its own directories.
ARCHIVE_INTERVAL_NAMES = {"1M": "1mo"}


def archive_interval(interval: str) -> str:
    return ARCHIVE_INTERVAL_NAMES.get(interval, interval)


def archive_name(symbol: str, interval: str, period: str) -> str:
    return f"{symbol}-{archive_interval(interval)}-{period}.zip"


def archive_key(symbol: str, interval: str, period: str) -> str:
    return f"{archive_dir(symbol, interval, archive_kind(period))}/{archive_name(symbol, interval, period)}"


def sidecar_key(zip_key: str) -> str:
    return zip_key[: -len(".zip")] + SIDECAR_SUFFIX


def archive_period_of_sidecar(symbol: str, interval: str, name: str) -> Optional[str]:
    """The period of a sidecar name (``X-1m-2024-01.zip.json`` -> ``2024-01``), else None."""
    prefix = f"{symbol}-{archive_interval(interval)}-"
    if name.startswith(prefix) and name.endswith(SIDECAR_SUFFIX):
        return name[len(prefix):-len(SIDECAR_SUFFIX)]
    return None


def archive_url(base_url: str, symbol: str, interval: str, period: str) -> str:
    """data.binance.vision's path of a kline zip (binance-public-data README)."""
    name, kind = archive_name(symbol, interval, period), archive_kind(period)
    return f"{base_url.rstrip('/')}/data/spot/{kind}/klines/{symbol}/{archive_interval(interval)}/{name}"
