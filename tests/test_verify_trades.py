"""verify and status check every final order against its trades (binance_lake.reconcile)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from binance_lake import verify
from binance_lake.cli import main
from binance_lake.columns import orders_table, trades_table
from binance_lake.jobs import sync
from binance_lake.reconcile import order_trade_mismatches
from binance_lake.times import MS_PER_DAY, MS_PER_MINUTE, ms_to_date
from tests.conftest import NOW_MS


def _verify(lake, symbols=("BTCUSDT",)):
    days = sorted({ms_to_date(NOW_MS - i * MS_PER_DAY) for i in range(4)})
    return verify.verify(lake, list(symbols), "1m", days, verify.VerifyOptions(repair=False))


def test_verify_finds_every_order_consistent_then_reports_a_broken_trade(client, lake, emulator, capsys):
    emulator.generate_orders("BTCUSDT", 200, NOW_MS - 3 * MS_PER_DAY, NOW_MS - MS_PER_MINUTE, seed=11)
    sync.sync_account(client, lake, "BTCUSDT")
    report = _verify(lake)
    assert report.order_trade_mismatches == [] and verify.exit_code(report) == 0
    # break one trade in curated: its order no longer adds up
    key = next(k for k in lake.list_keys("curated/trades") if k.endswith(".parquet"))
    t = pq.read_table(io.BytesIO(lake.read_bytes(key)))
    rows = t.to_pylist()
    victim = rows[0]
    rows[0] = {**victim, "qty": victim["qty"] + Decimal("0.00000001")}
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), buf)
    lake.write_bytes(key, buf.getvalue())
    report = _verify(lake)
    [m] = report.order_trade_mismatches
    order = next(o for o in emulator.orders("BTCUSDT") if o["orderId"] == victim["order_id"])
    assert (m["order_id"], m["executed_qty"]) == (order["orderId"], order["executedQty"])
    assert Decimal(m["trades_qty"]) == Decimal(order["executedQty"]) + Decimal("0.00000001")
    assert verify.exit_code(report) == verify.EXIT_UNREPAIRED
    assert f"order BTCUSDT {order['orderId']}" in report.line()
    assert main(["status", "--json", "--lake", lake.root]) == 0
    [status] = json.loads(capsys.readouterr().out)["trades"]
    assert status["orders_inconsistent"] == 1


def _order(oid, status, executed, cum):
    return {"symbol": "BTCUSDT", "orderId": oid, "orderListId": -1, "price": "100", "origQty": "2",
            "executedQty": executed, "cummulativeQuoteQty": cum, "status": status, "type": "LIMIT",
            "side": "BUY", "time": NOW_MS, "updateTime": NOW_MS}


def _trade(tid, oid, qty, quote):
    return {"symbol": "BTCUSDT", "id": tid, "orderId": oid, "orderListId": -1, "price": "100", "qty": qty,
            "quoteQty": quote, "commission": "0", "commissionAsset": "USDT", "time": NOW_MS, "isBuyer": True,
            "isMaker": True, "isBestMatch": True}


def test_rule_final_orders_only_and_unknown_quote_skipped():
    orders = [_order(1, "FILLED", "2", "200"),             # two fills: consistent
              _order(2, "PARTIALLY_FILLED", "1", "100"),   # not final: not checked
              _order(3, "FILLED", "1", "-1.00000000"),     # quote not available: qty side only
              _order(4, "CANCELED", "0.5", "50"),          # fills missing
              _order(5, "CANCELED", "0", "0"),             # nothing executed, no trades: fine
              _order(6, "FILLED", "1", "100")]             # quote side wrong
    trades = [_trade(1, 1, "1.5", "150"), _trade(2, 1, "0.5", "50"), _trade(3, 3, "1", "123"),
              _trade(4, 6, "1", "99")]
    o, _ = orders_table(orders, [1] * len(orders), ["k"] * len(orders))
    t, _ = trades_table(trades, [1] * len(trades), ["k"] * len(trades))
    got = {m.order_id: m for m in order_trade_mismatches(o, t)}
    assert sorted(got) == [4, 6]
    assert (got[4].trades_qty, got[4].trades) == ("0", 0)
    assert (got[6].cummulative_quote_qty, got[6].trades_quote_qty) == ("100.00000000", "99.00000000")
