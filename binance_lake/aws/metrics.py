"""CloudWatch metrics of the pipeline: the one definition of the namespace and metric names
(the CDK's alarms and IAM conditions import them from here), and their publishers.

PutMetricData: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html
"""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

METRIC_NAMESPACE = "BinanceLake"
FRESHNESS_METRIC = "StalestCandleMinutesBehind"
VERIFY_METRICS = ("VerifyMismatchedPartitions", "VerifyRepairedPartitions", "VerifyUnrepairedPartitions",
                  "VerifyGapPartitions")
VERIFY_UNREPAIRED_METRIC = VERIFY_METRICS[2]
# What the daily verify publishes (the alarmed count only; the others stay in its report).
VERIFY_PUBLISHED = (VERIFY_UNREPAIRED_METRIC,)


def _cloudwatch(client: Any) -> Any:
    if client is not None:
        return client
    import boto3

    return boto3.client("cloudwatch")


def publish_stalest(rows: Sequence[Dict[str, Any]], cloudwatch: Any = None,
                    now_ms: Optional[int] = None) -> Optional[float]:
    """Publish ``BinanceLake/StalestCandleMinutesBehind``: the largest ``minutes_behind`` over every
    configured symbol and interval (``aws.freshness.report`` rows), one datum without dimensions.

    One metric and one alarm whatever the number of symbols (issue 14, lever 1: a metric per
    symbol was 0.30 USD/month plus 0.10 for its alarm); which symbol is stale is in the
    transform's log line and summary (docs/cloud.md has the Logs Insights query). When any
    configured symbol has no curated candle at all, nothing is published: the alarm treats
    missing data as breaching, as the per-symbol alarms did for that symbol. Returns the value
    published, or None.
    """
    if not rows or any(r.get("minutes_behind") is None for r in rows):
        return None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = max(float(r["minutes_behind"]) for r in rows)
    _cloudwatch(cloudwatch).put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[
        {"MetricName": FRESHNESS_METRIC, "Timestamp": now_ms / 1000.0, "Value": value, "Unit": "None"}])
    return value


def publish_verify(summary: Dict[str, int], cloudwatch: Any = None) -> Dict[str, int]:
    """The verify report's partition counts; only ``VerifyUnrepairedPartitions`` is published.

    That is the one the alarm watches (> 0: a human must look). The other counts (mismatched,
    repaired, with gaps) stay in the returned dict and in the report under ``curated/_verify/``,
    which the alarm's description points to: at 0.30 USD per metric-month, a daily figure
    nobody alarms on is not worth a metric (issue 14, lever 11). Returns every count.
    """
    s = summary
    values = dict(zip(VERIFY_METRICS, (s["repaired"] + s["mismatch"] + s["raw_missing"], s["repaired"],
                                       s["unrepaired"], s["with_gaps"])))
    _cloudwatch(cloudwatch).put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[
        {"MetricName": name, "Value": float(values[name]), "Unit": "Count"} for name in VERIFY_PUBLISHED])
    return values
