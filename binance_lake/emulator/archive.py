"""A local stand-in for data.binance.vision: archive zips built from the emulator's ground
truth, served by the emulator itself under ``/data/spot/...`` (``Emulator.archive_file``; what
``--emulator`` backfills from) or written to a directory and served by :class:`ArchiveServer`
(tests that corrupt or remove files).

Layout and formats follow binance-public-data: ``data/spot/{monthly,daily}/klines/<SYM>/
<interval>/<SYM>-<interval>-<period>.zip`` holding one headerless CSV, plus a sibling
``.zip.CHECKSUM`` in sha256sum format (``<hex>  <name>``). Spot times are microseconds
for periods from 2025-01-01 on, milliseconds before (the archive's switch).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

MICROS_FROM_MS = 1735689600000  # 2025-01-01: spot archive files switch to microseconds
HEADER = b"open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume," \
         b"taker_buy_quote_volume,ignore\n"


ARCHIVE_PREFIX = "/data/spot/"
# binance-public-data README: data/spot/{daily,monthly}/klines/<SYMBOL>/<interval>/<SYMBOL>-<interval>-<period>.zip
_PATH_RE = re.compile(r"/data/spot/(?P<kind>daily|monthly)/klines/(?P<symbol>[A-Z0-9]{1,20})/(?P<interval>\w{2,3})/"
                      r"(?P=symbol)-(?P=interval)-(?P<period>\d{4}-\d{2}(?:-\d{2})?)\.zip(?P<checksum>\.CHECKSUM)?")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class ArchivePath:
    symbol: str
    interval: str
    period: str
    checksum: bool  # the ``.CHECKSUM`` sidecar rather than the zip

    @property
    def zip_name(self) -> str:
        return f"{self.symbol}-{self.interval}-{self.period}.zip"


def parse_path(path: str) -> Optional[ArchivePath]:
    """An archive URL path, or None when it is not one (a daily name under monthly/ included)."""
    m = _PATH_RE.fullmatch(path)
    if m is None or (m["kind"] == "monthly") != (len(m["period"]) == 7):
        return None
    try:
        period_range(m["period"])
    except ValueError:  # 2024-13, 2024-02-30
        return None
    return ArchivePath(m["symbol"], m["interval"], m["period"], m["checksum"] is not None)


def published_at_ms(period: str) -> int:
    """When Binance publishes a period's file (binance-public-data README): a day's "the next day",
    a month's "on the first Monday of the month" after it."""
    end = period_range(period)[1]
    if len(period) != 7:
        return end
    weekday = datetime.fromtimestamp(end / 1000, tz=timezone.utc).weekday()  # Monday is 0
    return end + ((7 - weekday) % 7) * DAY_MS


def build_file(emu: Any, symbol: str, interval: str, period: str) -> Optional[bytes]:
    """The zip of ``emu``'s candles for ``period``; None when Binance would have no file: not
    published by the emulator's clock, an interval it does not generate, no candle in the period
    (before the listing, or a whole period of exchange gap)."""
    try:
        lo, hi = period_range(period)
    except ValueError:
        return None
    if emu.now_ms() < published_at_ms(period):
        return None
    try:
        rows = emu.klines(symbol, interval, lo, hi)
    except (KeyError, ValueError):  # unknown symbol, an interval not generated (1s, 1M)
        return None
    if not rows:
        return None
    name = f"{symbol}-{interval}-{period}"
    return zip_bytes(name + ".csv", kline_csv(rows, micros=lo >= MICROS_FROM_MS))


def checksum_line(data: bytes, zip_name: str) -> str:
    """The ``.CHECKSUM`` sidecar: sha256sum format, ``<hex>  <file.zip>``."""
    return f"{hashlib.sha256(data).hexdigest()}  {zip_name}\n"


def kline_csv(rows: Sequence[Sequence[Any]], micros: bool = False, header: bool = False) -> bytes:
    """REST kline rows (ms) -> archive CSV bytes, in µs if asked (close time ends in 999 µs)."""
    out = [HEADER] if header else []
    for r in rows:
        o, c = int(r[0]), int(r[6])
        if micros:
            o, c = o * 1000, c * 1000 + 999
        out.append(f"{o},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]},{c},{r[7]},{r[8]},{r[9]},{r[10]},{r[11]}\n".encode())
    return b"".join(out)


def zip_bytes(member: str, data: bytes) -> bytes:
    """Deterministic zip (fixed timestamp) so checksums are stable across runs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data,
                    compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def archive_path(symbol: str, interval: str, period: str) -> str:
    kind = "monthly" if len(period) == 7 else "daily"
    name = "1mo" if interval == "1M" else interval  # the archive's spelling of 1M (binance-public-data README)
    return f"data/spot/{kind}/klines/{symbol}/{name}/{symbol}-{name}-{period}.zip"


def write_file(root: Path, symbol: str, interval: str, period: str, rows: Sequence[Sequence[Any]],
               micros: Optional[bool] = None, header: bool = False) -> Path:
    """One archive zip and its .CHECKSUM under ``root``; returns the zip's path."""
    rel = archive_path(symbol, interval, period)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if micros is None:
        micros = bool(rows) and int(rows[0][0]) >= MICROS_FROM_MS
    data = zip_bytes(path.name[:-4] + ".csv", kline_csv(rows, micros, header))
    path.write_bytes(data)
    write_checksum(path, data)
    return path


def write_checksum(path: Path, data: bytes) -> None:
    path.with_name(path.name + ".CHECKSUM").write_text(checksum_line(data, path.name))


def periods(start_ms: int, end_ms: int, today_ms: int) -> List[str]:
    """Monthly periods for whole months before today's month, daily ones after (like Binance)."""
    out, t = [], start_ms
    while t < min(end_ms, today_ms):
        d = datetime.fromtimestamp(t / 1000, tz=timezone.utc)
        month_end = _next_month_ms(d)
        if t == _month_start_ms(d) and month_end <= min(end_ms, today_ms):
            out.append(d.strftime("%Y-%m"))
            t = month_end
        else:
            out.append(d.strftime("%Y-%m-%d"))
            t += 86_400_000
    return out


def period_range(period: str) -> tuple:
    d = datetime.strptime(period + ("-01" if len(period) == 7 else ""), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    start = int(d.timestamp() * 1000)
    return start, (_next_month_ms(d) if len(period) == 7 else start + 86_400_000)


def _month_start_ms(d: datetime) -> int:
    return int(datetime(d.year, d.month, 1, tzinfo=timezone.utc).timestamp() * 1000)


def _next_month_ms(d: datetime) -> int:
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(datetime(y, m, 1, tzinfo=timezone.utc).timestamp() * 1000)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stops reading a 404 body (urllib does) is not news


@dataclass
class ArchiveServer:
    """Serves ``root`` on 127.0.0.1; counts requests; can corrupt the next N downloads of a file."""

    root: Path
    requests: Counter = field(default_factory=Counter)
    corrupt: Dict[str, int] = field(default_factory=dict)  # url path -> downloads still to corrupt
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type:
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests[path] += 1
                    corrupt = server.corrupt.get(path, 0) > 0
                    if corrupt:
                        server.corrupt[path] -= 1
                if not corrupt:
                    return super().do_GET()
                body = (server.root / path.lstrip("/")).read_bytes()
                body = body[: len(body) // 2] + b"\x00" * (len(body) - len(body) // 2)  # truncated transfer
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        httpd = _QuietServer(("127.0.0.1", 0), self.handler())
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()

    def downloads(self, suffix: str = ".zip") -> int:
        return sum(n for p, n in self.requests.items() if p.endswith(suffix))
