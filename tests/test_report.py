"""`binance-lake report --html FILE`: one self-contained page; the test opens it and checks the
heatmap's day states, the chart's candles and the orders/fills drawn, and that nothing in it
points at the network."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from binance_lake.cli import main
from binance_lake.times import parse_time
from tests.conftest import NOW_MS


class Page(HTMLParser):
    """Every start tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    @classmethod
    def of(cls, text: str) -> Page:
        page = cls()
        page.feed(text)
        return page

    def find(self, tag: str, cls: str = "") -> list:
        return [a for t, a in self.tags if t == tag and cls in a.get("class", "").split()]


@pytest.fixture
def run(cli):
    def ok(*args: str) -> str:
        code, out, err = cli(*args)
        assert code == 0, (args, err)
        return out

    ok.base_url = cli.base_url
    return ok


def test_report_page(run, emulator, tmp_path):
    b = ("--base-url", run.base_url)
    emulator.add_exchange_gap("BTCUSDT", parse_time("2024-03-02T05:00:00Z"), parse_time("2024-03-02T05:30:00Z"))
    # 2024-03-01 with an hour we never fetched (our gap), 2024-03-02 with the exchange's maintenance.
    run("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01", "--end", "2024-03-01T12:00:00Z", *b)
    run("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-01T13:00:00Z", "--end", "2024-03-03", *b)
    run("sync", "candles", "--symbol", "BTCUSD", "--start", "2024-03-02", "--end", "2024-03-03", *b)
    orders = emulator.generate_orders("BTCUSDT", 40, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=4)
    run("sync", "orders", "--symbol", "BTCUSDT", *b)
    run("sync", "trades", "--symbol", "BTCUSDT", *b)
    fills = emulator.trades("BTCUSDT")
    page_path = tmp_path / "report.html"
    out = run("report", "--html", str(page_path), "--symbol", "BTCUSDT,BTCUSD", "--start", "2024-03-02",
              "--end", "2024-03-03")
    truth_15m = emulator.klines("BTCUSDT", "15m", parse_time("2024-03-02"), parse_time("2024-03-03"))
    assert len(truth_15m) == 96 - 2  # the maintenance half hour has no candle, on Binance either
    assert f"report: {page_path}" in out and "BTCUSDT chart of 94 15m candles" in out

    text = page_path.read_text()
    page = Page()
    page.feed(text)
    days = {(a["data-symbol"], a["data-date"]): a["class"].split()[1] for a in page.find("rect", "day")}
    assert days == {("BTCUSDT", "2024-03-01"): "ours", ("BTCUSDT", "2024-03-02"): "exchange",
                    ("BTCUSD", "2024-03-02"): "complete"}
    assert "720/720" not in text and "BTCUSDT 1m 2024-03-01: 1380/1440 candles, 60 missing (ours)" in text
    # The chart: a day in 15m candles, Binance's 15m candles (the first one's values in its tooltip).
    assert len(page.find("g", "candle")) == len(truth_15m)
    first = truth_15m[0]
    assert f"2024-03-02T00:00:00Z O {first[1]} H {first[2]} L {first[3]} C {first[4]}" in text
    # Orders with a price (not MARKET) as triangles, every fill as a dot.
    in_range = [o for o in orders if parse_time("2024-03-02") <= o["time"] < parse_time("2024-03-03")]
    assert len(page.find("polygon", "order")) == sum(1 for o in in_range if float(o["price"]))
    assert len(page.find("circle", "fill")) == sum(
        1 for f in fills if parse_time("2024-03-02") <= f["time"] < parse_time("2024-03-03")) > 0
    assert f"{len(in_range)} orders" in text
    # Self-contained and small: nothing to fetch, no script.
    assert not re.search(r"(src|href)\s*=|<script|@import|url\(", text)
    assert len(text.encode()) < 200_000


def test_report_without_account_tables_says_so(run, tmp_path):
    run("sync", "candles", "--symbol", "BTCUSDT", "--start", "2024-03-02T00:00:00Z", "--end", "2024-03-02T02:00:00Z",
        "--base-url", run.base_url)
    path = tmp_path / "r.html"
    run("report", "--html", str(path))
    text = path.read_text()
    assert "No orders or fills of this symbol in the range" in text and len(Page.of(text).find("g", "candle")) == 120
    assert "BTCUSDT 1m candles, 2024-03-02T00:00:00Z .. 2024-03-02T02:00:00Z" in text


def test_report_bad_input_exit_2(tmp_path, capsys):
    assert main(["report", "--html", str(tmp_path / "r.html"), "--lake", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", "--html", str(tmp_path / "r.html"), "--lake", str(tmp_path / "empty")]) == 2
    assert "holds no candles" in capsys.readouterr().err
