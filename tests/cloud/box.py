"""Cloud in a box: the synthesized Beta stack recreated in moto, its tasks run in-process.

What comes from the synthesized template (so that a renamed handler or a missing
environment variable fails the tests): the state machine definition (run by moto's
ASL interpreter, unchanged), each Lambda's handler, code asset and environment (the
extractors and the transform Lambda), the Glue database and tables, the secret's
initial value and the SNS topic.

Adapters, because moto cannot run code without Docker:

* ``LambdaFunction.invoke`` (moto's Lambda model) runs the handler named in the
  template from the Lambda code asset, with that function's environment, in this
  process. One module instance per function plays the warm sandbox.
* ``StateTaskServiceAwsSdk`` (moto's ``arn:aws:states:::aws-sdk:*`` integration)
  passes the state's PascalCase parameters (``StateMachineArn``) to boto3 as they
  are and returns boto3's casing (``executions``); AWS maps both ways through the
  SDK's shapes. moto ships the mapping helpers (``_to_boto_request``,
  ``_from_boto_response``) but leaves ``_normalise_parameters``/``_normalise_response``
  as no-ops for this integration; the box fills them in with those helpers
  (the lease's ``DescribeHolder`` = ``sfn:describeExecution`` needs it).
* EventBridge rules (the Glue failure rule) are created from the template; moto delivers a
  rule's events to SQS and log groups but not to SNS targets, so the box publishes for SNS
  targets itself, rendering the target's InputTransformer as EventBridge does (a variable outside
  quotes in a JSON template takes the value as JSON, a string quoted: "Amazon EventBridge input
  transformation"; moto's own renderer leaves strings unquoted).
Retry waits of the state machine are recorded instead of slept (emulated time).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import types
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import boto3
from moto.awslambda.models import LambdaFunction
from moto.events.models import Rule as EventRule
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
    StateTaskServiceAwsSdk,
)
from moto.stepfunctions.parser.utils import camel_to_snake_case

ACCOUNT = "123456789012"  # moto's default account (the parser's own clients use it too)
POWERTOOLS_LOGGER = "binance-lake"


# -- the synthesized template ---------------------------------------------------------


@dataclass
class StackAssembly:
    """One synthesized stack: its template, region and where its assets are staged."""

    template: Dict[str, Any]
    directory: Path
    region: str
    assets: Dict[str, Path]  # asset hash -> staged path (file or directory)

    def resources(self, type_: str) -> Dict[str, Dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == type_}

    def one(self, type_: str) -> Tuple[str, Dict[str, Any]]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
        return next(iter(found.items()))

    def asset_path(self, s3_key_or_url: str) -> Path:
        digest = s3_key_or_url.rsplit("/", 1)[-1].split(".", 1)[0]
        return self.assets[digest]

    @classmethod
    def load(cls, template_path: Path) -> StackAssembly:
        directory = template_path.parent
        stem = template_path.name[: -len(".template.json")]
        manifest = json.loads((directory / f"{stem}.assets.json").read_text())
        assets = {digest: (directory / spec["source"]["path"]).resolve() for digest, spec in manifest["files"].items()}
        region = json.loads((directory / "manifest.json").read_text())["artifacts"][stem]["environment"].split("/")[-1]
        return cls(json.loads(template_path.read_text()), directory, region, assets)

def synth_beta(outdir: Path, **context: str) -> StackAssembly:
    """The Beta lake stack exactly as ``app.py`` builds it (cdk.json context, plus ``context``
    overrides such as ``{"binance-lake:symbols": "A,B"}``), minus Lambda bundling."""
    import aws_cdk as cdk

    from py_cdk.application import build

    root = Path(__file__).resolve().parents[2]
    merged = {**json.loads((root / "cdk.json").read_text())["context"], "aws:cdk:bundling-stacks": [], **context}
    app = cdk.App(context=merged, outdir=str(outdir))
    build(app)
    app.synth()
    found = [p for p in outdir.glob("assembly-*Beta*/*.template.json")
             if "AWS::StepFunctions::StateMachine" in p.read_text()]
    assert len(found) == 1, f"expected one Beta stack with a state machine, found {found}"
    return StackAssembly.load(found[0])



class Resolver:
    """Just enough of CloudFormation's intrinsics to turn template values into moto values."""

    def __init__(self, region: str) -> None:
        self.refs: Dict[str, str] = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": ACCOUNT,
                                     "AWS::URLSuffix": "amazonaws.com"}
        self.attrs: Dict[Tuple[str, str], str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self.refs[value["Ref"]]  # KeyError = the template points at something we did not create
        if "Fn::GetAtt" in value:
            logical, attr = value["Fn::GetAtt"]
            return self.attrs[(logical, attr)]
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self(p)) for p in parts)
        return {k: self(v) for k, v in value.items()}


# -- the box --------------------------------------------------------------------------


@dataclass
class LambdaSpec:
    name: str
    handler: str
    code_dir: Path
    environment: Dict[str, str]


@dataclass
class Invocation:
    function: str
    event: Any
    correlation_id: Optional[str]
    result: Any = None
    error: Optional[str] = None


@dataclass
class Tick:
    arn: str
    status: str
    output: Any
    history: List[Dict[str, Any]]
    invocations: List[Invocation]
    retry_waits: List[float]  # seconds the state machine's Retry asked to wait (not slept)

    def task_attempts(self, function: str) -> int:
        return sum(1 for i in self.invocations if i.function == function)


@dataclass
class CloudBox:
    stack: StackAssembly
    base_url: str
    resolve: Resolver = field(init=False)
    lambdas: Dict[str, LambdaSpec] = field(default_factory=dict)
    lake_bucket: str = ""
    secret_arn: str = ""
    topic_arn: str = ""
    queue_url: str = ""
    state_machine_arn: str = ""
    database: str = ""
    lease_table: str = ""
    logs: io.StringIO = field(default_factory=io.StringIO)
    invocations: List[Invocation] = field(default_factory=list)
    retry_waits: List[float] = field(default_factory=list)
    _modules: Dict[str, types.ModuleType] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.resolve = Resolver(self.stack.region)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.stack.region)

    # -- deploy ---------------------------------------------------------------------

    def deploy(self) -> CloudBox:
        """Create, from the template, every resource the scheduled run touches."""
        self._buckets()
        self._secret()
        self._topic()
        self._glue()
        self._functions()
        self._tables()
        self._state_machine()
        self._rules()
        return self

    def _tables(self) -> None:
        """DynamoDB tables (the run lease) with the template's key schema."""
        ddb = self.client("dynamodb")
        for logical, res in self.stack.resources("AWS::DynamoDB::Table").items():
            props = res["Properties"]
            table = ddb.create_table(TableName=logical, KeySchema=props["KeySchema"],
                                     AttributeDefinitions=props["AttributeDefinitions"],
                                     BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))["TableDescription"]
            arn = table["TableArn"]
            self.resolve.refs[logical] = logical
            self.resolve.attrs[(logical, "Arn")] = arn
            self.lease_table = logical

    def _role(self, logical: str) -> str:
        arn = self.client("iam").create_role(
            RoleName=logical[:64], AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        self.resolve.attrs[(logical, "Arn")] = arn
        return arn

    def _buckets(self) -> None:
        s3 = self.client("s3")
        for logical in self.stack.resources("AWS::S3::Bucket"):
            name = f"box-{logical.lower()}"[:63]
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.stack.region})
            self.resolve.refs[logical] = name
            self.resolve.attrs[(logical, "Arn")] = f"arn:aws:s3:::{name}"
        lake = [k for k in self.stack.resources("AWS::S3::Bucket") if "Lake" in k]
        assert len(lake) == 1, lake
        self.lake_bucket = self.resolve.refs[lake[0]]

    def _secret(self) -> None:
        logical, res = self.stack.one("AWS::SecretsManager::Secret")
        initial = res["Properties"]["SecretString"]  # the template's placeholder, as CloudFormation would store it
        self.secret_arn = self.client("secretsmanager").create_secret(Name=logical, SecretString=initial)["ARN"]
        self.resolve.refs[logical] = self.secret_arn

    def _topic(self) -> None:
        logical, _ = self.stack.one("AWS::SNS::Topic")
        self.topic_arn = self.client("sns").create_topic(Name=logical)["TopicArn"]
        self.resolve.refs[logical] = self.topic_arn
        sqs = self.client("sqs")
        self.queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]
        self.client("sns").subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=attrs["QueueArn"],
                                     Attributes={"RawMessageDelivery": "true"})

    def _glue(self) -> None:
        glue = self.client("glue")
        for logical, res in self.stack.resources("AWS::Glue::Database").items():
            db = self.resolve(res["Properties"]["DatabaseInput"])
            glue.create_database(DatabaseInput=db)
            self.resolve.refs[logical] = self.database = db["Name"]
        for res in self.stack.resources("AWS::Glue::Table").values():
            props = self.resolve(res["Properties"])
            table = props["TableInput"]
            # CloudFormation stores Map<String,String> scalars as strings (true -> "true"); so does the box.
            table["Parameters"] = {k: _cfn_string(v) for k, v in table.get("Parameters", {}).items()}
            glue.create_table(DatabaseName=props["DatabaseName"], TableInput=table)
    def _functions(self) -> None:
        lam = self.client("lambda")
        for logical, res in self.stack.resources("AWS::Lambda::Function").items():
            props = res["Properties"]
            if not str(props.get("Runtime", "")).startswith("python") or "Environment" not in props \
                    or "LAKE_URI" not in props["Environment"]["Variables"]:
                continue  # CDK's own helper functions (auto-delete, bucket deployment)
            env = {k: str(v) for k, v in self.resolve(props["Environment"]["Variables"]).items()}
            if "BINANCE_BASE_URL" in env:  # the one value the box replaces: Binance is the emulator
                env["BINANCE_BASE_URL"] = self.base_url
            fn = lam.create_function(
                FunctionName=logical, Runtime=props["Runtime"], Role=self._role(f"{logical}Role"),
                Handler=props["Handler"], Code={"ZipFile": _dummy_zip()}, Environment={"Variables": env},
                Timeout=props.get("Timeout", 3), MemorySize=props.get("MemorySize", 128))
            self.resolve.attrs[(logical, "Arn")] = fn["FunctionArn"]
            self.resolve.refs[logical] = logical
            code_dir = self.stack.asset_path(props["Code"]["S3Key"])
            self.lambdas[logical] = LambdaSpec(logical, props["Handler"], code_dir, env)

    def _rules(self) -> None:
        """EventBridge rules and their targets, as the template writes them (Glue jobs are named
        after their logical id: the box runs no Glue job, it only needs their names)."""
        for logical in self.stack.resources("AWS::Glue::Job"):
            self.resolve.refs[logical] = f"box-{logical}"
        events = self.client("events")
        for logical, res in self.stack.resources("AWS::Events::Rule").items():
            props = self.resolve(res["Properties"])
            arn = events.put_rule(Name=logical, EventPattern=json.dumps(props["EventPattern"]),
                                  State=props.get("State", "ENABLED"))["RuleArn"]
            self.resolve.attrs[(logical, "Arn")] = arn
            events.put_targets(Rule=logical, Targets=props["Targets"])

    def glue_job(self, prefix: str) -> str:
        """The name the box gave the one Glue job whose logical id starts with ``prefix``."""
        names = [v for k, v in self.resolve.refs.items() if k.startswith(prefix) and v.startswith("box-")]
        assert len(names) == 1, f"expected one Glue job {prefix}*, found {names}"
        return names[0]

    def _state_machine(self) -> None:
        logical, res = self.stack.one("AWS::StepFunctions::StateMachine")
        props = res["Properties"]
        definition = self.resolve(props["DefinitionString"])
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=props["StateMachineName"], definition=definition, roleArn=self._role(f"{logical}Role"),
        )["stateMachineArn"]

    # -- adapters -------------------------------------------------------------------

    def function(self, prefix: str) -> str:
        """The logical id of the one Lambda whose id starts with ``prefix`` (e.g. ``Transform``)."""
        names = [n for n in self.lambdas if n.startswith(prefix)]
        assert len(names) == 1, f"expected one Lambda {prefix}*, found {names}"
        return names[0]

    @contextlib.contextmanager
    def routed(self) -> Iterator[CloudBox]:
        """Route moto's Lambda invoke to our code; record retry waits."""
        box = self

        def invoke(fn: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> bytes:
            payload, failed = box.run_lambda(fn.function_name, json.loads(body) if body else {})
            if failed:
                response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(payload).encode()

        class _Clock:  # the retrier's ``time`` module: waits are emulated, not slept
            @staticmethod
            def sleep(seconds: float) -> None:
                box.retry_waits.append(seconds)

        moto_send = EventRule.send_to_targets

        def send_to_targets(rule: EventRule, event: Any, transform_input: bool = True) -> None:
            sns_targets = [t for t in rule.targets if t["Arn"].startswith("arn:aws:sns:")]
            if sns_targets and rule.event_pattern.matches_event(event):
                for target in sns_targets:
                    box.client("sns").publish(TopicArn=target["Arn"], Message=_render(target, event))
            others = [t for t in rule.targets if t not in sns_targets]
            if others:
                saved_targets, rule.targets = rule.targets, others
                try:
                    moto_send(rule, event, transform_input)
                finally:
                    rule.targets = saved_targets

        saved = (LambdaFunction.invoke, retrier_decl.time,
                 StateTaskServiceAwsSdk._normalise_parameters, StateTaskServiceAwsSdk._normalise_response)
        EventRule.send_to_targets = send_to_targets  # type: ignore[method-assign]
        LambdaFunction.invoke = invoke  # type: ignore[method-assign]
        retrier_decl.time = _Clock  # type: ignore[assignment]
        StateTaskServiceAwsSdk._normalise_parameters = _sdk_parameters  # type: ignore[method-assign]
        StateTaskServiceAwsSdk._normalise_response = _sdk_response  # type: ignore[method-assign]
        try:
            yield self
        finally:
            (LambdaFunction.invoke, retrier_decl.time,  # type: ignore[method-assign]
             StateTaskServiceAwsSdk._normalise_parameters, StateTaskServiceAwsSdk._normalise_response) = saved
            EventRule.send_to_targets = moto_send  # type: ignore[method-assign]

    def _handler(self, spec: LambdaSpec) -> Any:
        module_name, func = spec.handler.rsplit(".", 1)
        module = self._modules.get(spec.name)
        if module is None:  # cold start: import the handler module from the code asset
            path = spec.code_dir / f"{module_name.replace('.', '/')}.py"
            assert path.is_file(), f"{spec.name}: handler {spec.handler} -> {path} does not exist in the asset"
            if str(spec.code_dir) not in sys.path:
                sys.path.insert(0, str(spec.code_dir))
            loader = importlib.util.spec_from_file_location(f"box_{spec.name}_{module_name}", path)
            module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
            with self._environment(spec):
                loader.loader.exec_module(module)  # type: ignore[union-attr]
            self._modules[spec.name] = module
        return getattr(module, func)

    @contextlib.contextmanager
    def _environment(self, spec: LambdaSpec) -> Iterator[None]:
        # Each function sees exactly its own template environment (others' keys removed).
        others = {k for s in self.lambdas.values() for k in s.environment} - set(spec.environment)
        saved = {k: os.environ.get(k) for k in others | set(spec.environment) | {"AWS_LAMBDA_FUNCTION_NAME"}}
        for k in others:
            os.environ.pop(k, None)
        os.environ.update(spec.environment, AWS_LAMBDA_FUNCTION_NAME=spec.name)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def run_lambda(self, name: str, event: Any) -> Tuple[Any, bool]:
        spec = self.lambdas[name]
        # One sandbox at a time: the parallel branches share this process's environment.
        with self._lock, self._environment(spec):
            handler = self._handler(spec)
            for h in logging.getLogger(POWERTOOLS_LOGGER).handlers:
                if isinstance(h, logging.StreamHandler):
                    h.setStream(self.logs)
            context = _context(spec)
            record = Invocation(name, event, event.get("execution_id") if isinstance(event, dict) else None)
            self.invocations.append(record)
            try:
                record.result = handler(event, context)
                return record.result, False
            except Exception as exc:  # what the Lambda runtime reports for an unhandled error
                record.error = type(exc).__name__
                self.logs.write(json.dumps({"level": "ERROR", "runtime": "unhandled", "errorType": record.error,
                                            "errorMessage": str(exc)}) + "\n")
                return {"errorType": record.error, "errorMessage": str(exc),
                        "stackTrace": traceback.format_tb(exc.__traceback__)}, True

    # -- running ----------------------------------------------------------------------

    def tick(self, timeout_s: float = 60.0) -> Tick:
        """One scheduled run: StartExecution with the schedule's (empty) input, until it ends."""
        sfn = self.client("stepfunctions")
        first_inv, first_wait = len(self.invocations), len(self.retry_waits)
        # EventBridge Scheduler starts each run with a generated name and an empty input.
        arn = sfn.start_execution(stateMachineArn=self.state_machine_arn, name=str(uuid.uuid4()),
                                  input="{}")["executionArn"]
        deadline = time.monotonic() + timeout_s
        while True:
            desc = sfn.describe_execution(executionArn=arn)
            if desc["status"] != "RUNNING":
                break
            assert time.monotonic() < deadline, f"execution {arn} still running after {timeout_s}s"
            time.sleep(0.02)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return Tick(arn, desc["status"], json.loads(desc.get("output") or "null"), history,
                    self.invocations[first_inv:], self.retry_waits[first_wait:])

    def alerts(self) -> List[Dict[str, Any]]:
        sqs = self.client("sqs")
        out = []
        while True:
            msgs = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def put_api_key(self, key: str, secret: str) -> None:
        self.client("secretsmanager").put_secret_value(
            SecretId=self.secret_arn, SecretString=json.dumps({"api_key": key, "api_secret": secret}))


def _sdk_operation(task: StateTaskServiceAwsSdk) -> Any:
    service = boto3.session.Session().client(task._get_boto_service_name(), region_name="us-east-1").meta.service_model
    names = {camel_to_snake_case(name): name for name in service.operation_names}
    return service.operation_model(names[task._get_boto_service_action()])


def _sdk_parameters(task: StateTaskServiceAwsSdk, parameters: dict, *_: Any, **__: Any) -> None:
    shape = _sdk_operation(task).input_shape
    if shape is not None:
        task._to_boto_request(parameters, shape)


def _sdk_response(task: StateTaskServiceAwsSdk, response: Any, *_: Any, **__: Any) -> None:
    shape = _sdk_operation(task).output_shape
    if shape is not None:
        task._from_boto_response(response, shape)


def _render(target: Dict[str, Any], event: Dict[str, Any]) -> str:
    """A target's input as EventBridge sends it: the InputTransformer's template with each
    ``<name>`` replaced by the JSON value at its path (only ``$.a.b`` paths), or the event."""
    transformer = target.get("InputTransformer")
    if transformer is None:
        return json.dumps(event)
    text = transformer["InputTemplate"]
    for name, path in transformer.get("InputPathsMap", {}).items():
        value: Any = event
        for part in path.removeprefix("$.").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        text = text.replace(f"<{name}>", json.dumps(value))
    return text


def _context(spec: LambdaSpec) -> Any:
    return types.SimpleNamespace(
        function_name=spec.name, function_version="$LATEST", memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:{spec.name}",
        aws_request_id=str(uuid.uuid4()), log_group_name=f"/aws/lambda/{spec.name}", log_stream_name="box",
        get_remaining_time_in_millis=lambda: 240_000)


def _cfn_string(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _dummy_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("placeholder.py", "# the box runs the real asset in-process\n")
    return buf.getvalue()
