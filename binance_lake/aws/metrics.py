"""CloudWatch metrics of the pipeline: the one definition of the namespace and metric names
(the CDK's alarms and IAM conditions import them from here), and their publishers.

PutMetricData: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

from binance_lake.lake import Lake

METRIC_NAMESPACE = "BinanceLake"
FRESHNESS_METRIC = "MinutesSinceLastClosedCandle"
VERIFY_METRICS = ("VerifyMismatchedPartitions", "VerifyRepairedPartitions", "VerifyUnrepairedPartitions",
                  "VerifyGapPartitions")
VERIFY_UNREPAIRED_METRIC = VERIFY_METRICS[2]


def _cloudwatch(client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("cloudwatch")


def publish_freshness(lake: Lake, symbols: Sequence[str], intervals: Sequence[str], cloudwatch: Any = None,
                      now_ms: Optional[int] = None) -> Dict[str, float]:
    """Publish ``BinanceLake/MinutesSinceLastClosedCandle`` per symbol and interval from curated data.

    Read from the lake, not from this run's result, so that a stalled extract shows
    as a growing value. A symbol with no curated candle publishes nothing: the alarm
    treats missing data as breaching. The first (primary) interval is published with the
    ``Symbol`` dimension the alarms watch; every further one adds an ``Interval``
    dimension (its own metric) and is returned keyed ``SYMBOL/interval``.
    """
    from binance_lake.fold import last_closed_candle  # pyarrow: the transform bundle only

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    minutes: Dict[str, float] = {}
    data = []
    for n, interval in enumerate(intervals):
        for symbol in symbols:
            close_ms = last_closed_candle(lake, symbol, interval)
            if close_ms is None:
                continue
            value = round(max(0, now_ms - (close_ms + 1)) / 60000.0, 2)
            dims = [{"Name": "Symbol", "Value": symbol}]
            if n:
                dims.append({"Name": "Interval", "Value": interval})
            minutes[symbol if n == 0 else f"{symbol}/{interval}"] = value
            data.append({"MetricName": FRESHNESS_METRIC, "Dimensions": dims, "Timestamp": now_ms / 1000.0,
                         "Value": value, "Unit": "None"})
    if data:
        _cloudwatch(cloudwatch).put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data)
    return minutes


def publish_verify(summary: Dict[str, int], cloudwatch: Any = None) -> Dict[str, int]:
    """``BinanceLake/Verify*`` partition counts of a verify report's summary, one datum each,
    so an alarm can fire on ``VerifyUnrepairedPartitions > 0`` (or on any mismatch at all)."""
    s = summary
    values = dict(zip(VERIFY_METRICS, (s["repaired"] + s["mismatch"] + s["raw_missing"], s["repaired"],
                                       s["unrepaired"], s["with_gaps"])))
    _cloudwatch(cloudwatch).put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[
        {"MetricName": name, "Value": float(v), "Unit": "Count"} for name, v in values.items()])
    return values
