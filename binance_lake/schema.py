"""The one definition of every table in the lake.

Everything else derives from here: the Arrow schema the transform writes, the Glue
columns and partition keys the CDK app declares, the DuckDB views, the CSV report
headers, and the mapping from Binance's JSON to curated columns. Nothing else may
retype a column.

Pure Python on purpose (import-linter keeps it so): the CDK app and the Lambda extractors
import this module and must not pay for pyarrow; the Arrow schema of a table is built from
it by :func:`binance_lake.columns.arrow_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Tuple, Union

# Binance sends every price and quantity as a string with 8 decimals. 38 digits hold
# any quote volume Binance has ever reported; a value with more than 8 significant
# decimals is an error (quarantined), never a rounding.
DECIMAL_PRECISION = 38
DECIMAL_SCALE = 8

# Column kinds, and how each maps to Arrow and Glue/Athena.
STRING, DECIMAL, INT64, TIMESTAMP, BOOL = "string", "decimal", "int64", "timestamp", "bool"
_GLUE_TYPES = {
    STRING: "string",
    DECIMAL: f"decimal({DECIMAL_PRECISION},{DECIMAL_SCALE})",
    INT64: "bigint",
    TIMESTAMP: "timestamp",
    BOOL: "boolean",
}

# Where a column's value comes from in a Binance record: an index into the kline
# array, a key of the order object, or None for columns the pipeline fills itself.
Source = Union[int, str, None]


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    source: Source
    description: str
    nullable: bool = False
    report_header: Optional[str] = None  # the user's required CSV header, if any


@dataclass(frozen=True)
class PartitionKey:
    name: str
    description: str
    # Athena partition projection hints (consumed by the CDK app).
    projection: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    name: str
    raw_prefix: str
    curated_prefix: str
    columns: Tuple[Column, ...]
    partition_keys: Tuple[PartitionKey, ...]
    primary_key: Tuple[str, ...]  # (symbol column, key within the symbol): dedupe/upsert key
    version_columns: Tuple[str, ...]  # of two rows with one key, the greater of these wins
    time_column: str  # the instant a row's date partition (and export ranges) is taken from
    description: str
    # True: a row re-fetched with the same values is the same row and keeps the lineage
    # (ingested_at, source_key) of its first fetch; rows that differ are ordered by
    # version_columns, then by their values, never by fetch time (binance_lake.columns.dedupe).
    # That makes the merge order-free, so a fold that skips unchanged rows equals a rebuild.
    first_fetch_lineage: bool = False
    # Of rows of one version, one whose ``status`` is in here (no more changes) beats one that is
    # not: e.g. an archived order's final row carries the updateTime of its last open copy.
    final_statuses: FrozenSet[str] = frozenset()

    @property
    def symbol_column(self) -> str:
        return self.primary_key[0]

    @property
    def key_in_symbol(self) -> str:
        """The key within one symbol's partitions (every row of a partition has one symbol)."""
        return self.primary_key[-1]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> List[str]:
        return [c.name for c in self.columns]

    def glue_columns(self) -> List[Dict[str, str]]:
        """Glue data columns. Hive/Glue forbid a column named like a partition key: orders carry
        ``symbol`` in the rows and as the partition, with the same value, so Athena reads the partition."""
        keys = {p.name for p in self.partition_keys}
        return [{"name": c.name, "type": _GLUE_TYPES[c.kind], "comment": c.description}
                for c in self.columns if c.name not in keys]

    def glue_partition_keys(self) -> List[Dict[str, str]]:
        return [{"name": p.name, "type": "string", "comment": p.description} for p in self.partition_keys]

    def report_columns(self) -> List[Tuple[str, str]]:
        """(curated column, required header) pairs, in the user's required order."""
        order = REPORT_ORDER[self.name]
        by_header = {c.report_header: c.name for c in self.columns if c.report_header}
        return [(by_header[h], h) for h in order]


_DATE_PROJECTION = {"type": "date", "format": "yyyy-MM-dd", "range": "2017-07-01,NOW", "interval": "1",
                    "interval.unit": "DAYS"}

# Candle intervals from 1h up are partitioned by UTC month (binance_lake.layout.grain): Athena
# reads them through a second Glue table over the same prefix, whose ``date`` projection steps by
# month ("Supported types for partition projection", Athena User Guide: date type, a Java
# DateTimeFormatter ``format`` and ``interval.unit`` MONTHS).
CANDLES_MONTHLY = "candles_monthly"
MONTH_PROJECTION = {"type": "date", "format": "yyyy-MM", "range": "2017-07,NOW", "interval": "1",
                    "interval.unit": "MONTHS"}

_LINEAGE = (
    Column("ingested_at", TIMESTAMP, None, "When the raw file was fetched from Binance (UTC)"),
    Column("source_key", STRING, None, "Lake key of the raw file this row came from"),
)
# Which fetch a row came from, not what Binance said: verify does not count a row that differs
# only here as changed (the same values from a newer fetch, not folded yet).
LINEAGE_COLUMNS = frozenset(c.name for c in _LINEAGE)

CANDLES = Table(
    name="candles",
    raw_prefix="raw/klines",
    curated_prefix="curated/candles",
    description="Closed Binance spot candles (klines), one row per (symbol, interval, open time)",
    columns=(
        Column("trading_pair", STRING, None, "Binance symbol, e.g. BTCUSDT", report_header="Trading Pair"),
        Column("open_price", DECIMAL, 1, "Open price", report_header="Open Price"),
        Column("high_price", DECIMAL, 2, "High price", report_header="High Price"),
        Column("low_price", DECIMAL, 3, "Low price", report_header="Low Price"),
        Column("close_price", DECIMAL, 4, "Close price", report_header="Close Price"),
        Column("base_volume", DECIMAL, 5, "Volume in the base asset (BTC)", report_header="BTC Volume"),
        Column("quote_volume", DECIMAL, 7, "Volume in the quote asset (USDT/USD)", report_header="USD Volume"),
        Column("taker_buy_base_volume", DECIMAL, 9, "Taker buy volume, base asset"),
        Column("taker_buy_quote_volume", DECIMAL, 10, "Taker buy volume, quote asset"),
        Column("number_of_trades", INT64, 8, "Number of trades", report_header="Number of Trades"),
        Column("candle_open_time", TIMESTAMP, 0, "Candle open time (UTC)", report_header="Candle Open Time"),
        Column("candle_close_time", TIMESTAMP, 6, "Candle close time (UTC)", report_header="Candle Close Time"),
        *_LINEAGE,
    ),
    partition_keys=(
        PartitionKey("interval", "Kline interval, e.g. 1m", {"type": "enum", "values": "1m"}),
        PartitionKey("symbol", "Binance symbol", {"type": "injected"}),
        PartitionKey("date", "UTC date of candle_open_time", _DATE_PROJECTION),
    ),
    primary_key=("trading_pair", "candle_open_time"),
    version_columns=("ingested_at",),  # the most recently fetched copy wins
    time_column="candle_open_time",
)

# Order statuses after which an order gets no more fills: verify checks these against their trades.
FINAL_ORDER_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"})

ORDERS = Table(
    name="orders",
    raw_prefix="raw/orders",
    curated_prefix="curated/orders",
    description="Account orders, one row per (symbol, order id), latest update wins",
    columns=(
        Column("symbol", STRING, "symbol", "Binance symbol", report_header="Symbol"),
        Column("order_id", INT64, "orderId", "Binance order id", report_header="OrderID"),
        Column("order_list_id", INT64, "orderListId", "Order list id, -1 if none", nullable=True),
        Column("client_order_id", STRING, "clientOrderId", "Client order id", nullable=True),
        Column("price", DECIMAL, "price", "Limit price", report_header="Price"),
        Column("orig_qty", DECIMAL, "origQty", "Original quantity", report_header="OrigQty"),
        Column("executed_qty", DECIMAL, "executedQty", "Executed quantity", report_header="ExecutedQty"),
        Column("cummulative_quote_qty", DECIMAL, "cummulativeQuoteQty",
               "Cumulative quote quantity (< 0 when Binance has no data for old orders)", nullable=True),
        Column("status", STRING, "status", "Order status", report_header="status"),
        Column("time_in_force", STRING, "timeInForce", "Time in force", nullable=True),
        Column("type", STRING, "type", "Order type", report_header="type"),
        Column("side", STRING, "side", "BUY or SELL", report_header="side"),
        Column("stop_price", DECIMAL, "stopPrice", "Stop price", nullable=True),
        Column("iceberg_qty", DECIMAL, "icebergQty", "Iceberg quantity", nullable=True),
        Column("order_time", TIMESTAMP, "time", "Order creation time (UTC)"),
        Column("update_time", TIMESTAMP, "updateTime", "Last update time (UTC)"),
        Column("is_working", BOOL, "isWorking", "Order is on the book", nullable=True),
        Column("working_time", TIMESTAMP, "workingTime", "When the order started working", nullable=True),
        Column("orig_quote_order_qty", DECIMAL, "origQuoteOrderQty", "Original quote order quantity",
               nullable=True),
        Column("self_trade_prevention_mode", STRING, "selfTradePreventionMode", "STP mode", nullable=True),
        Column("extra_fields", STRING, None,
               "JSON object of the conditional fields Binance sent (expiryReason, trailingDelta, ...)",
               nullable=True),
        *_LINEAGE,
    ),
    partition_keys=(
        PartitionKey("symbol", "Binance symbol", {"type": "injected"}),
        PartitionKey("date", "UTC date of order_time (creation time never changes)", _DATE_PROJECTION),
    ),
    primary_key=("symbol", "order_id"),
    # The latest update wins; an open order re-fetched unchanged every tick stays the row of its
    # first fetch, so its day partition is not rewritten (issue 21 lever 6).
    version_columns=("update_time",),
    time_column="order_time",
    first_fetch_lineage=True,
    final_statuses=FINAL_ORDER_STATUSES,
)

# The account's fills (GET /api/v3/myTrades, binance-spot-api-docs rest-api.md "Account trade list
# (USER_DATA)"). A trade never changes once reported: append-only, one row per (symbol, trade id);
# a re-fetched copy is the same row (the latest fetch is kept, its values are identical).
TRADES = Table(
    name="trades",
    raw_prefix="raw/trades",
    curated_prefix="curated/trades",
    description="Account trades (fills of the account's orders), one row per (symbol, trade id), append-only",
    columns=(
        Column("symbol", STRING, "symbol", "Binance symbol", report_header="Symbol"),
        Column("trade_id", INT64, "id", "Binance trade id (unique per symbol)", report_header="TradeID"),
        Column("order_id", INT64, "orderId", "Id of the order this fill belongs to", report_header="OrderID"),
        Column("order_list_id", INT64, "orderListId", "Order list id, -1 if none", nullable=True),
        Column("price", DECIMAL, "price", "Fill price", report_header="Price"),
        Column("qty", DECIMAL, "qty", "Filled quantity, base asset", report_header="Qty"),
        Column("quote_qty", DECIMAL, "quoteQty", "Filled quantity, quote asset", report_header="QuoteQty"),
        Column("commission", DECIMAL, "commission", "Fee charged for this fill", report_header="Commission"),
        Column("commission_asset", STRING, "commissionAsset", "Asset the fee was charged in",
               report_header="CommissionAsset"),
        Column("trade_time", TIMESTAMP, "time", "Trade time (UTC)", report_header="Time"),
        Column("is_buyer", BOOL, "isBuyer", "The account was the buyer", report_header="IsBuyer"),
        Column("is_maker", BOOL, "isMaker", "The account's order was the maker", report_header="IsMaker"),
        Column("is_best_match", BOOL, "isBestMatch", "Binance's isBestMatch flag", nullable=True),
        *_LINEAGE,
    ),
    partition_keys=(
        PartitionKey("symbol", "Binance symbol", {"type": "injected"}),
        PartitionKey("date", "UTC date of trade_time (a trade never changes)", _DATE_PROJECTION),
    ),
    primary_key=("symbol", "trade_id"),
    version_columns=("ingested_at",),  # trades never change: any copy is the row; keep the latest fetch
    time_column="trade_time",
)

TABLES: Dict[str, Table] = {t.name: t for t in (CANDLES, ORDERS, TRADES)}
# The tables whose curated partitions verify re-derives from raw and compares, row by row.
# Trades are append-only copies of their raw pages; verify checks them against the orders
# instead (binance_lake.reconcile), so a trades partition is never handed to the orders rule.
REDERIVED_TABLES: Tuple[str, ...] = (CANDLES.name, ORDERS.name)

# The user's required report headers, in the user's order (export writes exactly these).
REPORT_ORDER = {
    "candles": ("Trading Pair", "Open Price", "Close Price", "High Price", "Low Price", "BTC Volume",
                "USD Volume", "Number of Trades", "Candle Open Time", "Candle Close Time"),
    "orders": ("Symbol", "OrderID", "Price", "OrigQty", "ExecutedQty", "status", "type", "side"),
    "trades": ("Symbol", "TradeID", "OrderID", "Price", "Qty", "QuoteQty", "Commission", "CommissionAsset",
               "Time", "IsBuyer", "IsMaker"),
}


# Order statuses that can still change: those rows are refreshed on every sync.
OPEN_ORDER_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW", "PENDING_CANCEL"})


def sql_in_list(values: frozenset[str]) -> str:
    """``('A','B')`` for a SQL ``IN``: status lists reach DuckDB/Athena from here only."""
    return "(" + ",".join(f"'{v}'" for v in sorted(values)) + ")"
