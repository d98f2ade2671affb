"""``binance-lake report --html FILE``: one self-contained page to look at a lake.

Three parts, all inline SVG and CSS (no script, no font, no URL to fetch, so the page opens
offline and stays small: a year of one symbol's coverage is ~365 cells of ~120 bytes):

1. Coverage heatmap, symbol x day: complete, our gaps (minutes missing that Binance has; `gaps
   --repair` fetches them) or exchange gaps only (minutes Binance confirmed empty).
2. A candlestick chart of a chosen range, resampled in DuckDB from the 1m candles to at most
   ``MAX_CANDLES`` candles (query.resample_candles, Binance's rule).
3. The account's orders (by creation time and price; BUY up-triangles, SELL down-triangles) and
   fills (dots) over that range, when the orders and trades tables hold rows for the symbol.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from binance_lake.errors import BadInputError
from binance_lake.lake import Lake
from binance_lake.query import RESAMPLE_MS, LakeConnection, candle_symbols, connect, resample_candles
from binance_lake.sources.coverage import exchange_gaps
from binance_lake.times import MS_PER_DAY, interval_ms, ms_to_date, ms_to_iso

MAX_CANDLES = 240
DEFAULT_SPAN_MS = MS_PER_DAY  # the chart's range when none is given: the lake's last day (or less)
COLORS = {"complete": "#2e7d32", "exchange": "#f9a825", "ours": "#c62828", "empty": "#e0e0e0"}
LABELS = {"complete": "complete", "exchange": "exchange gaps only", "ours": "our gaps (repairable)",
          "empty": "no candles"}


@dataclass
class DayCell:
    date: str
    rows: int
    expected: int
    exchange_missing: int  # minutes (intervals) inside Binance-confirmed gaps

    @property
    def ours(self) -> int:
        return max(0, self.expected - self.rows - self.exchange_missing)

    @property
    def state(self) -> str:
        if self.rows == 0 and self.exchange_missing == 0:
            return "empty"
        if self.ours:
            return "ours"
        return "exchange" if self.exchange_missing else "complete"


@dataclass
class Coverage:
    symbol: str
    interval: str
    days: List[DayCell] = field(default_factory=list)


@dataclass
class ReportData:
    lake_uri: str
    coverage: List[Coverage]
    symbol: Optional[str]
    chart_interval: Optional[str]
    candles: List[Dict[str, Any]]
    orders: List[Dict[str, Any]]
    fills: List[Dict[str, Any]]
    start: Optional[int]
    end: Optional[int]


# -- data ---------------------------------------------------------------------------------------


def coverage(lake: Lake, con: LakeConnection, symbol: str, interval: str) -> Coverage:
    """Per UTC day between the first and last candle: rows, rows expected, exchange-gap intervals."""
    step = interval_ms(interval)
    counts = dict(con.execute(
        "SELECT date, count(*) FROM candles WHERE symbol = ? AND interval = ? GROUP BY date",
        [symbol, interval]).fetchall())
    first, last = con.execute(
        "SELECT epoch_ms(min(candle_open_time)), epoch_ms(max(candle_open_time)) FROM candles "
        "WHERE symbol = ? AND interval = ?", [symbol, interval]).fetchall()[0]
    out = Coverage(symbol, interval)
    if first is None:
        return out
    gaps = exchange_gaps(lake, symbol, interval)
    day = first // MS_PER_DAY * MS_PER_DAY
    while day <= last:
        lo, hi = max(day, first), min(day + MS_PER_DAY, last + step)
        exch = sum(max(0, min(e, hi) - max(s, lo)) for s, e in gaps) // step
        out.days.append(DayCell(ms_to_date(day), int(counts.get(ms_to_date(day), 0)), (hi - lo) // step, exch))
        day += MS_PER_DAY
    return out


def chart_interval(start: int, end: int) -> str:
    """The shortest interval that shows [start, end) in at most MAX_CANDLES candles."""
    for name, step in RESAMPLE_MS.items():
        if step and (end - start) / step <= MAX_CANDLES:
            return name
    return "1M"


def _rows(con: LakeConnection, sql: str, params: List[Any]) -> List[Dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def gather(lake: Lake, lake_uri: str, symbols: List[str], start: Optional[int], end: Optional[int],
           chart_symbol: Optional[str] = None) -> ReportData:
    con = connect(lake)
    held = candle_symbols(lake)
    if not held:
        raise BadInputError(f"lake {lake_uri} holds no candles; sync some first, e.g. "
                            "`binance-lake sync candles --symbol BTCUSDT`")
    wanted = [(i, s) for i, s in held if not symbols or s in symbols]
    missing = sorted(set(symbols) - {s for _, s in held})
    if missing:
        raise BadInputError(f"no candles of {', '.join(missing)} in lake {lake_uri}; it holds "
                            f"{', '.join(sorted({s for _, s in held}))}")
    cov = [coverage(lake, con, s, i) for i, s in sorted(wanted, key=lambda p: (p[1], interval_ms(p[0])))]
    with_1m = [s for i, s in wanted if i == "1m"]
    symbol = chart_symbol or (with_1m[0] if with_1m else None)
    data = ReportData(lake_uri, cov, symbol, None, [], [], [], start, end)
    if symbol is None:
        return data
    if symbol not in with_1m:
        raise BadInputError(f"the chart resamples 1m candles and the lake has none of {symbol}")
    first, last = con.execute("SELECT epoch_ms(min(candle_open_time)), epoch_ms(max(candle_open_time)) + 60000 "
                              "FROM candles WHERE symbol = ? AND interval = '1m'", [symbol]).fetchall()[0]
    end = last if end is None else end
    start = max(end - DEFAULT_SPAN_MS, first) if start is None else start  # the last day, within the data
    if end <= start:
        raise BadInputError(f"--end {ms_to_iso(end)} is not after --start {ms_to_iso(start)}")
    data.start, data.end, data.chart_interval = start, end, chart_interval(start, end)
    data.candles = resample_candles(con, symbol, data.chart_interval, start, end).to_pylist()
    rng = [symbol, start, end]
    data.orders = _rows(con, "SELECT epoch_ms(order_time) AS t, CAST(price AS DOUBLE) AS price, side, status, type, "
                             "order_id FROM orders WHERE symbol = ? AND epoch_ms(order_time) >= ? "
                             "AND epoch_ms(order_time) < ? ORDER BY t", rng)
    data.fills = _rows(con, "SELECT epoch_ms(trade_time) AS t, CAST(price AS DOUBLE) AS price, is_buyer, trade_id, "
                            "order_id FROM trades WHERE symbol = ? AND epoch_ms(trade_time) >= ? "
                            "AND epoch_ms(trade_time) < ? ORDER BY t", rng)
    return data


# -- rendering ----------------------------------------------------------------------------------

CSS = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;
margin-top:28px}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left}.legend span{display:inline-block;
width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}svg{background:#fafafa;border:1px solid #ddd}
.muted{color:#777}"""


def _heatmap(cov: List[Coverage]) -> str:
    cell, label_w = 12, 150
    all_days = sorted({d.date for c in cov for d in c.days})
    if not all_days:
        return "<p class='muted'>No candles.</p>"
    col = {d: i for i, d in enumerate(all_days)}
    width, height = label_w + cell * len(all_days) + 10, 24 + cell * len(cov)
    parts = [f'<svg id="heatmap" width="{width}" height="{height}" role="img" aria-label="coverage heatmap">',
             f'<text x="{label_w}" y="12" font-size="10">{all_days[0]}</text>',
             f'<text x="{width - 70}" y="12" font-size="10">{all_days[-1]}</text>']
    for row, c in enumerate(cov):
        y = 18 + row * cell
        parts.append(f'<text x="0" y="{y + 10}" font-size="11">{html.escape(c.symbol)} {c.interval}</text>')
        for d in c.days:
            x = label_w + col[d.date] * cell
            tip = (f"{c.symbol} {c.interval} {d.date}: {d.rows}/{d.expected} candles, {d.ours} missing (ours), "
                   f"{d.exchange_missing} in exchange gaps")
            parts.append(f'<rect class="day {d.state}" data-symbol="{html.escape(c.symbol)}" '
                         f'data-interval="{c.interval}" data-date="{d.date}" x="{x}" y="{y}" width="{cell - 1}" '
                         f'height="{cell - 1}" fill="{COLORS[d.state]}"><title>{html.escape(tip)}</title></rect>')
    parts.append("</svg>")
    legend = "".join(f'<span style="background:{COLORS[k]}"></span>{v}' for k, v in LABELS.items())
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def _scale(lo: float, hi: float, out_lo: float, out_hi: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: out_lo + (float(v) - lo) / span * (out_hi - out_lo)


def _chart(data: ReportData) -> str:
    if not data.candles or data.start is None or data.end is None:
        return "<p class='muted'>No 1m candles in the range.</p>"
    w, h, pad = 960, 360, 50
    prices = [float(c["low_price"]) for c in data.candles] + [float(c["high_price"]) for c in data.candles]
    prices += [o["price"] for o in data.orders if o["price"]] + [f["price"] for f in data.fills]
    lo, hi = min(prices), max(prices)
    x = _scale(data.start, data.end, pad, w - 10)
    y = _scale(lo, hi, h - 30, 10)
    step = RESAMPLE_MS[data.chart_interval or "1m"] or 30 * MS_PER_DAY
    body_w = max(1.0, (w - pad - 10) * step / (data.end - data.start) * 0.7)
    parts = [f'<svg id="candles" width="{w}" height="{h}" role="img" aria-label="candlestick chart">',
             f'<text x="2" y="16" font-size="10">{hi:g}</text><text x="2" y="{h - 30}" font-size="10">{lo:g}</text>',
             f'<text x="{pad}" y="{h - 8}" font-size="10">{ms_to_iso(data.start)}</text>',
             f'<text x="{w - 150}" y="{h - 8}" font-size="10">{ms_to_iso(data.end)}</text>']
    for c in data.candles:
        t = int(c["candle_open_time"].timestamp() * 1000)
        o, cl = float(c["open_price"]), float(c["close_price"])
        color = "#2e7d32" if cl >= o else "#c62828"
        cx = x(t + step / 2)
        top, bottom = y(max(o, cl)), y(min(o, cl))
        tip = (f"{ms_to_iso(t)} O {c['open_price']:f} H {c['high_price']:f} L {c['low_price']:f} "
               f"C {c['close_price']:f} V {c['base_volume']:f} ({c['candles_1m']} 1m candles)")
        parts.append(f'<g class="candle"><title>{html.escape(tip)}</title>'
                     f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(c["high_price"]):.1f}" y2="{y(c["low_price"]):.1f}" '
                     f'stroke="{color}"/><rect x="{cx - body_w / 2:.1f}" y="{top:.1f}" width="{body_w:.1f}" '
                     f'height="{max(1.0, bottom - top):.1f}" fill="{color}"/></g>')
    for order in data.orders:
        parts.append(_order_mark(order, x, y))
    for f in data.fills:
        tip = f"fill {f['trade_id']} of order {f['order_id']} at {f['price']:g}, {ms_to_iso(f['t'])}"
        parts.append(f'<circle class="fill" cx="{x(f["t"]):.1f}" cy="{y(f["price"]):.1f}" r="2.5" '
                     f'fill="{"#1565c0" if f["is_buyer"] else "#6a1b9a"}"><title>{html.escape(tip)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _order_mark(o: Dict[str, Any], x: Any, y: Any) -> str:
    """A triangle at the order's creation time and limit price (a MARKET order has price 0: none)."""
    if not o["price"]:
        return ""
    ox, oy = x(o["t"]), y(o["price"])
    pts = (f"{ox - 4:.1f},{oy + 4:.1f} {ox + 4:.1f},{oy + 4:.1f} {ox:.1f},{oy - 4:.1f}" if o["side"] == "BUY"
           else f"{ox - 4:.1f},{oy - 4:.1f} {ox + 4:.1f},{oy - 4:.1f} {ox:.1f},{oy + 4:.1f}")
    tip = f"order {o['order_id']} {o['side']} {o['type']} {o['status']} at {o['price']:g}, {ms_to_iso(o['t'])}"
    return (f'<polygon class="order {o["side"].lower()}" points="{pts}" fill="none" '
            f'stroke="{"#1565c0" if o["side"] == "BUY" else "#6a1b9a"}"><title>{html.escape(tip)}</title></polygon>')


def _orders_summary(data: ReportData) -> str:
    if not data.orders and not data.fills:
        return "<p class='muted'>No orders or fills of this symbol in the range (sync orders/trades to see them).</p>"
    by_status: Dict[Tuple[str, str], int] = {}
    for o in data.orders:
        by_status[(o["side"], o["status"])] = by_status.get((o["side"], o["status"]), 0) + 1
    rows = "".join(f"<tr><td>{html.escape(side)}</td><td>{html.escape(st)}</td><td>{n}</td></tr>"
                   for (side, st), n in sorted(by_status.items()))
    return (f'<p id="timeline">{len(data.orders)} orders (triangles: BUY up, SELL down) and {len(data.fills)} fills '
            "(dots) drawn on the chart above at their time and price.</p>"
            f"<table><tr><th>side</th><th>status</th><th>orders</th></tr>{rows}</table>")


def render(data: ReportData) -> str:
    totals = {k: sum(1 for c in data.coverage for d in c.days if d.state == k) for k in LABELS}
    title = f"binance-lake report: {data.lake_uri}"
    chart_title = (f"{data.symbol} {data.chart_interval} candles, {ms_to_iso(data.start)} .. {ms_to_iso(data.end)}"
                   if data.symbol and data.start is not None and data.end is not None else "Candles")
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Coverage (symbol x UTC day)</h2>",
        f"<p>{', '.join(f'{n} days {LABELS[k]}' for k, n in totals.items() if n)}.</p>",
        _heatmap(data.coverage),
        f"<h2>{html.escape(chart_title)}</h2>",
        _chart(data),
        "<h2>Orders and fills</h2>",
        _orders_summary(data),
        "</body></html>\n",
    ])


def write_report(lake: Lake, lake_uri: str, path: str, symbols: List[str], start: Optional[int],
                 end: Optional[int]) -> ReportData:
    data = gather(lake, lake_uri, symbols, start, end, symbols[0] if symbols else None)
    page = render(data)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)
    except OSError as exc:
        raise BadInputError(f"cannot write --html {path}: {exc.strerror or exc}") from None
    return data
