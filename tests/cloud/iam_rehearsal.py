"""Least privilege proven by execution: every component of the synthesized stack runs under
its own role against a moto_server that enforces IAM, and every AWS call it makes is
recorded and judged against the synthesized statements and the key policy.

Two checks, because moto judges only part of IAM (see ../shared reference notes and
tests/cloud/test_iam_least_privilege.py for what each proves):

* moto_server (a child process on 127.0.0.1) is set up by an admin, then switched to
  enforcement with moto's own ``/moto-api/reset-auth`` (the ``INITIAL_NO_AUTH_ACTION_COUNT``
  setting, reset to 0). Each component runs with ``sts:AssumeRole`` credentials of its role.
  moto matches S3 actions against bucket/object ARNs, so the role's S3 statements go to
  moto exactly as synthesized. For other services moto authorizes against resource ``*``
  only and denies whenever a condition key is absent, so those statements go to moto with
  ``Resource: *`` and no condition (the action names are still enforced); their resources
  and conditions are judged by the access matrix below.
* Access matrix: botocore's ``provide-client-params``/``after-call`` events on the session
  record every call (service, operation, Bucket/Key/Prefix/...); :func:`needs` maps each to
  IAM action + resource ARN + condition keys, adding the KMS actions AWS performs on the
  caller's behalf, and the evaluator in ``iam_policy`` decides them.

The state machine's tasks are AWS service integrations: Step Functions calls them with its
role. The rehearsal publishes the failure notification with that role's credentials (moto
judges sns:Publish) and derives the other integrations' calls from the definition.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import runpy
import socket
import subprocess
import sys
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import boto3

from tests.cloud.iam_policy import (
    Component,
    Decision,
    Names,
    Statement,
    components,
    evaluate,
    key_policy_decision,
    policy_document,
    statements,
)

ADMIN = "rehearsal-admin"


# -- recorded calls and what IAM needs for them ------------------------------------------


@dataclass
class Call:
    service: str  # botocore service name: s3, secretsmanager, sns, cloudwatch, lambda, glue, stepfunctions
    operation: str
    params: Dict[str, Any]
    status: Optional[int] = None
    error: str = ""
    source: str = "recorded"  # "recorded" (botocore event), "runtime" (what the AWS runtime does), "definition"


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: Tuple[Tuple[str, str], ...]
    why: str
    kms: bool = False  # a KMS use: the key policy must allow it too

    def ctx(self) -> Dict[str, str]:
        return dict(self.context)


@dataclass
class Encryption:
    """Which KMS key protects what (from the template), for the implied KMS actions."""

    region: str
    buckets: Dict[str, str] = field(default_factory=dict)  # bucket name -> key ARN (SSE-KMS default)
    secrets: Dict[str, str] = field(default_factory=dict)  # secret ARN/name -> key ARN
    topics: Dict[str, str] = field(default_factory=dict)  # topic ARN -> key ARN


# Sources for the implied KMS actions (looked up for this harness):
# - S3 SSE-KMS (general purpose buckets): "To upload an object encrypted with an AWS KMS key to
#   Amazon S3, you need kms:GenerateDataKey permissions on the key. To download [...] kms:Decrypt"
#   (Amazon S3 User Guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)", paragraph
#   "Permissions": https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html).
#   Multipart uploads: "the requester must have permission to the kms:Decrypt and
#   kms:GenerateDataKey actions on the key" (Amazon S3 API Reference, CreateMultipartUpload,
#   "Permissions" > "General purpose bucket permissions":
#   https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html; User Guide
#   "Multipart upload API and permissions", mpuoverview.html#mpuAndPermissions).
# - Secrets Manager: GetSecretValue on a secret under a customer managed key needs kms:Decrypt
#   (https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html).
# - SNS SSE: "The publisher must have the kms:GenerateDataKey and kms:Decrypt permissions for the
#   AWS KMS key" (Amazon SNS Developer Guide, "Key management" > "Configuring AWS KMS permissions" >
#   "Allow a user to send messages to a topic with SSE":
#   https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#send-to-encrypted-topic;
#   kms:GenerateDataKey* is what the same page asks of AWS *service* principals).
# - S3 GetObject/HeadObject of a missing key answer 403, not 404, without s3:ListBucket
#   (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions");
#   S3Lake then lists exactly that key (S3Lake._absent_behind_403).
def needs(call: Call, enc: Encryption) -> List[Need]:
    p, op, svc = call.params, call.operation, call.service

    def kms(action: str, key: str, via: str, why: str) -> Need:
        return Need(action, key, (("kms:ViaService", f"{via}.{enc.region}.amazonaws.com"),), why, kms=True)

    if svc == "s3":
        bucket, key = p.get("Bucket", ""), p.get("Key", "")
        obj, bucket_arn, sse = f"arn:aws:s3:::{bucket}/{key}", f"arn:aws:s3:::{bucket}", enc.buckets.get(bucket)
        if op in ("ListObjectsV2", "ListObjects"):
            return [Need("s3:ListBucket", bucket_arn, (("s3:prefix", p.get("Prefix", "")),), op)]
        if op in ("GetObject", "HeadObject"):
            out = [Need("s3:GetObject", obj, (), op)]
            if op == "GetObject" and sse:
                out.append(kms("kms:Decrypt", sse, "s3", "GetObject of an SSE-KMS object"))
            if call.status == 404:  # on AWS: 403 without ListBucket, then the lake lists Prefix=key
                out.append(Need("s3:ListBucket", bucket_arn, (("s3:prefix", key),),
                                f"{op} of a missing key (S3 answers 403 without ListBucket; the lake lists it)"))
            return out
        if op == "PutObject":
            return [Need("s3:PutObject", obj, (), op)] + (
                [kms("kms:GenerateDataKey", sse, "s3", "PutObject into an SSE-KMS bucket")] if sse else [])
        if op in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            return [Need("s3:PutObject", obj, (), op)] + (
                [kms("kms:GenerateDataKey", sse, "s3", op), kms("kms:Decrypt", sse, "s3", op)] if sse else [])
        if op == "AbortMultipartUpload":
            return [Need("s3:AbortMultipartUpload", obj, (), op)]
        if op == "DeleteObject":
            return [Need("s3:DeleteObject", obj, (), op)]
    if svc == "secretsmanager" and op == "GetSecretValue":
        arn = p["SecretId"]
        out = [Need("secretsmanager:GetSecretValue", arn, (), op)]
        if arn in enc.secrets:
            out.append(kms("kms:Decrypt", enc.secrets[arn], "secretsmanager", "GetSecretValue of a CMK secret"))
        return out
    if svc == "cloudwatch" and op == "PutMetricData":
        return [Need("cloudwatch:PutMetricData", "*", (("cloudwatch:namespace", p["Namespace"]),), op)]
    if svc == "sns" and op == "Publish":
        topic = p["TopicArn"]
        out = [Need("sns:Publish", topic, (), op)]
        if topic in enc.topics:
            out += [kms("kms:GenerateDataKey", enc.topics[topic], "sns", "Publish to an SSE topic"),
                    kms("kms:Decrypt", enc.topics[topic], "sns", "Publish to an SSE topic")]
        return out
    if svc == "lambda" and op == "Invoke":
        return [Need("lambda:InvokeFunction", p["FunctionName"], (), op)]
    if svc == "glue" and op in ("StartJobRun", "GetJobRun", "GetJobRuns", "BatchStopJobRun"):
        return [Need(f"glue:{op}", p["JobArn"], (), op)]
    if svc == "stepfunctions" and op == "ListExecutions":
        return [Need("states:ListExecutions", p["StateMachineArn"], (), op)]
    if svc == "stepfunctions" and op == "DescribeExecution":
        return [Need("states:DescribeExecution", p["ExecutionArn"], (), op)]
    if svc == "dynamodb" and op in ("PutItem", "GetItem", "DeleteItem"):
        return [Need(f"dynamodb:{op}", p["TableArn"], (), op)]
    if svc == "logs" and op in ("CreateLogStream", "PutLogEvents"):
        return [Need(f"logs:{op}", p["Resource"], (), op)]
    raise AssertionError(f"no IAM mapping for {svc}:{op} ({call.source}); add it to tests/cloud/iam_rehearsal.needs")


# -- the recorder -----------------------------------------------------------------------


class Recorder:
    """botocore event hooks on a session: one :class:`Call` per API call, with its outcome."""

    def __init__(self) -> None:
        self.calls: List[Call] = []

    def attach(self, session: Any) -> None:
        session.events.register("provide-client-params", self._params)
        session.events.register("after-call", self._after)

    def _params(self, params: Dict[str, Any], model: Any, context: Dict[str, Any], **_: Any) -> None:
        call = Call(model.service_model.service_name, model.name,
                    {k: v for k, v in params.items() if k != "Body"})
        context["rehearsal_call"] = call
        self.calls.append(call)

    def _after(self, http_response: Any, parsed: Dict[str, Any], model: Any, context: Dict[str, Any],
               **_: Any) -> None:
        call = context.get("rehearsal_call")
        if call is not None:
            call.status = http_response.status_code
            call.error = str(parsed.get("Error", {}).get("Code", "")) if http_response.status_code >= 300 else ""

    def denied(self) -> List[Call]:
        return [c for c in self.calls if c.status == 403 or c.error in ("AccessDenied", "AccessDeniedException")]


# -- the rehearsal ------------------------------------------------------------------------


@dataclass
class Outcome:
    component: Component
    statements: List[Statement]
    calls: List[Call]
    error: str = ""  # the component's own failure (exception, failed job run), if any

    def denied(self) -> List[Call]:
        return [c for c in self.calls if c.status == 403 or c.error in ("AccessDenied", "AccessDeniedException")]


@dataclass
class Judged:
    need: Need
    identity: Decision
    key_ok: bool = True
    key_sids: List[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.identity.allowed and self.key_ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto_server in a child process: admin setup first, then IAM enforced."""

    def __init__(self, account: str, region: str) -> None:
        self.account, self.region, self.port = account, region, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, MOTO_ACCOUNT_ID=account, INITIAL_NO_AUTH_ACTION_COUNT="1000000000")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.05)
        self.admin_keys: Tuple[str, str] = ("setup", "setup")

    def client(self, service: str, keys: Optional[Tuple[str, ...]] = None) -> Any:
        ak, sk, *token = keys or self.admin_keys
        return boto3.session.Session().client(
            service, endpoint_url=self.url, region_name=self.region, aws_access_key_id=ak,
            aws_secret_access_key=sk, aws_session_token=token[0] if token else None)

    def enforce(self) -> None:
        """From now on every request is authenticated and authorized (moto's reset-auth API)."""
        import requests  # a dependency of moto

        requests.post(f"{self.url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


# GetAtt/Ref values of resources the rehearsal does not create, in CloudFormation's formats.
def _default_names(template: Dict[str, Any], names: Names) -> None:
    a, r = names.account, names.region
    for logical, res in template["Resources"].items():
        props, t = res.get("Properties", {}), res["Type"]
        names.refs.setdefault(logical, logical)
        if t == "AWS::Lambda::Function":
            fn = props.get("FunctionName", logical)
            names.attrs[(logical, "Arn")] = f"arn:aws:lambda:{r}:{a}:function:{fn}"
        elif t == "AWS::Logs::LogGroup":
            names.refs[logical] = props.get("LogGroupName", logical)
            names.attrs[(logical, "Arn")] = f"arn:aws:logs:{r}:{a}:log-group:{names.refs[logical]}:*"
        elif t == "AWS::IAM::Role":
            names.attrs[(logical, "Arn")] = f"arn:aws:iam::{a}:role/{logical[:64]}"
        elif t == "AWS::StepFunctions::StateMachine":
            names.refs[logical] = f"arn:aws:states:{r}:{a}:stateMachine:{props.get('StateMachineName', logical)}"
        elif t == "AWS::Glue::Job":
            names.refs[logical] = props.get("Name", logical)


def _moto_statements(raw: Dict[str, Any]) -> List[Dict[str, Any]]:
    """What moto can judge: the S3 actions of a statement verbatim; the others with
    Resource * and no condition (a statement mixing both is split)."""
    acts = raw.get("Action", [])
    acts = acts if isinstance(acts, list) else [acts]
    if "Action" not in raw or raw.get("Effect") != "Allow":
        return [raw]  # NotAction or Deny: verbatim (moto can only be stricter with them)
    s3 = [a for a in acts if a.lower().startswith("s3:")]
    other = [a for a in acts if not a.lower().startswith("s3:")]
    out = [{**raw, "Action": s3}] if s3 else []
    if other:
        relaxed = {k: v for k, v in raw.items() if k not in ("Resource", "NotResource", "Condition")}
        # moto names an action after the SigV4 signing name, and CloudWatch signs as "monitoring"
        # (moto/iam/access_control.py: f"{service}:{action}" from the credential scope).
        relaxed["Action"] = other + [f"monitoring:{a.split(':', 1)[1]}" for a in other
                                     if a.lower().startswith("cloudwatch:")]
        out.append({**relaxed, "Resource": "*"})
    return out


@dataclass
class Rehearsal:
    """The stack recreated in an IAM-enforcing moto_server."""

    template: Dict[str, Any]
    account: str
    region: str
    server: MotoServer = field(init=False)
    names: Names = field(init=False)
    enc: Encryption = field(init=False)
    key_policies: Dict[str, List[Statement]] = field(default_factory=dict)  # key ARN -> statements
    comps: Dict[str, Component] = field(default_factory=dict)
    role_arns: Dict[str, str] = field(default_factory=dict)  # component -> role ARN
    lake_bucket: str = ""
    secret_arn: str = ""

    def __post_init__(self) -> None:
        self.names = Names(self.account, self.region)
        self.enc = Encryption(self.region)
        _default_names(self.template, self.names)
        self.comps = {c.name: c for c in components(self.template)}

    # -- setup (admin, before enforcement) ------------------------------------------------

    def start(self) -> Rehearsal:
        self.server = MotoServer(self.account, self.region)
        try:
            self._keys()
            self._buckets()
            self._secret()
            self._topics()
            self._admin()
            for comp in self.comps.values():
                self.role_arns[comp.name] = self._role(comp, comp.raw_statements)
            self.server.enforce()
        except BaseException:
            self.server.stop()
            raise
        return self

    def stop(self) -> None:
        self.server.stop()

    def _of_type(self, t: str) -> Dict[str, Dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == t}

    def _keys(self) -> None:
        kms = self.server.client("kms")
        for logical, res in self._of_type("AWS::KMS::Key").items():
            meta = kms.create_key(Description=logical)["KeyMetadata"]
            self.names.refs[logical], self.names.attrs[(logical, "Arn")] = meta["KeyId"], meta["Arn"]
            self.key_policies[meta["Arn"]] = statements(res["Properties"]["KeyPolicy"]["Statement"], self.names)

    def _buckets(self) -> None:
        s3 = self.server.client("s3")
        for logical, res in self._of_type("AWS::S3::Bucket").items():
            name = f"iam-{logical.lower()}"[:63]
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
            self.names.refs[logical], self.names.attrs[(logical, "Arn")] = name, f"arn:aws:s3:::{name}"
            for rule in res["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", []):
                default = rule.get("ServerSideEncryptionByDefault", {})
                if default.get("SSEAlgorithm") == "aws:kms" and "KMSMasterKeyID" in default:
                    self.enc.buckets[name] = self.names.resolve(default["KMSMasterKeyID"])
            if "Lake" in logical:
                self.lake_bucket = name

    def _secret(self) -> None:
        sm = self.server.client("secretsmanager")
        for logical, res in self._of_type("AWS::SecretsManager::Secret").items():
            props = res["Properties"]
            key = self.names.resolve(props["KmsKeyId"]) if "KmsKeyId" in props else None
            arn = sm.create_secret(Name=logical, SecretString=props.get("SecretString", "{}"),
                                   **({"KmsKeyId": key} if key else {}))["ARN"]
            self.names.refs[logical] = self.secret_arn = arn
            if key:
                self.enc.secrets[arn] = key

    def _topics(self) -> None:
        sns = self.server.client("sns")
        for logical, res in self._of_type("AWS::SNS::Topic").items():
            props = res["Properties"]
            key = self.names.resolve(props["KmsMasterKeyId"]) if "KmsMasterKeyId" in props else None
            arn = sns.create_topic(Name=logical, Attributes={"KmsMasterKeyId": key} if key else {})["TopicArn"]
            self.names.refs[logical] = arn
            if key:
                self.enc.topics[arn] = key

    def _admin(self) -> None:
        iam = self.server.client("iam")
        iam.create_user(UserName=ADMIN)
        iam.put_user_policy(UserName=ADMIN, PolicyName="admin", PolicyDocument=policy_document(
            [{"Effect": "Allow", "Action": "*", "Resource": "*"}]))
        key = iam.create_access_key(UserName=ADMIN)["AccessKey"]
        self.server.admin_keys = (key["AccessKeyId"], key["SecretAccessKey"])

    def _role(self, comp: Component, raw: Sequence[Dict[str, Any]]) -> str:
        """The role with the component's synthesized statements (trusted by the admin, who
        assumes it; on AWS the trust is the service principal)."""
        iam = self.server.client("iam")
        name = f"{comp.name}"[:64]
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"AWS": f"arn:aws:iam::{self.account}:user/{ADMIN}"}}]}
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        resolved = [self.names.resolve(s) for s in raw]
        iam.put_role_policy(RoleName=name, PolicyName="synthesized",
                            PolicyDocument=policy_document([m for s in resolved for m in _moto_statements(s)] or
                                                           [{"Effect": "Deny", "Action": "*", "Resource": "*"}]))
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        self.names.attrs[(comp.role, "Arn")] = arn
        return arn

    def replace_statements(self, comp: Component, raw: Sequence[Dict[str, Any]]) -> None:
        """Give a component's role other statements (the negative tests)."""
        self._role(comp, raw)

    # -- running a component ----------------------------------------------------------------

    @contextlib.contextmanager
    def as_role(self, comp: Component, env: Dict[str, str]) -> Iterator[Recorder]:
        """The process environment of one component: its role's credentials, its template
        environment, boto3's default session recreated with the recorder attached."""
        creds = self.server.client("sts").assume_role(
            RoleArn=self.role_arns[comp.name], RoleSessionName=f"rehearsal-{uuid.uuid4().hex[:8]}")["Credentials"]
        values = {**env, "AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                  "AWS_SESSION_TOKEN": creds["SessionToken"], "AWS_ENDPOINT_URL": self.server.url,
                  "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        saved_session = boto3.DEFAULT_SESSION
        boto3.setup_default_session()
        recorder = Recorder()
        recorder.attach(boto3.DEFAULT_SESSION)
        from binance_lake.aws import extract_lambda

        extract_lambda.clear_secret_cache()
        try:
            yield recorder
        finally:
            extract_lambda.clear_secret_cache()
            boto3.DEFAULT_SESSION = saved_session
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def fill_secret(self, api_key: str, api_secret: str) -> None:
        self.server.client("secretsmanager").put_secret_value(
            SecretId=self.secret_arn, SecretString=json.dumps({"api_key": api_key, "api_secret": api_secret}))

    # -- judging --------------------------------------------------------------------------

    def judge(self, outcome: Outcome) -> List[Judged]:
        principal = self.role_arns[outcome.component.name]
        out = []
        for call in outcome.calls:
            for need in needs(call, self.enc):
                identity = evaluate(outcome.statements, need.action, need.resource, need.ctx())
                j = Judged(need, identity)
                if need.kms:
                    key_ok, needs_iam, sids = key_policy_decision(
                        self.key_policies.get(need.resource, []), principal, self.account, need.action,
                        need.resource, need.ctx())
                    j.key_ok, j.key_sids = key_ok, sids
                    if not needs_iam and key_ok:  # the key policy names the role itself
                        j.identity = Decision(True, [f"key policy {','.join(sids)}"])
                out.append(j)
        return out


# -- components' code paths ----------------------------------------------------------------


def lambda_context(name: str, region: str, account: str) -> Any:
    return types.SimpleNamespace(
        function_name=name, function_version="$LATEST", memory_limit_in_mb=256,
        invoked_function_arn=f"arn:aws:lambda:{region}:{account}:function:{name}",
        aws_request_id=str(uuid.uuid4()), log_group_name=f"/aws/lambda/{name}", log_stream_name="rehearsal",
        get_remaining_time_in_millis=lambda: 240_000)


def load_handler(code_dir: Path, handler: str, name: str) -> Any:
    module_name, func = handler.rsplit(".", 1)
    path = code_dir / f"{module_name.replace('.', '/')}.py"
    assert path.is_file(), f"{name}: handler {handler} -> {path} is not in the code asset"
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(f"rehearsal_{name}_{module_name}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, func)


def run_script(script: Path, argv: Sequence[str]) -> str:
    """A Glue script as Glue runs it (``__main__``, ``--KEY value``); '' or the failure."""
    saved = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
        return ""
    except SystemExit as exc:
        return "" if not exc.code else f"exit {exc.code}"
    except Exception as exc:  # the job run fails
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.argv = saved
