"""Run every component of the synthesized stack under its own role (see iam_rehearsal) and
render the access matrix.

Which code runs is read from the template, not from today's logical ids:
* each of our Lambda functions: the handler named in the template, from its code asset,
  with its template environment (Binance is the project's emulator); extractors first,
  then the others (the transform needs their raw files);
* each Glue job: a Python shell script runs as Glue runs it; a Spark script runs its core
  per-file/per-partition path without Spark (the backfill's ``process_batches`` over the
  archive emulator, the verify job's ``verify`` + ``metrics.publish_verify``);
* the state machine: its service integrations with its role.

``python -m tests.cloud.iam_run`` synthesizes the Beta stack like app.py and prints the
markdown that docs/cloud.md carries under "Least privilege, proven".
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pyarrow as pa

from binance_lake import verify
from binance_lake.emulator import Emulator
from binance_lake.emulator import archive as fake_archive
from binance_lake.times import parse_time
from tests.cloud.box import StackAssembly
from tests.cloud.iam_policy import Component, statements
from tests.cloud.iam_rehearsal import Call, Judged, Outcome, Rehearsal, lambda_context, load_handler, run_script
from tests.conftest import API_KEY, API_SECRET, NOW_MS

# The archive the backfill downloads: one symbol, two daily files (small and fast).
TICK_MS = 5 * 60_000
ARCHIVE_NOW = parse_time("2025-01-03T00:00:30Z")
ARCHIVE_START, ARCHIVE_END = parse_time("2025-01-01"), parse_time("2025-01-03")
ARCHIVE_GAP = (parse_time("2025-01-01T05:00:00Z"), parse_time("2025-01-01T05:09:00Z"))


def stack_account(stack: StackAssembly) -> str:
    manifest = json.loads((stack.directory / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        env = artifact.get("environment", "")
        if env.startswith("aws://") and env.endswith(stack.region):
            return env.split("/")[2]
    raise AssertionError("the Beta stack has no aws://account/region environment")


@dataclass
class Services:
    """The outside world the components talk to: Binance's API and its archive."""

    api_url: str
    archive_url: str
    emulator: Emulator


@contextlib.contextmanager
def services() -> Iterator[Services]:
    emu = Emulator(now_ms=NOW_MS, seed=7)
    emu.add_api_key(API_KEY, API_SECRET)
    # An account with orders and their fills, so the orders extractor stores orders and trades pages
    # (and the transform folds them) under the rehearsed roles.
    emu.generate_orders("BTCUSDT", 20, NOW_MS - 86_400_000, NOW_MS - 60_000, seed=7)
    with tempfile.TemporaryDirectory() as tmp, emu.serve() as api_url:
        root = Path(tmp)
        archive_emu = Emulator(now_ms=ARCHIVE_NOW, seed=3)
        for symbol in ("BTCUSDT", "ETHUSDT"):  # the template's symbols are checked in the runner
            archive_emu.add_symbol(symbol, listed_at_ms=ARCHIVE_START - 86_400_000 * 40)
            archive_emu.add_exchange_gap(symbol, *ARCHIVE_GAP)  # the backfill records exchange gaps too
            for period in fake_archive.periods(ARCHIVE_START, ARCHIVE_END, ARCHIVE_END):
                s, e = fake_archive.period_range(period)
                fake_archive.write_file(root, symbol, "1m", period, archive_emu.klines(symbol, "1m", s, e))
        # The days the verify checks against the archive (_verify): their daily files, from the
        # exchange the extractors read, so the rehearsal downloads, stores and compares under the
        # verify role instead of finding nothing published.
        for date in verify.date_range(NOW_MS + 86_400_000, 2):
            s, e = fake_archive.period_range(date)
            fake_archive.write_file(root, "BTCUSDT", "1m", date, emu.klines("BTCUSDT", "1m", s, e))
        with fake_archive.ArchiveServer(root).serve() as archive_url:
            yield Services(api_url, archive_url, emu)


@dataclass
class Result:
    rehearsal: Rehearsal
    outcomes: Dict[str, Outcome] = field(default_factory=dict)
    judged: Dict[str, List[Judged]] = field(default_factory=dict)


def _order(comp: Component) -> Tuple[int, str]:
    handler = str(comp.resource["Properties"].get("Handler", ""))
    if comp.kind == "lambda":
        return (0 if handler.startswith(("candles.", "orders.")) else 1, comp.name)
    return ({"glue": 2, "states": 3}[comp.kind], comp.name)


def run_component(r: Rehearsal, stack: StackAssembly, comp: Component, svc: Services,
                  raw: Optional[List[Dict[str, Any]]] = None) -> Outcome:
    outcome = Outcome(comp, statements(raw if raw is not None else comp.raw_statements, r.names), [])
    runner = {"lambda": _run_lambda, "glue": _run_glue, "states": _run_states}[comp.kind]
    try:
        outcome.error = runner(r, stack, comp, svc, outcome)
    except Exception as exc:  # the component failed: name it, the test reports it
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


def _run_lambda(r: Rehearsal, stack: StackAssembly, comp: Component, svc: Services, out: Outcome) -> str:
    props = comp.resource["Properties"]
    env = {k: str(v) for k, v in r.names.resolve(props["Environment"]["Variables"]).items()}
    if "BINANCE_BASE_URL" in env:
        env["BINANCE_BASE_URL"] = svc.api_url  # the one value replaced: Binance is the emulator
    env["AWS_LAMBDA_FUNCTION_NAME"] = comp.name
    code_dir = stack.asset_path(props["Code"]["S3Key"])
    with r.as_role(comp, env) as rec:
        handler = load_handler(code_dir, props["Handler"], comp.name)
        try:
            handler({"execution_id": f"rehearsal-{comp.name}"}, lambda_context(comp.name, r.region, r.account))
            error = ""
        finally:
            out.calls.extend(rec.calls)
    # The Lambda runtime writes the function's logs with its role: "Your execution role needs the
    # following permissions to upload logs to CloudWatch Logs: logs:CreateLogGroup,
    # logs:CreateLogStream, logs:PutLogEvents" (AWS Lambda Developer Guide, "Sending Lambda function
    # logs to CloudWatch Logs", section "Required IAM permissions":
    # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html#monitoring-cloudwatchlogs-prereqs).
    # CreateLogGroup is not recorded: the stack creates each function's log group (LoggingConfig),
    # so the runtime only creates streams in it and puts events.
    group = props.get("LoggingConfig", {}).get("LogGroup")
    name = r.names.resolve(group) if group else f"/aws/lambda/{comp.name}"
    stream = f"arn:aws:logs:{r.region}:{r.account}:log-group:{name}:log-stream:rehearsal"
    out.calls += [Call("logs", op, {"Resource": stream}, source="runtime")
                  for op in ("CreateLogStream", "PutLogEvents")]
    return error


def _s3_url(url: str) -> Tuple[str, str]:
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def _run_glue(r: Rehearsal, stack: StackAssembly, comp: Component, svc: Services, out: Outcome) -> str:
    props = comp.resource["Properties"]
    args = {k: str(v) for k, v in r.names.resolve(props.get("DefaultArguments", {})).items()}
    script = stack.asset_path(props["Command"]["ScriptLocation"])
    # Glue loads the script and the --extra-py-files/--additional-python-modules wheels from S3 with
    # the job's role: the role needs "access to Amazon S3 for any sources, targets, scripts, and
    # temporary directories that you use with AWS Glue" (AWS Glue Developer Guide, "Step 2: Create
    # an IAM role for AWS Glue": https://docs.aws.amazon.com/glue/latest/dg/create-an-iam-role.html).
    # The page names scripts, not library wheels; the wheels are S3 objects the job reads the same
    # way ("Using Python libraries with AWS Glue", "Installing additional Python modules with pip":
    # https://docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-python-libraries.html).
    libraries = ",".join(args.get(k, "") for k in ("--extra-py-files", "--additional-python-modules"))
    for url in [props["Command"]["ScriptLocation"], *libraries.split(",")]:
        if url.startswith("s3://"):
            bucket, key = _s3_url(url)
            out.calls.append(Call("s3", "GetObject", {"Bucket": bucket, "Key": key}, source="runtime"))
    text = script.read_text()
    with r.as_role(comp, {}) as rec:
        try:
            if props["Command"]["Name"] == "pythonshell":
                argv = [x for k, v in args.items() if k.startswith("--") for x in (k, v)]
                return run_script(script, [*argv, "--JOB_RUN_ID", "jr_rehearsal"])
            if "aws.spark import glue_main" in text:
                return _backfill(args, svc)
            if "verify_glue_main" in text:
                return _verify(args, svc)
            return f"no rehearsal for Glue job {comp.name} (script {script.name}); add one in tests/cloud/iam_run.py"
        finally:
            out.calls.extend(rec.calls)


def _backfill(args: Dict[str, str], svc: Services) -> str:
    """The backfill's executor path without Spark: the driver's plan, then process_batches."""
    from binance_lake.aws.settings import BackfillSettings
    from binance_lake.aws.spark import TASK_SCHEMA, plan, process_batches
    from binance_lake.sources.archive import ArchiveConfig

    symbols = BackfillSettings.parse(args).symbols  # the deployed contract, as the job parses it
    cfg = ArchiveConfig(base_url=svc.archive_url, workers=2, backoff_s=0)
    planned = plan(symbols[:1], ARCHIVE_START, ARCHIVE_END, cfg, now_ms=ARCHIVE_NOW)
    assert planned, "the archive emulator published nothing to backfill"
    batch = pa.RecordBatch.from_pylist([{"symbol": p.file.symbol, "interval": p.file.interval,
                                         "period": p.file.period, "published": p.published, "first": p.first}
                                        for p in planned], schema=TASK_SCHEMA)
    results = [row for b in process_batches(iter([batch]), args["--lake_uri"], cfg) for row in b.to_pylist()]
    bad = [f"{x['file']}: {x['status']} {x['reason']}" for x in results if x["status"] != "curated"]
    return "; ".join(bad)


def _verify(args: Dict[str, str], svc: Services) -> str:
    """The verify job's per-partition path without Spark (verify + its metrics), then its
    REST-against-archive check (the executors' against_archive, the driver's report)."""
    from binance_lake import verify
    from binance_lake.aws import metrics
    from binance_lake.aws.settings import VerifySettings
    from binance_lake.lake import open_lake
    from binance_lake.sources.archive import ArchiveConfig

    settings = VerifySettings.parse(args)  # the deployed contract, as the job parses it
    dates = verify.date_range(NOW_MS + 86_400_000, 2)  # the days the extractors wrote
    lake = open_lake(settings.lake_uri)
    report = verify.verify(lake, settings.symbols, settings.intervals[0], dates, verify.VerifyOptions())
    assert settings.against_archive, "the deployed verify compares with the archive"
    cfg = ArchiveConfig(base_url=svc.archive_url, backoff_s=0)  # the emulator's archive, not the deployed URL
    run = verify.start_archive_run(lake, dates, "rehearsal")
    run.checks = [verify.against_archive(lake, s, settings.intervals[0], d, cfg) for s in settings.symbols[:1]
                  for d in dates]
    verify.finish_archive(lake, run)
    compared = [c for c in run.checks if c.status in ("match", "settled", "mismatch")]
    assert compared, f"the rehearsal compared nothing against the archive: {[(c.date, c.status) for c in run.checks]}"
    metrics.publish_verify(report.summary())
    return "unrepaired partitions" if verify.exit_code(report) else ""


def _tasks(state_machine: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    for state in state_machine.get("States", {}).values():
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches", []):
            yield from _tasks(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _tasks(state[key])


def _run_states(r: Rehearsal, stack: StackAssembly, comp: Component, svc: Services, out: Outcome) -> str:
    """Each Task's service integration as the state machine's role would call it. SNS is
    called for real (moto judges sns:Publish); the others are derived from the definition
    (the cloud-in-a-box e2e runs them through moto's ASL interpreter)."""
    props = comp.resource["Properties"]
    definition = json.loads(r.names.resolve(props["DefinitionString"]))
    own_arn = r.names.refs[comp.name]
    for task in _tasks(definition):
        resource, params = task["Resource"], task.get("Parameters", {})
        integration = resource.split(":::", 1)[1] if ":::" in resource else ""
        if resource.startswith("arn:aws:lambda:") or integration.startswith("lambda:invoke"):
            fn = resource if resource.startswith("arn:aws:lambda:") else params["FunctionName"]
            out.calls.append(Call("lambda", "Invoke", {"FunctionName": fn}, source="definition"))
        elif integration.startswith("glue:startJobRun"):
            job = f"arn:aws:glue:{r.region}:{r.account}:job/{params['JobName']}"
            # .sync polls and may stop the run: the policy Step Functions generates for "Run a Job
            # (.sync)" allows glue:StartJobRun, GetJobRun, GetJobRuns, BatchStopJobRun; request-response
            # only glue:StartJobRun (AWS Step Functions Developer Guide, "Start an AWS Glue job with
            # Step Functions", section "IAM policies for calling AWS Glue":
            # https://docs.aws.amazon.com/step-functions/latest/dg/connect-glue.html#glue-iam).
            ops = ["StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun"] if integration.endswith(".sync") \
                else ["StartJobRun"]
            out.calls += [Call("glue", op, {"JobArn": job}, source="definition") for op in ops]
        elif integration.startswith("dynamodb:"):  # the run lease (optimized integration, request-response)
            op = {"putItem": "PutItem", "getItem": "GetItem", "deleteItem": "DeleteItem"}[integration.split(":")[1]]
            table = f"arn:aws:dynamodb:{r.region}:{r.account}:table/{params['TableName']}"
            out.calls.append(Call("dynamodb", op, {"TableArn": table}, source="definition"))
        elif integration == "aws-sdk:sfn:describeExecution":  # the lease holder's status
            execution = own_arn.replace(":stateMachine:", ":execution:") + ":rehearsal"
            out.calls.append(Call("stepfunctions", "DescribeExecution", {"ExecutionArn": execution},
                                  source="definition"))
        elif integration == "aws-sdk:sfn:listExecutions":
            arn = own_arn if params.get("StateMachineArn.$") == "$$.StateMachine.Id" else params["StateMachineArn"]
            out.calls.append(Call("stepfunctions", "ListExecutions", {"StateMachineArn": arn}, source="definition"))
        elif integration.startswith("sns:publish"):
            with r.as_role(comp, {}) as rec:
                try:
                    import boto3

                    boto3.client("sns").publish(TopicArn=params["TopicArn"], Message="rehearsal: failure notice")
                except Exception as exc:
                    return f"{type(exc).__name__}: {exc}"
                finally:
                    out.calls.extend(rec.calls)
        else:
            return f"no rehearsal for the state machine's task resource {resource}; add it in tests/cloud/iam_run.py"
    return ""


def rehearse(stack: StackAssembly) -> Result:
    r = Rehearsal(stack.template, stack_account(stack), stack.region).start()
    result = Result(r)
    try:
        r.fill_secret(API_KEY, API_SECRET)
        with services() as svc:
            ordered = sorted(r.comps.values(), key=_order)
            for comp in ordered:
                result.outcomes[comp.name] = run_component(r, stack, comp, svc)
            # A second scheduled tick, 5 minutes on: the steady state (watermarks from a lake
            # that has raw and curated data, merges into existing partitions) has paths of its own.
            svc.emulator.advance(TICK_MS)
            for comp in (c for c in ordered if c.kind == "lambda"):
                again, first = run_component(r, stack, comp, svc), result.outcomes[comp.name]
                first.calls += again.calls
                first.error = first.error or (f"second tick: {again.error}" if again.error else "")
            for name, outcome in result.outcomes.items():
                result.judged[name] = r.judge(outcome)
    except BaseException:
        r.stop()
        raise
    return result


# -- the report ---------------------------------------------------------------------------


def unused_statements(outcome: Outcome, judged: List[Judged]) -> List[str]:
    used = {sid for j in judged for sid in j.identity.by}
    return [s.sid for s in outcome.statements if s.effect == "Allow" and s.sid not in used]


def markdown(result: Result) -> str:
    lines = ["| Component | Role | Action | Resource | Condition | Allowed by |", "|---|---|---|---|---|---|"]
    warnings = []
    names = result.rehearsal.names
    shorten = {v: f"<{k}>" for k, v in names.refs.items() if len(v) > 12 and v != k and "::" not in k}
    shorten.update({v: f"<{k[0]}.Arn>" for k, v in names.attrs.items() if len(v) > 12})

    def short(text: str) -> str:
        for value in sorted(shorten, key=len, reverse=True):
            text = text.replace(value, shorten[value])
        return text

    for name, outcome in result.outcomes.items():
        judged = result.judged[name]
        rows = sorted({(j.need.action, _pattern(j.need.resource), _cond(j.need),
                        ", ".join(j.identity.by) + (f" + key policy {', '.join(j.key_sids)}" if j.need.kms else "")
                        if j.allowed else "**DENIED**") for j in judged})
        for action, resource, cond, by in rows:
            lines.append(f"| {name} | {outcome.component.role} | {action} | `{short(resource)}` | {cond} | {by} |")
        for sid in unused_statements(outcome, judged):
            warnings.append(f"- {name}: statement `{sid}` is used by no recorded call")
    return "\n".join(lines + ["", "Statements no recorded call uses (review, not a failure):", ""] +
                     (warnings or ["- none"])) + "\n"


def _pattern(resource: str) -> str:
    """Collapse per-object keys to their zone (raw/klines/..., curated/...) so the table stays short."""
    if resource.startswith("arn:aws:s3:::") and "/" in resource:
        bucket, key = resource[len("arn:aws:s3:::"):].split("/", 1)
        if bucket.startswith("cdk-"):  # the CDK bootstrap assets bucket: the key is a content hash
            return f"arn:aws:s3:::{bucket}/<asset>"
        if key.endswith(".whl"):  # the wheels Glue installs: one row, not one per pinned version
            return f"arn:aws:s3:::{bucket}/{key.rsplit('/', 1)[0]}/*.whl"
        parts = key.split("/")
        return f"arn:aws:s3:::{bucket}/{'/'.join(parts[:2])}/*" if len(parts) > 2 else resource
    if ":log-stream:" in resource:
        return resource.split(":log-stream:")[0] + ":log-stream:*"
    return resource


def _cond(need: Any) -> str:
    ctx = need.ctx()
    if "s3:prefix" in ctx:
        prefix = ctx["s3:prefix"].split("/")
        return f"s3:prefix={'/'.join(prefix[:2])}{'/...' if len(prefix) > 2 else ''}"
    return ", ".join(f"{k}={v}" for k, v in ctx.items())


def main() -> None:  # pragma: no cover - the doc generator
    import os

    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk

    from py_cdk.application import build

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as out:
        context = {**json.loads((root / "cdk.json").read_text())["context"], "aws:cdk:bundling-stacks": []}
        app = cdk.App(context=context, outdir=out)
        build(app)
        app.synth()
        found = [p for p in Path(out).glob("assembly-*Beta*/*.template.json")
                 if "AWS::StepFunctions::StateMachine" in p.read_text()]
        with contextlib.redirect_stdout(sys.stderr):  # the handlers' JSON logs are not the table
            result = rehearse(StackAssembly.load(found[0]))
        try:
            print(markdown(result), end="")
        finally:
            result.rehearsal.stop()


if __name__ == "__main__":
    main()
