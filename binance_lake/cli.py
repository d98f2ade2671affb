"""The ``binance-lake`` command.

Every command ends with a one-line summary on stdout (JSON with ``--json``; one per symbol
and interval, then a total, when several are asked for); progress and logs go to stderr.
Settings resolve flag > env > binance-lake.toml > default (config.py); docs/cli.md is generated
from this parser (scripts/gen_cli_docs.py). Exit codes (the README's "Exit codes" table, kept equal to
``EXIT_CODES`` by tests/test_cli_exits.py): 0 ok, 2 bad input or configuration (also a range
with nothing in it, a lake directory that does not exist), 3 Binance refused (key, signature,
clock, ban), 4 Binance/network unavailable, 5 storage error (read-only, full, unreadable; also:
a stored archive zip fails its sha256 check; `backfill` again restores it), 6 needs attention:
``verify`` left a mismatch unrepaired (rows raw cannot explain, a dry run's mismatch, a lock),
or ``transform`` met a raw page that does not parse or kept curated rows no raw page explains,
130 interrupted. "Nothing done" where something was asked is never 0.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import logging
import os
import sys
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from binance_lake.config import DEFAULTS, Setting, resolve, split_list
from binance_lake.config import FILE_NAME as CONFIG_FILE
from binance_lake.errors import (
    EXIT_ATTENTION,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_STORAGE,
    BadInputError,
    LakeError,
)
from binance_lake.sources.coverage import RECHECK_HORIZON_MS, RECHECK_POLICIES
from binance_lake.times import interval_ms

log = logging.getLogger("binance_lake")

# The one exit-code table (README "Exit codes"); errors.py holds the codes the errors carry.
EXIT_CODES: Dict[int, str] = {
    0: "done", 2: "bad input or configuration", 3: "Binance refused", 4: "Binance or the network unavailable",
    5: "the lake could not be read or written", 6: "verify left a mismatch unrepaired", 130: "interrupted",
}
EMULATOR_KEY, EMULATOR_SECRET = "emulator-key", "emulator-secret"  # `binance-lake emulator`'s own pair


def _symbols(text: str) -> List[str]:
    """``--symbol BTCUSDT,ethusdt``: comma-separated, repeatable; Binance symbols are upper case."""
    try:
        return [s.upper() for s in split_list(text, "--symbol")]
    except LakeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _intervals(text: str) -> List[str]:
    try:
        return split_list(text, "--interval")
    except LakeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


SYMBOL_HELP = ("repeatable or comma-separated, e.g. BTCUSDT,ETHUSDT (binance.us: BTCUSD); default: env "
               f"BINANCE_SYMBOLS, else symbols in {CONFIG_FILE}")


def _symbol_arg(parser: argparse.ArgumentParser, help: str = SYMBOL_HELP) -> None:
    # "extend": every --symbol adds its names (before, the last one silently won).
    parser.add_argument("--symbol", type=_symbols, action="extend", metavar="SYMBOL[,SYMBOL...]", help=help)


def _interval_arg(parser: argparse.ArgumentParser,
                  help: str = f"repeatable or comma-separated (env BINANCE_INTERVALS, {CONFIG_FILE}; default 1m)"
                  ) -> None:
    parser.add_argument("--interval", type=_intervals, action="extend", metavar="INTERVAL[,INTERVAL...]", help=help)


def _quote_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quote", type=str.upper, metavar="ASSET",
                        help="every TRADING symbol quoted in ASSET (exchangeInfo), e.g. USDT")


def _common(parser: argparse.ArgumentParser) -> None:
    # Defaults are None: the effective value is resolved flag > env > binance-lake.toml > default
    # (binance_lake/config.py), and `binance-lake config` shows where each came from.
    parser.add_argument("--lake", default=None,
                        help="lake directory or s3://bucket/prefix (env BINANCE_LAKE; default ./lake)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help=f"settings file (default ./{CONFIG_FILE} if present)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _binance(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=None,
                        help="Binance REST base URL (env BINANCE_BASE_URL; default https://api.binance.com; "
                             "https://api.binance.us for Binance.US)")
    parser.add_argument("--emulator", action="store_true",
                        help="run against the project's Binance emulator started in-process (offline demo)")
    # 8: a year of 1m klines is ~530 pages (weight ~1060), so more requests in flight shorten the
    # latency-bound wall time; the weight limit is kept by pacing on X-MBX-USED-WEIGHT (at 50 ms
    # per request even 4 workers could ask for ~9600 weight/min, over the 6000 limit, so the
    # budget, not the worker count, is what keeps us clear of 429s).
    parser.add_argument("--workers", type=int, default=None,
                        help=f"concurrent requests (env BINANCE_WORKERS; default {DEFAULTS['workers']})")
    parser.add_argument("--recv-window", type=int, default=5000, help="recvWindow ms for signed requests")
    parser.add_argument("--max-attempts", type=int, default=8, help="attempts per request before giving up")
    parser.add_argument("--time-unit", default=None, choices=["MILLISECOND", "MICROSECOND"], type=str.upper,
                        help="timestamp unit Binance answers in (env BINANCE_TIME_UNIT; default MILLISECOND); "
                             "the lake is the same either way")


def build_parser() -> argparse.ArgumentParser:
    from binance_lake import __version__

    p = argparse.ArgumentParser(prog="binance-lake", description=(
        "Binance spot candles and account orders into a data lake (local directory + DuckDB, or S3)."))
    p.add_argument("--version", action="version", version=f"binance-lake {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = sub.add_parser("sync", help="fetch from Binance into raw, then curate").add_subparsers(
        dest="table", required=True, metavar="candles|orders|trades|account")
    sc = sync.add_parser("candles", help="closed candles (default: continue from the lake's watermark)")
    _symbol_arg(sc)
    _quote_arg(sc)
    _interval_arg(sc)
    sc.add_argument("--start", help="inclusive open time, ISO-8601 UTC (default: watermark, or now-24h)")
    sc.add_argument("--end", help="exclusive open time (default: the last closed candle)")
    _common(sc)
    _binance(sc)
    sc.add_argument("--no-transform", action="store_true", help="write raw only; curate later (`transform`)")
    so = sync.add_parser("orders", help="account orders (default: everything new since the last sync)")
    _symbol_arg(so)
    so.add_argument("--limit", type=int, help="only the latest N orders (1..1000)")
    so.add_argument("--window", help="orders created in the last DURATION, e.g. 15m, 24h")
    so.add_argument("--start", help="orders created from this time (ISO-8601 UTC)")
    so.add_argument("--end", help="orders created before this time")
    _common(so)
    _binance(so)
    so.add_argument("--no-transform", action="store_true", help="write raw only; curate later (`transform`)")
    st_ = sync.add_parser("trades", help="the account's fills (default: every trade since the last sync)")
    _symbol_arg(st_)
    st_.add_argument("--window", help="trades in the last DURATION, e.g. 15m, 3d (split into 24 h requests)")
    st_.add_argument("--start", help="trades from this time (ISO-8601 UTC; over 24 h is split into 24 h requests)")
    st_.add_argument("--end", help="trades before this time")
    _common(st_)
    _binance(st_)
    st_.add_argument("--no-transform", action="store_true", help="write raw only; curate later (`transform`)")
    sa = sync.add_parser("account", help="orders, then the fills of the orders that executed since the last run")
    _symbol_arg(sa)
    _common(sa)
    _binance(sa)
    sa.add_argument("--no-transform", action="store_true", help="write raw only; curate later (`transform`)")

    bf = sub.add_parser("backfill", help="full history from data.binance.vision (checksummed zips), then REST")
    _symbol_arg(bf)
    _quote_arg(bf)
    _interval_arg(bf)
    bf.add_argument("--start", help="inclusive, YYYY-MM or ISO-8601 UTC (default: the symbol's first candle)")
    bf.add_argument("--end", help="exclusive, YYYY-MM or ISO-8601 UTC (default: the last closed candle)")
    bf.add_argument("--archive-url", default=None,
                    help="archive base URL, http(s):// or file:// mirror (env BINANCE_ARCHIVE_URL; default "
                         "https://data.binance.vision, with --emulator the emulator's own archive)")
    bf.add_argument("--no-rest", action="store_true", help="archive only: do not fill the tail from the REST API")
    bf.add_argument("--recurate", action="store_true", help="re-curate verified files from their stored zips")
    _common(bf)
    _binance(bf)

    tr = sub.add_parser("transform", help="curate raw files not yet in curated (or --rebuild a symbol)")
    _symbol_arg(tr, "limit to these symbols (repeatable or comma-separated)")
    tr.add_argument("--rebuild", action="store_true", help="rewrite curated partitions from all raw files")
    _common(tr)

    vf = sub.add_parser("verify", help="re-derive curated days from raw, compare, repair, report")
    _symbol_arg(vf)
    _interval_arg(vf)
    vf.add_argument("--days-back", type=int, default=1, help="the N full UTC days before today (default 1)")
    vf.add_argument("--start", help="first UTC date YYYY-MM-DD (instead of --days-back)")
    vf.add_argument("--end", help="exclusive UTC date (default today)")
    vf.add_argument("--dry-run", action="store_true", help="report only: change nothing")
    vf.add_argument("--quarantine-unexplained", action="store_true",
                    help="move curated rows no raw file explains to quarantine/ (default: keep them)")
    vf.add_argument("--lock-wait", type=float, default=600.0, help="seconds to wait for a running transform")
    vf.add_argument("--against-archive", action="store_true",
                    help="also compare each day's REST candles with its published daily archive file, per "
                         "minute; the archive wins (folded in unless --dry-run), REST pages stay in raw")
    vf.add_argument("--archive-url", default=os.environ.get("BINANCE_ARCHIVE_URL", "https://data.binance.vision"),
                    help="archive base URL for --against-archive (env BINANCE_ARCHIVE_URL)")
    _common(vf)

    st = sub.add_parser("status", help="per symbol: first/last candle, rows, gaps, last run")
    _common(st)

    sy = sub.add_parser("symbols", help="the exchange's symbols with their status and what the lake holds")
    _symbol_arg(sy, "only these symbols (repeatable or comma-separated)")
    _quote_arg(sy)
    _common(sy)
    _binance(sy)

    gp = sub.add_parser("gaps", help="list missing candles; --repair re-fetches them")
    _symbol_arg(gp)
    _interval_arg(gp)
    gp.add_argument("--repair", action="store_true", help="re-fetch the missing candles from Binance")
    gp.add_argument("--recheck-gaps", choices=RECHECK_POLICIES, default=RECHECK_POLICIES[0],
                    help="with --repair, ask Binance again about recorded exchange gaps (late data): those "
                         f"recorded in the last {RECHECK_HORIZON_MS // 86_400_000} days (recent, the default), "
                         "all, or none")
    _common(gp)
    _binance(gp)

    q = sub.add_parser("query", help="SQL over the views candles and orders (DuckDB)")
    q.add_argument("sql")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _common(q)

    ex = sub.add_parser("export", help="CSV with the report headers, or candles for freqtrade (parquet)")
    ex.add_argument("table", choices=["candles", "orders", "trades"])
    _symbol_arg(ex, "the symbol to export (one CSV per symbol)")
    _interval_arg(ex, "candles: the interval to export (default: the only one the lake holds; parquet: "
                      "an interval the lake lacks is resampled from its 1m candles)")
    ex.add_argument("--format", choices=["csv", "parquet"], default="csv",
                    help="csv: the report headers; parquet: candles as freqtrade's parquet data handler reads "
                         "them, <BASE>_<QUOTE>-<interval>.parquet in the --output directory (docs/cli.md)")
    ex.add_argument("--output", required=True,
                    help="file to write, or - for stdout (the summary then goes to stderr); parquet: a directory, "
                         "e.g. user_data/data/binance")
    ex.add_argument("--pair", metavar="BASE/QUOTE",
                    help="parquet: freqtrade's pair name when the symbol's quote asset is not a common one")
    ex.add_argument("--start", help="candles: inclusive open time / orders: creation time / trades: trade time")
    ex.add_argument("--end", help="exclusive")
    _common(ex)

    rp = sub.add_parser("report", help="one self-contained HTML page: coverage heatmap, candlesticks, orders/fills")
    rp.add_argument("--html", required=True, metavar="FILE", help="the page to write (opens offline; docs/report.md)")
    _symbol_arg(rp, "symbols in the heatmap (default: all); the first one is charted")
    rp.add_argument("--start", help="chart range start, ISO-8601 UTC (default: --end minus 24 h)")
    rp.add_argument("--end", help="chart range end, exclusive (default: after the symbol's last candle)")
    _common(rp)

    cf = sub.add_parser("config", help=f"the effective settings ({CONFIG_FILE}, env, defaults) and their sources")
    _common(cf)

    em = sub.add_parser("emulator", help="serve the project's Binance emulator on 127.0.0.1")
    em.add_argument("--port", type=int, default=8765)
    # Not read from BINANCE_API_KEY/SECRET: those hold the user's real key, which a demo server
    # must neither adopt nor print. Its own pair unless given explicitly.
    em.add_argument("--api-key", default=None, help=f"key the emulator accepts (default {EMULATOR_KEY!r})")
    em.add_argument("--api-secret", default=None, help="its secret (default: the emulator's own)")
    em.add_argument("--orders", type=int, default=1500, help="orders to generate for BTCUSDT")
    em.add_argument("-v", "--verbose", action="store_true")
    em.add_argument("--json", action="store_true")
    return p


# -- settings: flag > env > binance-lake.toml > default -----------------------------------

# Commands that act on the configured symbols when no --symbol is given. (transform curates
# everything pending unless told; symbols lists the exchange.)
USES_CONFIG_SYMBOLS = {"sync", "backfill", "verify", "gaps", "export"}


def resolve_settings(args: argparse.Namespace) -> Dict[str, Setting]:
    """Fill ``args`` with the effective lake, symbols, intervals, base URL and workers."""
    symbols = getattr(args, "symbol", None)
    flags = {"lake": args.lake, "symbols": symbols, "intervals": getattr(args, "interval", None),
             "base_url": getattr(args, "base_url", None), "workers": getattr(args, "workers", None)}
    settings = resolve(flags, config_path=args.config)
    args.lake = settings["lake"].value
    if hasattr(args, "symbol"):
        use_config = args.command in USES_CONFIG_SYMBOLS and not getattr(args, "quote", None)
        chosen = settings["symbols"].value if use_config else (symbols or [])
        args.symbol = _unique(s.upper() for s in chosen)
    if hasattr(args, "interval"):
        args.interval = _unique(settings["intervals"].value)
        for interval in args.interval:
            interval_ms(interval)  # an unsupported interval is exit 2 before anything runs
    if hasattr(args, "workers"):
        args.workers = settings["workers"].value
        if args.workers < 1:
            raise BadInputError(f"workers must be at least 1 (from {settings['workers'].source})")
    # The emulator brings its own URL; an explicit --base-url still wins, as before.
    if hasattr(args, "base_url") and settings["base_url"].source != "default" and (
            not args.emulator or args.base_url):
        args.base_url = settings["base_url"].value
    return settings


def _unique(names: Iterable[str]) -> List[str]:
    return list(dict.fromkeys(names))


def _need_symbols(args: argparse.Namespace) -> List[str]:
    if not args.symbol:
        raise BadInputError("--symbol is required (repeatable or comma-separated, e.g. --symbol BTCUSDT,ETHUSDT; "
                            f"or `symbols = [...]` in {CONFIG_FILE})")
    return list(args.symbol)


# -- helpers ------------------------------------------------------------------------------


class ProgressReporter:
    """A bar on a terminal, a plain line per ~10% otherwise; both on stderr.

    It counts data pages (klines or allOrders pages), not requests: the summary's request count
    also holds exchangeInfo, the server time and retries, so the two are named apart.
    """

    def __init__(self, what: str):
        self.what = what
        self.bar: Any = None
        self.last_pct = -10
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total or None, desc=self.what, unit="page", file=sys.stderr)
            self.bar.update(done - self.bar.n)
            return
        pct = int(done * 100 / total) if total else None
        if pct is None:
            if done % 10 == 0:
                print(f"{self.what}: {done} data pages", file=sys.stderr, flush=True)
        elif pct >= self.last_pct + 10 or done == total:
            self.last_pct = pct
            print(f"{self.what}: {done}/{total} data pages ({pct}%)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def binance_client(args: argparse.Namespace, emulator_env: Optional[Dict[str, str]] = None) -> Iterator[Any]:
    """``emulator_env``: an emulator the command already started (backfill shares it with the archive)."""
    from binance_lake.sources.rest.client import BinanceClient, config_from_env, parse_time_unit

    started = contextlib.nullcontext(emulator_env) if emulator_env is not None else _maybe_emulator(args)
    with started as env:
        config = config_from_env(args.base_url, env)
        config.recv_window_ms = args.recv_window
        config.max_attempts = max(1, args.max_attempts)
        if args.time_unit:
            config.time_unit = parse_time_unit(args.time_unit)
        yield BinanceClient(config)


@contextlib.contextmanager
def _maybe_emulator(args: argparse.Namespace) -> Iterator[Optional[Dict[str, str]]]:
    if not args.emulator:
        yield None
        return
    from binance_lake.emulator import Emulator

    # Real time: the demo looks like a live run. Any well-formed symbol (ETHUSDT, SOLBTC) is served
    # from the generator, so the tour works for the symbols a user has in mind.
    emu = Emulator(now_ms=None, any_symbol=True)
    key, secret = "emulator-demo-key", "emulator-demo-secret"
    emu.add_api_key(key, secret)
    # The account's window ends on the hour: every run within an hour sees the same emulated
    # orders and fills, so a rerun shows what the lake already holds (nothing new).
    end = emu.now_ms() // 3_600_000 * 3_600_000
    emu.generate_orders("BTCUSDT", 1200, end - 3 * 86_400_000, end, seed=7)
    with emu.serve() as base_url:
        log.info("using the in-process Binance emulator at %s", base_url)
        yield {**os.environ, "BINANCE_BASE_URL": base_url, "BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret}


class Summaries:
    """A command's summaries, one per symbol and interval: text lines as each run ends; with
    ``--json`` one document at the end (the summary itself for one run, ``{"runs": [...],
    "total": ...}`` for several), so stdout always parses as one JSON value."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.items: List[Dict[str, Any]] = []

    def add(self, summary: Dict[str, Any], line: str) -> None:
        self.items.append(summary)
        if not self.args.json:
            print(line, flush=True)

    def finish(self, total: Optional[Dict[str, Any]] = None, line: str = "") -> None:
        if not self.args.json:
            if line:
                print(line, flush=True)
            return
        several = len(self.items) != 1 or total is not None
        doc = {"runs": self.items, **({"total": total} if total else {})} if several else self.items[0]
        print(json.dumps(doc, default=str), flush=True)


def _print_summary(args: argparse.Namespace, summary: Dict[str, Any], line: str) -> None:
    print(json.dumps(summary, default=str) if args.json else line, flush=True)


def _open(args: argparse.Namespace) -> Any:
    from binance_lake.lake import open_lake

    return open_lake(args.lake)


def _lake_exists(lake: Any) -> bool:
    root = lake.local_path("")
    return root is None or os.path.isdir(root)


def _open_existing(args: argparse.Namespace) -> Any:
    """The lake for a command that only reads (or curates what is there): a local lake directory
    that does not exist is a typo, not an empty lake (an answer of "0 rows" would hide it)."""
    lake = _open(args)
    root = lake.local_path("")
    if root is not None and not os.path.isdir(root):
        raise LakeError(f"lake {args.lake!r} does not exist (no such directory); check --lake (or BINANCE_LAKE), "
                        "or create the lake with `binance-lake sync candles --symbol BTCUSDT`")
    return lake


# -- commands -----------------------------------------------------------------------------


def _runs_total(summaries: List[Dict[str, Any]], failed: int, seconds: float, requests: int) -> Dict[str, Any]:
    """``requests``: the shared client's count, including the exchangeInfo call no symbol owns."""
    return {"runs": len(summaries), "failed": failed,
            "rows": sum(s.get("rows_fetched", s.get("rows", 0)) for s in summaries),
            "requests": requests,
            "weight_used": max([s.get("weight_used", 0) for s in summaries] or [0]), "seconds": round(seconds, 3)}


def _symbols_for(args: argparse.Namespace, client: Any) -> List[str]:
    """--symbol names, or with --quote every TRADING symbol quoted in that asset (count printed first)."""
    if not args.quote:
        return _need_symbols(args)
    if args.symbol:
        raise BadInputError("use --symbol or --quote, not both")
    entries = [e for e in client.exchange_symbols()
               if e.get("status") == "TRADING" and e.get("quoteAsset") == args.quote]
    if not entries:
        raise BadInputError(f"--quote {args.quote}: no TRADING symbol is quoted in {args.quote} on {client.base_url}")
    print(f"--quote {args.quote}: {len(entries)} TRADING symbols", file=sys.stderr, flush=True)
    return sorted(e["symbol"] for e in entries)


def cmd_sync(args: argparse.Namespace) -> int:
    import time

    from binance_lake.times import optional_time

    lake = _open(args)
    start = optional_time(getattr(args, "start", None), "--start")  # `sync account` has no window
    end = optional_time(getattr(args, "end", None), "--end")
    intervals = args.interval if args.table == "candles" else [""]
    summaries: List[Dict[str, Any]] = []
    codes: List[int] = []
    out = Summaries(args)
    began = time.time()
    # One client for every symbol: one weight budget, one exchangeInfo call, one clock offset.
    with binance_client(args) as client:
        symbols = _symbols_for(args, client) if args.table == "candles" else _need_symbols(args)
        if args.table == "candles":
            client.prefetch_symbol_info(symbols)
        runs = [(symbol, interval) for symbol in symbols for interval in intervals]
        for symbol, interval in runs:
            try:
                s, line = _sync_one(args, client, lake, symbol, interval, start, end)
            except LakeError as exc:
                # Bad input (an unknown symbol, a range before its listing) is that symbol's;
                # anything else (ban, outage, storage) would fail every symbol: stop.
                if len(runs) == 1 or exc.exit_code != EXIT_BAD_INPUT:
                    raise
                # One unknown or unlisted symbol must not stop the other symbols of a --quote run.
                print(f"error: sync {args.table} {symbol}{' ' + interval if interval else ''}: {exc}", file=sys.stderr)
                codes.append(exc.exit_code)
                continue
            summaries.append(s)
            out.add(s, line)
    if len(runs) > 1:
        total = _runs_total(summaries, len(codes), time.time() - began, client.stats.requests)
        out.finish(total, f"sync {args.table} total: {total['runs']} of {len(runs)} runs done "
                          f"({total['failed']} failed), {total['rows']} rows fetched, weight used "
                          f"{total['weight_used']}, {total['requests']} requests, {total['seconds']}s")
    else:
        out.finish()
    return max(codes, default=0)


def _sync_one(args: argparse.Namespace, client: Any, lake: Any, symbol: str, interval: str,
              start: Optional[int], end: Optional[int]) -> tuple:
    from binance_lake.jobs import sync
    from binance_lake.sources.rest.orders import OrdersRequest
    from binance_lake.times import parse_duration

    before = client.stats.requests
    progress = ProgressReporter(f"sync {args.table} {symbol}" + (f" {interval}" if interval != "1m" else ""))
    try:
        if args.table == "candles":
            s = sync.sync_candles(client, lake, symbol, interval, start, end, args.workers, progress,
                                  transform=not args.no_transform)
        elif args.table in ("trades", "account"):
            return _sync_account_side(args, client, lake, symbol, progress, start, end)
        else:
            if args.window:
                if start is not None or end is not None:
                    raise BadInputError("use --window or --start/--end, not both")
                end = client.server_time()
                start = end - parse_duration(args.window)
            request = OrdersRequest(latest=args.limit, start=start, end=end)
            s = sync.sync_orders(client, lake, symbol, request, progress, transform=not args.no_transform)
    finally:
        progress.close()
    s["requests"] = client.stats.requests - before  # this symbol's share of the shared client
    t = s.get("transform", {})
    gaps = len(s.get("exchange_gaps", []))
    label = f"{symbol}" + (f" {interval}" if interval and interval != "1m" else "")
    line = (f"sync {args.table} {label}: {_written(s)}"
            + (f" ({s['start']} .. {s['end']})" if s.get("start") else "")
            + (f", curated {t.get('rows_written', 0)} rows in {t.get('partitions', 0)} partitions" if t else "")
            + (f", {t['quarantined_rows']} rows quarantined" if t.get("quarantined_rows") else "")
            + f", exchange gaps {gaps}, weight used {s['weight_used']}, {s['requests']} requests"
            + (f" ({progress.done} data pages)" if progress.done else "") + f", {s['seconds']}s"
            + (f"; {s['note']}" if s.get("note") else "")
            + "".join(f"; {len(ids)} orders answered {code} recorded final" for code, ids
                      in s.get("orders_resolved", {}).items()))
    return s, line


def _written(s: Dict[str, Any]) -> str:
    """What a run stored: raw files it created, never rows a skipped create-if-absent held."""
    if "rows_fetched" not in s:  # orders: every page gets a new key
        return f"{s['rows']} rows fetched into {s['raw_files']} raw files"
    return (f"{s['rows_fetched']} rows fetched, {s['raw_files']} new raw files ({s['rows']} rows)"
            + (f", {s['raw_files_already_stored']} raw files already stored ({s['rows_already_stored']} rows)"
               if s.get("raw_files_already_stored") else "")
            + (f", {s['late_candles']} late candles landed" if s.get("late_candles") else ""))


def _sync_account_side(args: argparse.Namespace, client: Any, lake: Any, symbol: str, progress: Any,
                       start: Optional[int], end: Optional[int]) -> Tuple[Dict[str, Any], str]:
    """``sync trades`` and ``sync account`` for one symbol: its summary and lines (one per table)."""
    from binance_lake.jobs import sync
    from binance_lake.sources.rest.trades import TradesRequest
    from binance_lake.times import parse_duration

    if args.table == "account":
        both = sync.sync_account(client, lake, symbol, progress, transform=not args.no_transform)
        return both, "\n".join(_trades_line(table, symbol, both[table]) for table in ("orders", "trades"))
    if args.window:
        if start is not None or end is not None:
            raise BadInputError("use --window or --start/--end, not both")
        end = client.server_time()
        start = end - parse_duration(args.window)
    s = sync.sync_trades(client, lake, symbol, TradesRequest(start=start, end=end), progress,
                         transform=not args.no_transform)
    return s, _trades_line("trades", symbol, s)


def _trades_line(table: str, symbol: str, s: Dict[str, Any]) -> str:
    t = s.get("transform", {})
    return (f"sync {table} {symbol}: {s['rows']} rows fetched into {s['raw_files']} raw files"
            + (f" ({s['start']} .. {s['end']})" if s.get("start") else "")
            + (f", curated {t.get('rows_written', 0)} rows in {t.get('partitions', 0)} partitions" if t else "")
            + (f", {t['quarantined_rows']} rows quarantined" if t.get("quarantined_rows") else "")
            + f", weight used {s['weight_used']}, {s['requests']} requests, {s['seconds']}s"
            + (f"; {s['note']}" if s.get("note") else ""))


class FileProgress:
    """Backfill progress: files, rows and rows/s (a bar on a terminal, lines otherwise)."""

    def __init__(self, what: str):
        import time

        self.what, self.started, self.clock = what, time.time(), time.time
        self.bar: Any = None
        self.last_pct = -10

    def __call__(self, done: int, total: int, rows: int) -> None:
        rate = rows / max(self.clock() - self.started, 1e-9)
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=self.what, unit="file", file=sys.stderr)
            self.bar.set_postfix_str(f"{rows:,} rows, {rate:,.0f} rows/s", refresh=False)
            self.bar.update(done - self.bar.n)
            return
        pct = int(done * 100 / total) if total else 100
        if pct >= self.last_pct + 10 or done == total:
            self.last_pct = pct
            print(f"{self.what}: {done}/{total} files ({pct}%), {rows:,} rows, {rate:,.0f} rows/s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _month_or_time(text: Optional[str], what: str) -> Optional[int]:
    from binance_lake.times import optional_time

    if text and len(text.strip()) == 7:  # YYYY-MM: the month's first day
        text = text.strip() + "-01"
    return optional_time(text, what)


def cmd_backfill(args: argparse.Namespace) -> int:
    from binance_lake.jobs.backfill import backfill
    from binance_lake.sources.archive import ArchiveConfig

    lake = _open(args)
    start, end = _month_or_time(args.start, "--start"), _month_or_time(args.end, "--end")
    summaries, lines = [], []
    with contextlib.ExitStack() as stack:
        # The emulator serves REST and the archive (data/spot/...) from one ground truth.
        emu_env = stack.enter_context(_maybe_emulator(args)) if args.emulator else None
        cfg = ArchiveConfig(base_url=_archive_url(args, emu_env), workers=max(1, args.workers),
                            force=args.recurate)
        # --quote asks exchangeInfo even with --no-rest: the list of symbols comes from Binance.
        client = (None if args.no_rest and not args.quote
                  else stack.enter_context(binance_client(args, emu_env)))
        symbols = _symbols_for(args, client)
        client = None if args.no_rest else client
        for symbol, interval in [(s, i) for s in symbols for i in args.interval]:
            progress, rest = FileProgress(f"backfill {symbol}"), ProgressReporter(f"sync candles {symbol}")
            try:
                r = backfill(lake, symbol, start, end, cfg, client, interval, progress, rest)
            finally:
                progress.close()
                rest.close()
            s = r.summary()
            summaries.append(s)
            for f in s["failed"]:
                print(f"warning: {f['file']} not used ({f['reason']})", file=sys.stderr)
            label = symbol + (f" {interval}" if interval != "1m" else "")
            lines.append(f"backfill {label}: {s['rows']} archive rows from {s['files_curated']} files "
                         f"({s['files_downloaded']} downloaded, {s['files_up_to_date']} already verified, "
                         f"{s['files_restored']} damaged and restored, "
                         f"{s['files_failed']} failed), archive to {s['archive_end']}, "
                         f"{s['rest_rows']} REST rows for {len(s['rest_ranges'])} ranges, "
                         f"exchange gaps {len(s['exchange_gaps'])}, {s['seconds']}s")
            if r.rest_error:
                unfilled = ", ".join(f"{a} .. {b}" for a, b in s["rest_unfilled"]) or "nothing (the archive covered it)"
                print(f"warning: REST refused: {r.rest_error}\nREST could not fill: {unfilled}", file=sys.stderr)
    _print_summary(args, {"symbols": summaries}, "\n".join(lines))
    # A failed file's range is filled from REST when allowed; archive-only runs must say so.
    # REST refused with ranges left unfilled: partial, exit with that error's code.
    rest_codes = [r_code for r_code in (s.get("rest_exit_code", 0) for s in summaries) if r_code]
    if rest_codes:
        return max(rest_codes)
    if args.no_rest and any(s["files_failed"] for s in summaries):
        return 4
    empty = [s["symbol"] for s in summaries if args.no_rest and s["archive_end"] is None]
    if empty:  # archive only, and the archive has no file of the range: nothing was done
        print(f"error: the archive has no file for {', '.join(empty)} in this range (not published yet, or "
              "before the symbol's listing); check --symbol and --start/--end, or drop --no-rest to fetch "
              "the range from the REST API", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _archive_url(args: argparse.Namespace, emulator_env: Optional[Dict[str, str]]) -> str:
    """--archive-url, else the emulator's own archive, else env BINANCE_ARCHIVE_URL, else Binance's."""
    from binance_lake.sources.archive import DEFAULT_ARCHIVE_URL

    if args.archive_url:
        return str(args.archive_url)
    if emulator_env is not None:
        return emulator_env["BINANCE_BASE_URL"]
    return os.environ.get("BINANCE_ARCHIVE_URL") or DEFAULT_ARCHIVE_URL


def cmd_transform(args: argparse.Namespace) -> int:
    from binance_lake.jobs import sync

    # A plain transform is a tick: curating what raw holds, nothing included (it may start before
    # the first sync created the lake). A rebuild asks for a symbol's partitions: they must exist.
    lake = _open_existing(args) if args.rebuild else _open(args)
    if args.rebuild:
        if not args.symbol:
            raise LakeError("--rebuild needs --symbol (it rewrites every partition of the symbol)")
        result = sync.rebuild(lake, args.symbol)
    else:
        result = sync.transform(lake, symbols=args.symbol or None)  # None: every symbol
    s = result.summary()
    _print_summary(args, s, f"transform: {s['rows_written']} rows in {s['partitions']} partitions, "
                             f"{s['quarantined_rows']} rows and {s['quarantined_files']} files quarantined"
                             + (f", {s['unexplained_rows']} curated rows no readable raw file explains kept"
                                if s["unexplained_rows"] else "")
                             + (f", {s['migrated_day_partitions']} old day partitions moved into their month "
                                "partitions" if s["migrated_day_partitions"] else ""))
    for key in result.unusable_raw:
        print(f"warning: raw file {key} does not parse; moved to quarantine/, the curated rows it explained "
              "are kept. Rerun the sync of its range to fetch it again", file=sys.stderr)
    return EXIT_ATTENTION if result.needs_attention else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from binance_lake import verify

    dates = verify.date_range(verify.now_ms(), args.days_back, args.start, args.end)
    opts = verify.VerifyOptions(repair=not args.dry_run, quarantine_unexplained=args.quarantine_unexplained,
                                lock_wait_s=args.lock_wait)
    symbols, codes, out = _need_symbols(args), [], Summaries(args)
    lake = _open_existing(args)
    for interval in args.interval:
        codes.append(_verify_one(args, out, lake, symbols, interval, dates, opts))
    out.finish()
    return max(codes)


def _verify_one(args: argparse.Namespace, out: Summaries, lake: Any, symbols: List[str], interval: str,
                dates: Sequence[str], opts: Any) -> int:
    from binance_lake import verify

    report = verify.verify(lake, symbols, interval, dates, opts)
    if not args.against_archive:
        out.add(report.as_dict(), report.line())
        return verify.exit_code(report)
    checks = _against_archive(args, lake, symbols, interval, dates)
    unsettled = [c for c in checks if c.status in ("mismatch", "failed")]
    counts = {s: sum(1 for c in checks if c.status == s)
              for s in ("match", "settled", "mismatch", "adopted", "not-published", "no-rest", "failed")}
    line = (report.line() + "\nagainst the archive: " + ", ".join(f"{n} {s}" for s, n in counts.items())
            + f" ({len(checks)} days)")
    out.add({**report.as_dict(), "against_archive": [dataclasses.asdict(c) for c in checks]}, line)
    return max(verify.exit_code(report), EXIT_ATTENTION if unsettled else 0)


def _against_archive(args: argparse.Namespace, lake: Any, symbols: List[str], interval: str,
                     dates: Sequence[str]) -> List[Any]:
    from binance_lake.jobs.backfill import verify_against_archive
    from binance_lake.sources.archive import ArchiveConfig

    cfg = ArchiveConfig(base_url=args.archive_url, workers=1)
    checks = verify_against_archive(lake, symbols, interval, dates, cfg, adopt=not args.dry_run)
    for c in checks:
        if c.status == "failed":
            print(f"warning: {c.symbol} {c.date}: archive file {c.file} not compared: {c.reason}", file=sys.stderr)
        for d in c.differences[:10]:
            print(f"{c.symbol} {d['minute']} {d['column']}: REST {d['rest']}, archive {d['archive']}"
                  + (" (archive folded in)" if c.status == "adopted" else ""), file=sys.stderr)
        for minute in c.only_archive_minutes[:10]:
            print(f"{c.symbol} {minute}: only in the archive", file=sys.stderr)
        for minute in c.only_rest_minutes[:10]:
            print(f"{c.symbol} {minute}: only in REST", file=sys.stderr)
    return checks


def cmd_status(args: argparse.Namespace) -> int:
    from binance_lake import layout
    from binance_lake.query import connect, orders_status, status
    from binance_lake.reconcile import trades_status
    from binance_lake.sources.archive import stored_damage

    lake = _open_existing(args)
    con = connect(lake)
    candles = [s.as_dict() for s in status(lake, con)]
    orders = orders_status(con)
    damaged = stored_damage(lake, [(c["symbol"], c["interval"]) for c in candles])
    unparsed = layout.quarantined_raw_keys(lake.list_keys(f"{layout.QUARANTINE}/{layout.RAW}"))
    trades = trades_status(lake, con)
    summary = {"lake": args.lake, "candles": candles, "orders": orders, "trades": trades, "damaged": damaged,
               "quarantined_raw": unparsed}
    code = EXIT_STORAGE if damaged else 0
    for message in damaged:
        print(f"error: {message}", file=sys.stderr)
    for key in unparsed[:10]:
        print(f"warning: raw file {key} did not parse and is in quarantine/ (curated kept the rows it explained); "
              "rerun the sync of its range to fetch it again", file=sys.stderr)
    for c in candles:
        if c.get("old_layout_partitions"):
            print(f"warning: {c['action']} ({c['old_layout_partitions']} day partitions)", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, default=str))
        return code
    if not candles and not orders and not trades:
        print(f"lake {args.lake}: empty (run `binance-lake sync candles --symbol BTCUSDT`)")
        return 0
    for c in candles:
        run = c["last_run"] or {}
        print(f"{c['symbol']} {c['interval']}: {c['rows']} candles {c['first_candle']} .. {c['last_candle']}, "
              f"gaps {len(c['gaps'])} ({c['missing_candles']} candles missing), "
              f"exchange gaps {len(c['exchange_gaps'])}, last run {run.get('finished_at', 'never')}"
              + (f", symbol status {run['symbol_status']}" if run.get("symbol_status") else ""))
        for s, e in c["gaps"][:10]:
            print(f"  gap {s} .. {e}")
    for o in orders:
        print(f"{o['symbol']} orders: {o['orders']} (max id {o['max_order_id']}, {o['open_orders']} open), "
              f"last update {o['last_update']}")
    for t in trades:
        print(f"{t['symbol']} trades: {t['trades']} (max id {t['max_trade_id']}), last trade {t['last_trade']}, "
              f"{t['orders_inconsistent']} final orders inconsistent with their trades (`verify` lists them)")
    print(f"lake {args.lake}: {sum(c['rows'] for c in candles)} candles, {sum(o['orders'] for o in orders)} orders"
          + (f", {sum(t['trades'] for t in trades)} trades" if trades else "")
          + (f", {len(damaged)} damaged stored files (see above)" if damaged else ""))
    return code


def cmd_gaps(args: argparse.Namespace) -> int:
    symbols = _need_symbols(args)
    runs = [(symbol, interval) for symbol in symbols for interval in args.interval]
    with contextlib.ExitStack() as stack:
        lake = _open_existing(args)
        client: List[Any] = []  # opened on the first repair that needs it; shared by the rest

        def get_client() -> Any:
            if not client:
                client.append(stack.enter_context(binance_client(args)))
            return client[0]

        out = Summaries(args)
        for symbol, interval in runs:
            _gaps_one(args, out, lake, symbol, interval, get_client)
        out.finish()
    return 0


def _gaps_one(args: argparse.Namespace, out: Summaries, lake: Any, symbol: str, interval: str,
              get_client: Callable[[], Any]) -> None:
    from binance_lake.jobs import sync
    from binance_lake.query import candle_gaps, connect
    from binance_lake.sources.coverage import exchange_gaps, gaps_to_recheck, raw_coverage
    from binance_lake.times import ms_to_iso

    exch = exchange_gaps(lake, symbol, interval)
    bounds = raw_coverage(lake, symbol, interval)
    gaps, rows, _, _ = candle_gaps(connect(lake), symbol, interval, exch, bounds)
    listed = [[ms_to_iso(s), ms_to_iso(e)] for s, e in gaps]
    label = symbol + (f" {interval}" if interval != "1m" else "")
    if not args.json:
        for s, e in listed:  # the report is the command's output: stdout, as `status` prints its gaps
            print(f"gap {label} {s} .. {e}")
    summary: Dict[str, Any] = {"symbol": symbol, "interval": interval, "rows": rows, "gaps": listed,
                               "exchange_gaps": [[ms_to_iso(s), ms_to_iso(e)] for s, e in exch]}
    # Exchange gaps are not final: Binance may publish those minutes later (issue 17).
    recheck = gaps_to_recheck(lake, symbol, interval, args.recheck_gaps) if args.repair else []
    if args.repair and (gaps or recheck):
        progress = ProgressReporter(f"repair {label}")
        try:
            r = summary["repair"] = sync.repair_candle_gaps(get_client(), lake, symbol, interval, gaps,
                                                            args.workers, progress, recheck)
        finally:
            progress.close()
        remaining, rows, _, _ = candle_gaps(connect(lake), symbol, interval,
                                            exchange_gaps(lake, symbol, interval), bounds)
        summary["remaining_gaps"] = [[ms_to_iso(s), ms_to_iso(e)] for s, e in remaining]
        summary["exchange_gaps"] = [[ms_to_iso(s), ms_to_iso(e)] for s, e in exchange_gaps(lake, symbol, interval)]
        line = (f"gaps {label}: repaired {len(gaps)} gaps, re-asked {len(recheck)} exchange gaps "
                f"({r['rows_fetched']} rows fetched, {r['raw_files']} new raw files with {r['rows']} rows"
                + (f", {r['late_candles']} late candles landed" if r["late_candles"] else "")
                + f"), {len(remaining)} remain, exchange gaps {len(summary['exchange_gaps'])}")
    else:
        line = (f"gaps {label}: {len(gaps)} gaps in {rows} candles, exchange gaps {len(exch)}"
                + (" (run with --repair to re-fetch)" if gaps else ""))
    out.add(summary, line)


def _json_value(value: Any) -> Any:
    """JSON for query results: times as ISO-8601 UTC ``...Z`` like every other output, decimals exact."""
    import datetime as dt
    from decimal import Decimal

    from binance_lake.export import cell_text

    if isinstance(value, dt.datetime):
        return cell_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return cell_text(value)
    return str(value)


def cmd_query(args: argparse.Namespace) -> int:
    from binance_lake.export import cell_text
    from binance_lake.query import connect

    if not args.sql.strip():  # DuckDB answers an empty statement with no result at all
        raise LakeError("the SQL statement is empty; e.g. binance-lake query \"SELECT count(*) FROM candles\"")
    cur = connect(_open_existing(args)).execute(args.sql)  # errors arrive as LakeError with a hint
    names = [d[0] for d in cur.description] if cur.description else []
    rows = cur.fetchall()
    if args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(names)
        w.writerows([cell_text(v) for v in r] for r in rows)
    elif args.format == "json" or args.json:
        print(json.dumps([dict(zip(names, r)) for r in rows], default=_json_value))
    else:
        _print_table(names, rows)
    return 0


def _print_table(names: List[str], rows: Sequence[Sequence[Any]]) -> None:
    from binance_lake.export import cell_text

    cells = [[cell_text(v) for v in r] for r in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"({len(rows)} rows)")


def cmd_export(args: argparse.Namespace) -> int:
    from binance_lake.export import export_csv
    from binance_lake.times import optional_time

    symbols = _need_symbols(args)
    if args.format == "parquet":
        return _export_freqtrade(args, symbols)
    # Candles: the interval asked for (flag, env or file); by default the only one the lake holds.
    given = args.table == "candles" and args.settings["intervals"].source != "default"
    intervals: List[Optional[str]] = list(args.interval) if given else [None]
    runs = [(symbol, interval) for symbol in symbols for interval in intervals]
    outputs = [_export_output(args.output, symbol, interval, len(runs)) for symbol, interval in runs]
    if len(set(outputs)) < len(outputs):
        raise BadInputError(_one_csv_each(len(runs)))
    start, end = optional_time(args.start, "--start"), optional_time(args.end, "--end")
    lake = _open_existing(args)
    out = Summaries(args)
    exported = 0
    for (symbol, interval), output in zip(runs, outputs):
        n = export_csv(lake, args.table, symbol, output, start, end, interval)
        exported += n
        summary = {"table": args.table, "symbol": symbol, "rows": n, "output": output}
        line = f"export {args.table} {symbol}: {n} rows to {output}"
        if output == "-":  # stdout is the CSV: the summary must not become its last row
            print(json.dumps(summary) if args.json else line, file=sys.stderr, flush=True)
        else:
            out.add(summary, line)
    if out.items:
        out.finish()
    return 0 if exported else _nothing_exported(args, args.table)


def _export_freqtrade(args: argparse.Namespace, symbols: List[str]) -> int:
    """Candles in freqtrade's layout: one ``<PAIR>-<tf>.parquet`` per symbol and interval."""
    from binance_lake.export import _only_interval, export_freqtrade
    from binance_lake.query import candle_symbols
    from binance_lake.times import optional_time

    if args.table != "candles":
        raise BadInputError(f"--format parquet writes candles (freqtrade's OHLCV files), not {args.table}; "
                            "use --format csv")
    if args.output == "-":
        raise BadInputError("--format parquet writes files into a directory: give --output DIR, "
                            "e.g. --output user_data/data/binance")
    if args.pair and len(symbols) > 1:
        raise BadInputError("--pair names one symbol's pair; export one --symbol at a time with it")
    start, end = optional_time(args.start, "--start"), optional_time(args.end, "--end")
    lake = _open_existing(args)
    given = args.settings["intervals"].source != "default"
    out = Summaries(args)
    for symbol in symbols:
        intervals = list(args.interval) if given else [
            _only_interval(sorted({i for i, s in candle_symbols(lake) if s == symbol}), symbol)]
        for interval in intervals:
            path, n = export_freqtrade(lake, symbol, interval, args.output, start, end, args.pair)
            out.add({"table": "candles", "symbol": symbol, "interval": interval, "rows": n, "output": path},
                    f"export candles {symbol} {interval}: {n} rows to {path} (freqtrade parquet)")
    out.finish()
    return 0 if any(s["rows"] for s in out.items) else _nothing_exported(args)


def _nothing_exported(args: argparse.Namespace, table: str = "candles") -> int:
    # "Nothing done where something was asked is never 0"; no file was written or replaced.
    print(f"error: no {table} in the range, nothing written; check --symbol, --interval, --start/--end and "
          "`binance-lake status`", file=sys.stderr)
    return EXIT_BAD_INPUT


def _export_output(template: str, symbol: str, interval: Optional[str], runs: int) -> str:
    """One CSV per symbol and interval: several need ``{symbol}`` / ``{interval}`` in --output."""
    if runs == 1:
        return template
    if template == "-":
        raise BadInputError(_one_csv_each(runs))
    return template.replace("{symbol}", symbol).replace("{interval}", interval or "")


def _one_csv_each(runs: int) -> str:
    return (f"export writes one CSV per symbol and interval and {runs} were asked for; name each file "
            "with {symbol} and {interval} in --output, e.g. --output candles-{symbol}-{interval}.csv")


def cmd_emulator(args: argparse.Namespace) -> int:
    import time

    from binance_lake.emulator import Emulator

    if (args.api_key is None) != (args.api_secret is None):
        raise LakeError("give both --api-key and --api-secret, or neither (the emulator then uses its own pair)")
    own = args.api_key is None
    key, secret = (EMULATOR_KEY, EMULATOR_SECRET) if own else (args.api_key, args.api_secret)
    emu = Emulator(now_ms=None, any_symbol=True)  # real time: the demo looks like a live run
    emu.add_api_key(key, secret)
    now = emu.now_ms()
    emu.generate_orders("BTCUSDT", args.orders, now - 7 * 86_400_000, now, seed=1)
    base_url = emu.start(port=args.port)
    # Only the emulator's own demo pair is shown; a key given by flag is the user's and stays unsaid.
    creds = (f"api key {key!r}, secret {secret!r}" if own else "the api key and secret given by flag")
    print(f"Binance emulator serving on {base_url} ({creds}; any symbol such as ETHUSDT; the archive at "
          f"--archive-url {base_url}; Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()
    return 0


def cmd_symbols(args: argparse.Namespace) -> int:
    """The exchange's symbols (status, base/quote) next to what the lake holds for each."""
    from binance_lake.query import connect

    lake = _open(args)
    held: Dict[str, List[Dict[str, Any]]] = {}
    rows = connect(lake).execute(
        "SELECT symbol, interval, count(*), epoch_ms(min(candle_open_time)), epoch_ms(max(candle_open_time)) "
        "FROM candles GROUP BY symbol, interval ORDER BY symbol, interval").fetchall()
    from binance_lake.times import ms_to_iso

    for symbol, interval, n, first, last in rows:
        held.setdefault(symbol, []).append({"interval": interval, "candles": n, "first_candle": ms_to_iso(first),
                                            "last_candle": ms_to_iso(last)})
    with binance_client(args) as client:
        entries = client.exchange_symbols()
        base_url = client.base_url
    wanted = set(args.symbol)
    listed = [e for e in entries if (not wanted or e["symbol"] in wanted)
              and (not args.quote or e.get("quoteAsset") == args.quote)]
    missing = sorted(wanted - {e["symbol"] for e in entries})
    if missing:
        raise BadInputError(f"not on {base_url}: {', '.join(missing)} (run `binance-lake symbols` for the list)")
    if not listed:  # an empty answer to a filter is a mistake to name, not a success
        raise BadInputError(f"no symbol on {base_url} is quoted in {args.quote}; e.g. --quote USDT")
    out = [{"symbol": e["symbol"], "status": e.get("status"), "base": e.get("baseAsset"),
            "quote": e.get("quoteAsset"), "lake": held.get(e["symbol"], [])} for e in listed]
    trading = sum(1 for o in out if o["status"] == "TRADING")
    in_lake = sum(1 for o in out if o["lake"])
    if not args.json:
        for o in sorted(out, key=lambda o: o["symbol"]):
            lake_text = "; ".join(f"{h['interval']} {h['candles']} candles {h['first_candle']} .. {h['last_candle']}"
                                  for h in o["lake"]) or "-"
            print(f"{o['symbol']} {o['status']} {o['base']}/{o['quote']} lake: {lake_text}")
    _print_summary(args, {"symbols": out, "trading": trading, "in_lake": in_lake},
                   f"symbols: {len(out)} on {base_url} ({trading} TRADING), {in_lake} of them in the lake {args.lake}"
                   + ("" if _lake_exists(lake) else " (it does not exist yet)"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from binance_lake.report import write_report
    from binance_lake.times import optional_time

    start, end = optional_time(args.start, "--start"), optional_time(args.end, "--end")
    lake = _open_existing(args)
    data = write_report(lake, args.lake, args.html, list(args.symbol), start, end)
    days = sum(len(c.days) for c in data.coverage)
    summary = {"html": args.html, "series": len(data.coverage), "days": days, "symbol": data.symbol,
               "chart_interval": data.chart_interval, "candles": len(data.candles), "orders": len(data.orders),
               "fills": len(data.fills)}
    _print_summary(args, summary, f"report: {args.html} ({len(data.coverage)} series over {days} days; "
                                  f"{data.symbol} chart of {len(data.candles)} {data.chart_interval} candles, "
                                  f"{len(data.orders)} orders, {len(data.fills)} fills)")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """The effective settings and where each came from (flag, env, file, default)."""
    from binance_lake.config import find_file

    settings: Dict[str, Setting] = args.settings
    path = find_file(args.config)
    if args.json:
        print(json.dumps({"config_file": path,
                          "settings": {name: {"value": s.value, "source": s.source} for name, s in settings.items()}}))
        return 0
    print(f"# config file: {path or f'none ({CONFIG_FILE} not in the working directory; --config FILE)'}")
    for name, s in settings.items():
        print(f"{name} = {json.dumps(s.value)}  # {s.source}")
    return 0


COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "sync": cmd_sync, "backfill": cmd_backfill, "transform": cmd_transform, "status": cmd_status, "gaps": cmd_gaps,
    "query": cmd_query, "export": cmd_export, "emulator": cmd_emulator, "verify": cmd_verify,
    "symbols": cmd_symbols, "config": cmd_config, "report": cmd_report,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None and args.command in ("sync", "transform"):
        # Run as the command (console script, python -m), not called in a caller's process:
        # without the optional pandas, as a runtime install (jobs/sync.py own_process).
        from binance_lake.jobs import sync

        sync.own_process()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("urllib3", "botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command != "emulator":
            args.settings = resolve_settings(args)
        return COMMANDS[args.command](args)
    except LakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `| head`: the reader is gone, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted: everything written so far is consistent; rerun to continue", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

