"""The positions view (average cost) against hand-computed books, in both renderings: the DuckDB
view, and the Athena (Trino) view run through sqlglot into DuckDB (tests/trino_sql.py)."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from binance_lake.columns import trades_table
from binance_lake.positions import ATHENA, COLUMNS, POSITIONS_SQL, positions_view, register_positions
from tests.conftest import NOW_MS
from tests.trino_sql import parse_trino, trino_to_duckdb

D = Decimal


def _trade(tid, symbol, buyer, qty, quote, fee, asset, order_id=1):
    return {"symbol": symbol, "id": tid, "orderId": order_id, "orderListId": -1,
            "price": str((D(quote) / D(qty)).quantize(D("1E-8"))), "qty": qty, "quoteQty": quote, "commission": fee,
            "commissionAsset": asset, "time": NOW_MS + tid, "isBuyer": buyer, "isMaker": False, "isBestMatch": True}


def _athena(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(trino_to_duckdb(positions_view(ATHENA)))


RENDERINGS = {"duckdb": register_positions, "athena": _athena}


@pytest.fixture(params=sorted(RENDERINGS))
def rendering(request):
    return request.param


def positions_by(register, trades):
    t, rejected = trades_table(trades, [1] * len(trades), ["k"] * len(trades))
    assert rejected == []
    con = duckdb.connect()
    con.register("trades_rows", t.sort_by("trade_id").take(list(reversed(range(t.num_rows)))))  # order from SQL
    con.execute("CREATE VIEW trades AS SELECT * FROM trades_rows")
    register(con)
    cols = [d[0] for d in con.execute("SELECT * FROM positions").description]
    return {r[0]: dict(zip(cols, r)) for r in con.execute("SELECT * FROM positions").fetchall()}


@pytest.fixture
def positions(rendering):
    return lambda trades: positions_by(RENDERINGS[rendering], trades)


def test_partial_fills_bnb_fees_and_a_full_round_trip(positions):
    p = positions([
        _trade(1, "BTCUSDT", True, "1.0", "100", "0.001", "BNB", order_id=7),    # order 7, first fill
        _trade(2, "BTCUSDT", True, "0.5", "65", "0.065", "USDT", order_id=7),    # order 7, second fill @130
        # held 1.5 for 165: average cost 110
        _trade(3, "BTCUSDT", False, "0.6", "90", "0.0002", "BNB", order_id=8),   # basis 66, +24
        _trade(4, "BTCUSDT", False, "0.9", "108", "0.108", "USDT", order_id=9),  # basis 99, +9: flat again
    ])["BTCUSDT"]
    assert (p["trades"], p["bought_qty"], p["sold_qty"], p["net_base_qty"]) == (4, D("1.5"), D("1.5"), D("0"))
    assert (p["held_qty"], p["avg_cost"], p["cost_basis"]) == (D("0"), None, D("0"))
    assert p["realized_pnl"] == D("33") and p["unmatched_sell_qty"] == D("0")
    assert p["fees"] == {"BNB": D("0.0012"), "USDT": D("0.173")}


def test_average_cost_changes_on_buys_only_and_rounds_down_to_1e8(positions):
    p = positions([
        _trade(1, "BTCUSDT", True, "3", "100", "0", "USDT"),    # average 33.333333333...
        _trade(2, "BTCUSDT", False, "1", "40", "0", "USDT"),    # basis 33.33333333, +6.66666667
        _trade(3, "BTCUSDT", True, "2", "90", "0", "USDT"),     # held 4 for 156.66666667: 39.16666666
    ])["BTCUSDT"]
    assert p["held_qty"] == D("4") and p["cost_basis"] == D("156.66666667")
    assert p["avg_cost"] == D("39.16666666") and p["realized_pnl"] == D("6.66666667")


def test_a_sell_beyond_the_known_history_is_unmatched_not_profit_and_symbols_are_separate(positions):
    p = positions([
        _trade(1, "ETHUSDT", False, "1", "50", "0.05", "USDT"),  # sold before the lake's first trade
        _trade(2, "ETHUSDT", True, "2", "100", "0.1", "USDT"),
        _trade(3, "BTCUSDT", True, "1", "10", "0.01", "USDT"),
    ])
    eth = p["ETHUSDT"]
    assert (eth["net_base_qty"], eth["held_qty"], eth["avg_cost"]) == (D("1"), D("2"), D("50"))
    assert (eth["realized_pnl"], eth["unmatched_sell_qty"]) == (D("0"), D("1"))
    assert (p["BTCUSDT"]["held_qty"], p["BTCUSDT"]["avg_cost"]) == (D("1"), D("10"))


def test_positions_view_is_in_every_lake_connection(client, lake, emulator):
    from binance_lake.jobs import sync
    from binance_lake.query import connect
    from binance_lake.times import MS_PER_DAY

    assert connect(lake).execute("SELECT count(*) FROM positions").fetchone() == (0,)  # empty lake: no rows
    emulator.generate_orders("BTCUSDT", 80, NOW_MS - MS_PER_DAY, NOW_MS - 60_000, seed=12)
    sync.sync_trades(client, lake, "BTCUSDT")
    truth = emulator.trades("BTCUSDT")
    [(n, net)] = connect(lake).execute("SELECT trades, net_base_qty FROM positions").fetchall()
    assert n == len(truth)
    assert net == sum(D(t["qty"]) * (1 if t["isBuyer"] else -1) for t in truth)


_qty = st.decimals(min_value=D("0.00000001"), max_value=D("1000000"), places=8)
_fill = st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT"]), st.booleans(), _qty,
                  st.decimals(min_value=D("0.00000001"), max_value=D("100000"), places=8),
                  st.sampled_from(["BNB", "USDT", "BTC"]))


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fill, min_size=1, max_size=30))
def test_both_renderings_agree_on_any_history(fills):
    """Athena's view equals DuckDB's to the last 1e-8 on random histories: large quantities
    and prices (units x units near 1e33: no DOUBLE anywhere), sells beyond the holding, three
    fee assets, two symbols."""
    trades = [_trade(i + 1, sym, buyer, str(qty), str((qty * price).quantize(D("1E-8")) or D("0.00000001")),
                     str((qty / 1000).quantize(D("1E-8"))), asset)
              for i, (sym, buyer, qty, price, asset) in enumerate(fills)]
    duck, athena = positions_by(register_positions, trades), positions_by(_athena, trades)
    assert duck == athena and set(duck) == {t["symbol"] for t in trades}


def test_the_athena_rendering_is_trino_with_no_recursion_and_the_same_columns():
    sql = positions_view(ATHENA)
    tree = parse_trino(sql)  # raises on anything that is not Trino syntax
    assert isinstance(tree, exp.Create) and tree.this.sql() == "positions"
    assert not any(w.args.get("recursive") for w in tree.find_all(exp.With))  # Athena: depth 10
    assert list(tree.find_all(exp.Reduce))
    select = tree.expression
    assert [s.alias_or_name for s in select.expressions] == [name for name, _ in COLUMNS]
    assert "RECURSIVE" not in POSITIONS_SQL.upper()  # the DuckDB view is the same fold
