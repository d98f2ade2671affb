"""Cost rehearsal: every AWS call and Binance weight of a steady-state 5-minute tick, counted.

Drives real ticks through the synthesized Beta stack as the cloud-in-a-box does
(tests/cloud/box.py): the CDK app is synthesized with ``SYMBOLS`` symbols, the state machine
from the template runs in moto, and each Task runs the Lambda handler named in the template
(lambdas/*.py) from its code asset, in this process. Nothing here calls the core directly,
so moving core modules around does not change what is measured.

Every boto3 call the handlers and the state machine make is recorded on botocore's
``provide-client-params`` event (the recorder of tests/cloud/iam_rehearsal.py) with the
Lambda it ran in and, for S3, the core function that issued it. The emulator runs in its own
process with 50 ms latency (bench/emuproc.py). A warm-up tick catches the empty lake up
(24 h of candles, the orders); then N ticks, 5 emulated minutes apart, are measured and
averaged. The Binance weight window is reset between ticks (on AWS they are 5 real minutes
apart). Lambda durations are this machine's in-process wall time of each handler, an
estimate of the billed duration (moto's S3 answers in microseconds; real S3 in ms).

    .venv/bin/python bench/cost_rehearsal.py --symbols 100    # writes cost_rehearsal_{1,100}.json

Prices and their sources: docs/cost.md ("Unit prices"); the same figures are in PRICES.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from binance_lake.aws.metrics import VERIFY_PUBLISHED  # noqa: E402  (after the sys.path line above)

TICK_MS = 5 * 60_000
TICKS_PER_MONTH = 8640  # 30 days x 288
NOW_MS = 1_751_284_830_000  # 2025-06-30T12:00:30Z, as bench/bench_tick.py
API_KEY, API_SECRET = "rehearsal-key", "rehearsal-secret"

# us-east-1 list prices; each with its source and look-up date in docs/cost.md.
PRICES = {
    "s3_tier1_per_1k": 0.005,  # PUT, COPY, POST, LIST
    "s3_tier2_per_1k": 0.0004,  # GET, SELECT and all other requests (HEAD)
    "cw_metric_month": 0.30,  # custom metric, first 10,000
    "cw_alarm_month": 0.10,  # standard-resolution alarm per metric
    "cw_put_per_1k": 0.01,  # PutMetricData (API requests)
    "cw_logs_ingest_gb": 0.50,
    "sm_secret_month": 0.40,
    "sm_per_10k": 0.05,
    "sfn_std_per_1k_transitions": 0.025,
    "lambda_gb_s_arm": 0.0000133334,
    "lambda_per_1m": 0.20,
    "kms_key_month": 1.00,
    "kms_per_10k": 0.03,
    "scheduler_per_1m": 1.00,
    "xray_per_1m_traces": 5.00,  # traces recorded (state machine tracing is on)
    "cw_dashboard_month": 3.00,  # per dashboard beyond the account's first 3 (free tier not subtracted)
    "glue_dpu_hour": 0.44,  # Spark job, per second, 1-minute minimum
}
HOURS_PER_MONTH = 720  # 30 days: custom metrics are "prorated by the hour" and "metered only when they're sent"
# The verify's billed minutes per run cannot be measured offline (Spark start-up and the wheel
# install dominate; its own work is ~0.3 s a day, bench/bench_verify.py): an estimate, 2 minutes at
# 1 symbol and 3 at 100 (docs/cost.md), with the 1-minute minimum.
VERIFY_BASE_MINUTES, VERIFY_MINUTES_PER_SYMBOL = 2.0, 0.01
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
S3_TIER1 = {"PutObject", "CopyObject", "ListObjectsV2", "ListObjects", "CreateMultipartUpload", "UploadPart",
            "CompleteMultipartUpload", "PostObject", "DeleteObjects"}  # DeleteObjects is a POST (see cost.md)
S3_FREE = {"DeleteObject"}


def symbol_names(n: int) -> List[str]:
    """BTCUSDT plus n-1 made-up USDT pairs (the emulator generates candles for any symbol)."""
    return ["BTCUSDT"] + [f"S{i:03d}USDT" for i in range(1, n)]


# -- the stack --------------------------------------------------------------------------


def synth(symbols: Sequence[str], outdir: Path) -> Any:
    """The Beta stack as app.py builds it (cdk.json context) with ``symbols``, minus bundling."""
    from tests.cloud.box import synth_beta

    return synth_beta(outdir, **{"binance-lake:symbols": ",".join(symbols)})


def template_facts(stack: Any) -> Dict[str, Any]:
    """What the template bills by the month: alarms, dashboards, keys, secrets; SSE-KMS with Bucket Keys."""
    res = stack.template["Resources"]
    alarms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    per_ns = Counter(a.get("Namespace") or "metric math" for a in alarms)
    lake = [r["Properties"] for k, r in res.items() if r["Type"] == "AWS::S3::Bucket" and "Lake" in k]
    sse = lake[0].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [{}])[0] if lake else {}
    _, sm = stack.one("AWS::StepFunctions::StateMachine")
    definition = sm["Properties"]["DefinitionString"]
    if isinstance(definition, dict):  # Fn::Join of strings and ARNs: the state names are in the strings
        definition = "".join(p if isinstance(p, str) else "ARN" for p in definition["Fn::Join"][1])
    states = json.loads(definition)["States"]
    return {
        "alarms": len(alarms), "alarms_by_namespace": dict(per_ns),
        "dashboards": sum(1 for r in res.values() if r["Type"] == "AWS::CloudWatch::Dashboard"),
        "kms_keys": sum(1 for r in res.values() if r["Type"] == "AWS::KMS::Key"),
        "secrets": sum(1 for r in res.values() if r["Type"] == "AWS::SecretsManager::Secret"),
        "glue_scheduled": glue_schedules(res),
        "lake_sse": sse.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm"),
        "bucket_key_enabled": bool(sse.get("BucketKeyEnabled")),
        "state_machine_type": sm["Properties"].get("StateMachineType", "STANDARD"),
        "top_level_states": sorted(states),
        "lambdas": {k: {"memory_mb": r["Properties"].get("MemorySize", 128),
                        "arch": (r["Properties"].get("Architectures") or ["x86_64"])[0]}
                    for k, r in res.items() if r["Type"] == "AWS::Lambda::Function"
                    and "LAKE_URI" in r["Properties"].get("Environment", {}).get("Variables", {})},
    }


def runs_per_week(cron: str) -> float:
    """Runs a week of a Glue cron "cron(min hour day-of-month month day-of-week year)" that fires
    once a day on the days it names (what this stack uses: one minute, one hour)."""
    fields = cron.removeprefix("cron(").removesuffix(")").split()
    minute, hour, _, _, weekdays, _ = fields
    if not (minute.isdigit() and hour.isdigit()):
        raise ValueError(f"{cron}: only one run a day is counted here")
    if weekdays in ("*", "?"):
        return 7.0
    days = 0
    for part in weekdays.split(","):
        lo, _, hi = part.partition("-")
        days += (WEEKDAYS.index(hi) - WEEKDAYS.index(lo) + 1) if hi else 1
    return float(days)


def glue_schedules(res: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Each SCHEDULED Glue trigger's job: runs a week and DPUs (G.1X = 1 DPU, G.2X = 2 per worker)."""
    jobs = {k: r["Properties"] for k, r in res.items() if r["Type"] == "AWS::Glue::Job"}
    out = []
    for r in res.values():
        props = r.get("Properties", {})
        if r["Type"] != "AWS::Glue::Trigger" or props.get("Type") != "SCHEDULED":
            continue
        for action in props["Actions"]:
            job = jobs[action["JobName"]["Ref"]]
            dpu = {"G.1X": 1, "G.2X": 2}[job["WorkerType"]] * job["NumberOfWorkers"]
            out.append({"schedule": props["Schedule"], "runs_per_week": runs_per_week(props["Schedule"]), "dpu": dpu})
    return out


# -- recording --------------------------------------------------------------------------


class Tagged:
    """The iam rehearsal's botocore recorder, plus: in which Lambda (or the state machine)
    each call ran, and for S3 which core function issued it."""

    def __init__(self) -> None:
        from tests.cloud.iam_rehearsal import Recorder

        self.recorder = Recorder()
        self.current: Optional[str] = None
        self.metric_data: List[Dict[str, Any]] = []

    def attach(self, session: Any) -> None:
        self.recorder.attach(session)
        session.events.register("provide-client-params", self._tag)

    def _tag(self, params: Dict[str, Any], model: Any, context: Dict[str, Any], **_: Any) -> None:
        service = model.service_model.service_name
        if threading.current_thread() is threading.main_thread():
            who = "driver"  # this script's own StartExecution/DescribeExecution polling: not the stack's
        elif service in ("lambda", "stepfunctions"):
            who = "state machine"  # its Lambda invokes and the ListExecutions guard (from a branch thread)
        else:
            who = self.current or "state machine"
        # On the Call the recorder put in this request's context: threads record concurrently.
        call = context["rehearsal_call"]
        call.who, call.site = who, (_call_site() if service == "s3" else "")
        if model.name == "PutMetricData":
            self.metric_data.extend(params.get("MetricData", []))

    def clear(self) -> None:
        self.recorder.calls.clear()
        self.metric_data.clear()

    def calls(self) -> List[Tuple[str, str, str, str]]:
        """(who, service, operation, call site) of every call but the driver's."""
        return [(call.who, call.service, call.operation, call.site) for call in list(self.recorder.calls)
                if getattr(call, "who", "driver") != "driver"]


def _call_site() -> str:
    """``module.function`` of the nearest core frame outside the lake wrapper (who asked)."""
    f = sys._getframe(2)
    lake_fn = ""
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        if mod.startswith("binance_lake"):
            if mod.endswith(".lake") or ".lake." in mod or mod.endswith("storage"):
                lake_fn = lake_fn or f.f_code.co_name
            else:
                return f"{mod}.{f.f_code.co_name} -> {lake_fn or '?'}"
        f = f.f_back
    return lake_fn or "?"


def expire_secret_cache() -> None:
    """Play the 5 minutes between ticks for the warm Lambdas' secret cache.

    The cache lives SECRET_TTL_S = 300 s (binance_lake's cloud module), the tick interval,
    so on AWS a warm orders Lambda reads the secret again on (nearly) every tick; here ticks
    are seconds apart. Found by name in whichever core module holds it, so that moving the
    module does not break the rehearsal."""
    for module in list(sys.modules.values()):
        clear = getattr(module, "clear_secret_cache", None)
        if callable(clear) and getattr(module, "__name__", "").startswith("binance_lake"):
            clear()


# -- one rehearsal ----------------------------------------------------------------------


def rehearse(n_symbols: int, ticks: int, latency_s: float, orders_per_symbol: int) -> Dict[str, Any]:
    import boto3
    from moto import mock_aws

    from bench.emuproc import EmulatorProcess
    from tests.cloud.box import CloudBox

    symbols = symbol_names(n_symbols)
    t0 = time.perf_counter()
    stack = synth(symbols, Path(tempfile.mkdtemp(prefix="cost-cdk-")))
    synth_s = time.perf_counter() - t0
    facts = template_facts(stack)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": stack.region,
                        "AWS_REGION": stack.region}.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    tag = Tagged()
    measured: List[Dict[str, Any]] = []
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), \
            EmulatorProcess(now_ms=NOW_MS, seed=7, latency_s=latency_s, weight_limit=6000, weight_window_s=60) as emu:
        boto3.setup_default_session()
        tag.attach(boto3.DEFAULT_SESSION)
        emu.call("add_api_key", API_KEY, API_SECRET)
        for i, s in enumerate(symbols):
            if s != "BTCUSDT":
                emu.call("add_symbol", s)
            emu.call("generate_orders", s, orders_per_symbol, NOW_MS - 2 * 86_400_000, NOW_MS, seed=i)
        box = CloudBox(stack, emu.base_url).deploy()
        box.put_api_key(API_KEY, API_SECRET)
        durations: Dict[str, List[float]] = defaultdict(list)
        run_lambda = box.run_lambda

        def timed(name: str, event: Any) -> Any:
            with box._lock:  # the box runs one sandbox at a time; time the handler, not the wait
                tag.current = name
                t = time.perf_counter()
                try:
                    return run_lambda(name, event)
                finally:
                    durations[name].append(time.perf_counter() - t)
                    tag.current = None

        box._lock = threading.RLock()  # re-entrant: run_lambda takes it again inside timed()
        box.run_lambda = timed  # type: ignore[method-assign]
        with box.routed():
            emu.reset()
            warm = _tick(box, emu, tag, durations, timeout_s=900)
            for i in range(ticks):
                emu.call("advance", TICK_MS)
                now = NOW_MS + (i + 1) * TICK_MS
                for j, s in enumerate(symbols):  # one new order per symbol per tick
                    emu.call("generate_orders", s, 1, now - TICK_MS, now, seed=1000 * (i + 1) + j)
                emu.reset()
                expire_secret_cache()
                measured.append(_tick(box, emu, tag, durations, timeout_s=900))
    return {"symbols": n_symbols, "ticks": ticks, "latency_s": latency_s, "orders_per_symbol": orders_per_symbol,
            "synth_s": round(synth_s, 1), "template": facts, "warm_up": _brief(warm), "measured": measured,
            "per_tick": average(measured)}


def _tick(box: Any, emu: Any, tag: Tagged, durations: Dict[str, List[float]], timeout_s: float) -> Dict[str, Any]:
    tag.clear()
    durations.clear()
    log_start = box.logs.tell()
    t = time.perf_counter()
    tick = box.tick(timeout_s=timeout_s)
    wall = time.perf_counter() - t
    assert tick.status == "SUCCEEDED", tick.history[-1]
    ops: Counter = Counter()
    sites: Counter = Counter()
    for who, service, op, site in tag.calls():
        ops[f"{who}|{service}|{op}"] += 1
        if site:
            sites[f"{who}|{op}|{site}"] += 1
    entered = Counter(e["type"] for e in tick.history if e["type"].endswith("StateEntered"))
    binance = emu.call("requests")
    metrics = {(m["MetricName"], json.dumps(m.get("Dimensions", []), sort_keys=True)) for m in tag.metric_data}
    return {
        "status": tick.status, "wall_s": round(wall, 3),
        "calls": dict(sorted(ops.items())), "s3_sites": dict(sites.most_common()),
        "state_transitions": sum(entered.values()), "states_entered": dict(entered),
        "lambda_s": {k: [round(x, 3) for x in v] for k, v in durations.items()},
        "metric_data_points": len(tag.metric_data), "distinct_metrics": len(metrics),
        "log_bytes": len(box.logs.getvalue()) - log_start,
        "binance": {"requests": binance["requests"], "weight": binance["weight"], "paths": binance["paths"],
                    "429": emu.stats()["429"], "418": emu.stats()["418"]},
        "results": {i.function: _brief(i.result) for i in tick.invocations},
    }


def _brief(x: Any) -> Any:
    if isinstance(x, dict) and "calls" in x:
        return {"wall_s": x["wall_s"], "binance": x["binance"], "lambda_s": x["lambda_s"]}
    if isinstance(x, dict):
        return {k: v for k, v in x.items() if not isinstance(v, (list, dict)) or len(json.dumps(v)) < 400}
    return x


def average(ticks: List[Dict[str, Any]]) -> Dict[str, Any]:
    def mean_counter(key: str) -> Dict[str, float]:
        keys = sorted({k for t in ticks for k in t[key]})
        return {k: round(statistics.mean(t[key].get(k, 0) for t in ticks), 2) for k in keys}

    lambda_s = {k: round(statistics.mean(sum(t["lambda_s"].get(k, [0])) for t in ticks), 3)
                for k in sorted({k for t in ticks for k in t["lambda_s"]})}
    invocations = {k: statistics.mean(len(t["lambda_s"].get(k, [])) for t in ticks) for k in lambda_s}
    return {
        "calls": mean_counter("calls"),
        "s3_sites": dict(sorted(mean_counter("s3_sites").items(), key=lambda kv: -kv[1])),
        "state_transitions": statistics.mean(t["state_transitions"] for t in ticks),
        "lambda_s": lambda_s, "lambda_invocations": invocations,
        "metric_data_points": statistics.mean(t["metric_data_points"] for t in ticks),
        "distinct_metrics": max(t["distinct_metrics"] for t in ticks),
        "log_bytes": statistics.mean(t["log_bytes"] for t in ticks),
        "binance_weight": statistics.mean(t["binance"]["weight"] for t in ticks),
        "binance_requests": statistics.mean(t["binance"]["requests"] for t in ticks),
        "binance_paths": mean_counter_paths(ticks),
        "binance_429": sum(t["binance"]["429"] for t in ticks),
        "wall_s": statistics.mean(t["wall_s"] for t in ticks),
        "parallel_wall_s": round(statistics.mean(parallel_wall(t["lambda_s"]) for t in ticks), 3),
    }


def parallel_wall(lambda_s: Dict[str, List[float]]) -> float:
    """The tick's handler time on AWS, where Parallel(candles | orders) overlaps: the box runs
    one sandbox at a time, so this is max(candles, orders) + transform from the measured walls."""
    total = {k: sum(v) for k, v in lambda_s.items()}
    extract = max((v for k, v in total.items() if k.startswith("Extractors")), default=0.0)
    return extract + sum(v for k, v in total.items() if not k.startswith("Extractors"))


def mean_counter_paths(ticks: List[Dict[str, Any]]) -> Dict[str, float]:
    keys = sorted({k for t in ticks for k in t["binance"]["paths"]})
    return {k: round(statistics.mean(t["binance"]["paths"].get(k, 0) for t in ticks), 2) for k in keys}


# -- the bill ---------------------------------------------------------------------------


def by_service(per_tick: Dict[str, Any]) -> Dict[str, Dict[str, float]]:
    """service -> operation -> calls per tick (all Lambdas and the state machine)."""
    out: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for key, n in per_tick["calls"].items():
        _, service, op = key.split("|")
        out[service][op] += n
    return {s: dict(v) for s, v in out.items()}


def monthly(result: Dict[str, Any]) -> Dict[str, Any]:
    """USD per month from the measured per-tick counts and the template (free tiers not subtracted)."""
    p, pt, tpl, m = PRICES, result["per_tick"], result["template"], TICKS_PER_MONTH
    svc = by_service(pt)
    s3 = svc.get("s3", {})
    tier1 = sum(n for op, n in s3.items() if op in S3_TIER1)
    tier2 = sum(n for op, n in s3.items() if op not in S3_TIER1 and op not in S3_FREE)
    puts = s3.get("PutObject", 0) + s3.get("CopyObject", 0)
    gets = s3.get("GetObject", 0)
    kms_per_tick = 0.0 if tpl["bucket_key_enabled"] else puts + gets  # GenerateDataKey / Decrypt per object
    sm_calls = svc.get("secretsmanager", {}).get("GetSecretValue", 0)
    kms_per_tick += sm_calls  # a secret under the stack's key: Decrypt per GetSecretValue
    mem = {k: v["memory_mb"] / 1024 for k, v in tpl["lambdas"].items()}
    gb_s = sum(pt["lambda_s"][k] * mem.get(k, 0.25) for k in pt["lambda_s"])
    invocations = sum(pt["lambda_invocations"].values())
    puts_cw = svc.get("cloudwatch", {}).get("PutMetricData", 0)
    # Scheduled Glue jobs (the verify): runs a month x DPU x estimated minutes, 1-minute minimum.
    verify_runs = sum(g["runs_per_week"] for g in tpl.get("glue_scheduled", [])) * 30 / 7
    minutes = max(1.0, VERIFY_BASE_MINUTES + VERIFY_MINUTES_PER_SYMBOL * result["symbols"])
    glue_usd = sum(g["runs_per_week"] * 30 / 7 * g["dpu"] * minutes / 60 * p["glue_dpu_hour"]
                   for g in tpl.get("glue_scheduled", []))
    # Custom metrics are billed by the hour they are sent in: the tick's every hour, the verify's
    # (binance_lake.aws.metrics.VERIFY_PUBLISHED) in the hour of each run.
    custom_metrics = pt["distinct_metrics"] + len(VERIFY_PUBLISHED) * verify_runs / HOURS_PER_MONTH
    items = {
        "S3 requests": m * (tier1 * p["s3_tier1_per_1k"] + tier2 * p["s3_tier2_per_1k"]) / 1000,
        "CloudWatch metrics": custom_metrics * p["cw_metric_month"] + m * puts_cw * p["cw_put_per_1k"] / 1000,
        "CloudWatch alarms": tpl["alarms"] * p["cw_alarm_month"],
        "CloudWatch dashboards": tpl["dashboards"] * p["cw_dashboard_month"],
        "CloudWatch Logs ingest": m * (pt["log_bytes"] + 350 * invocations) / 1e9 * p["cw_logs_ingest_gb"],
        "Step Functions transitions": m * pt["state_transitions"] * p["sfn_std_per_1k_transitions"] / 1000,
        "Lambda (duration + requests)": m * (gb_s * p["lambda_gb_s_arm"] + invocations * p["lambda_per_1m"] / 1e6),
        "KMS (keys + requests)": tpl["kms_keys"] * p["kms_key_month"] + m * kms_per_tick * p["kms_per_10k"] / 1e4,
        "Secrets Manager": tpl["secrets"] * p["sm_secret_month"] + m * sm_calls * p["sm_per_10k"] / 1e4,
        "EventBridge Scheduler": m * p["scheduler_per_1m"] / 1e6,
        "X-Ray traces (upper bound: every execution sampled)": m * p["xray_per_1m_traces"] / 1e6,
        "Glue verify (scheduled runs x DPU x estimated minutes)": glue_usd,
    }
    return {"items": {k: round(v, 2) for k, v in items.items()}, "total": round(sum(items.values()), 2),
            "inputs": {"s3_tier1_per_tick": tier1, "s3_tier2_per_tick": tier2, "kms_requests_per_tick": kms_per_tick,
                       "lambda_gb_s_per_tick": round(gb_s, 3), "lambda_invocations_per_tick": invocations,
                       "custom_metrics": round(custom_metrics, 3), "alarms": tpl["alarms"],
                       "verify_runs_per_month": round(verify_runs, 2), "verify_minutes_per_run_estimate": minutes}}


# -- report -----------------------------------------------------------------------------


def report(results: List[Dict[str, Any]]) -> str:
    r0 = results[-1]
    lines = ["## Issue 14: AWS calls per 5-minute tick, 1 and 100 symbols (cost rehearsal of the current code)", "",
             f"`.venv/bin/python bench/cost_rehearsal.py --symbols {r0['symbols']}`: the Beta stack synthesized "
             "with that many symbols, its state machine run by moto, each Task running the template's Lambda "
             "handler in-process; every boto3 call recorded on botocore's events. Emulator in its own process, "
             f"{r0['latency_s'] * 1000:.0f} ms latency; a warm-up tick catches the empty lake up, then the mean "
             f"of {r0['ticks']} steady-state ticks (5 emulated minutes apart, one new order per symbol per tick, "
             f"{r0['orders_per_symbol']} orders per symbol over the last 2 days). Cost model and sources: "
             "[cost.md](cost.md). Lambda seconds are this machine's in-process wall time of each warm handler "
             "(moto answers S3 in-process, real S3 adds latency per request): an estimate, not a billed "
             "duration.", ""]
    head = "| service | operation | " + " | ".join(f"{r['symbols']} sym" for r in results) + " |"
    lines += [head, "|---|---|" + "---|" * len(results)]
    services = sorted({(s, op) for r in results for s, ops in by_service(r["per_tick"]).items() for op in ops})
    for s, op in services:
        lines.append(f"| {s} | {op} | " + " | ".join(
            f"{by_service(r['per_tick']).get(s, {}).get(op, 0):g}" for r in results) + " |")
    rows = [("Step Functions state transitions", lambda r: f"{r['per_tick']['state_transitions']:g}"),
            ("Lambda invocations", lambda r: f"{sum(r['per_tick']['lambda_invocations'].values()):g}"),
            ("Lambda handler wall s (in-process estimate)", lambda r: ", ".join(
                f"{k[:-8]} {v:.2f}" for k, v in r["per_tick"]["lambda_s"].items())),  # minus the logical id's hash
            ("custom metrics published / alarms in template",
             lambda r: f"{r['per_tick']['distinct_metrics']} / {r['template']['alarms']}"),
            ("KMS: SSE / Bucket Key", lambda r: f"{r['template']['lake_sse']} / {r['template']['bucket_key_enabled']}"),
            ("Binance weight / requests / 429", lambda r: f"{r['per_tick']['binance_weight']:g} / "
             f"{r['per_tick']['binance_requests']:g} / {r['per_tick']['binance_429']}"),
            ("handler log bytes", lambda r: f"{r['per_tick']['log_bytes']:.0f}"),
            ("tick wall in the box (handlers serial)", lambda r: f"{r['per_tick']['wall_s']:.2f} s"),
            ("handlers with the Parallel overlapping: max(candles, orders) + transform",
             lambda r: f"{r['per_tick']['parallel_wall_s']:.2f} s")]
    for name, fn in rows:
        lines.append(f"| {name} | | " + " | ".join(fn(r) for r in results) + " |")
    lines += ["", "## Monthly USD (8,640 ticks, free tiers not subtracted)", "",
              "| item | " + " | ".join(f"{r['symbols']} sym" for r in results) + " |",
              "|---|" + "---|" * len(results)]
    bills = [monthly(r) for r in results]
    for item in bills[0]["items"]:
        lines.append(f"| {item} | " + " | ".join(f"{b['items'][item]:.2f}" for b in bills) + " |")
    lines.append("| **total** | " + " | ".join(f"**{b['total']:.2f}**" for b in bills) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100, help="the large rehearsal's symbol count (1 is always run)")
    ap.add_argument("--ticks", type=int, default=3, help="measured steady-state ticks after the warm-up")
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--orders-per-symbol", type=int, default=20)
    ap.add_argument("--report-only", action="store_true", help="rewrite the table from the stored JSON results")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                    help="where the JSON and Markdown results go (default bench/results)")
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = [json.loads((out / f"cost_rehearsal_{n}.json").read_text()) for n in sorted({1, args.symbols})]
        md = report(results)
        (out / "cost_rehearsal.md").write_text(md + "\n")
        print(md)
        return 0
    if not 1 <= args.symbols <= 500 or not 1 <= args.ticks <= 20:
        ap.error("--symbols must be 1..500 and --ticks 1..20")
    results = []
    for n in sorted({1, args.symbols}):
        r = rehearse(n, args.ticks, args.latency_ms / 1000, args.orders_per_symbol)
        r["monthly_usd"] = monthly(r)
        (out / f"cost_rehearsal_{n}.json").write_text(json.dumps(r, indent=1, default=str) + "\n")
        results.append(r)
    md = report(results)
    (out / "cost_rehearsal.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
