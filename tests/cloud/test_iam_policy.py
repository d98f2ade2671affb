"""The access-matrix evaluator and the call -> IAM action map, on hand-written statements."""

from __future__ import annotations

import pytest

from tests.cloud.iam_policy import Names, Statement, evaluate, key_policy_decision, statements
from tests.cloud.iam_rehearsal import Call, Encryption, needs

ACCOUNT, REGION = "222222222222", "eu-west-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k1"
BUCKET = "lake"


def stmts(*raw: dict) -> list:
    return [Statement.parse(r, i) for i, r in enumerate(raw)]


LIST_ZONES = {"Sid": "ListZones", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}",
              "Condition": {"StringLike": {"s3:prefix": ["raw/*", "curated/*"]}}}


def test_list_bucket_is_judged_by_its_prefix_condition() -> None:
    policy = stmts(LIST_ZONES)
    allowed = evaluate(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "raw/klines/x"})
    assert allowed.by == ["ListZones"]
    assert not evaluate(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "quarantine/x"}).allowed
    assert not evaluate(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {}).allowed  # key absent: no match
    assert not evaluate(policy, "s3:ListBucket", "arn:aws:s3:::other", {"s3:prefix": "raw/x"}).allowed


def test_actions_match_case_insensitively_with_wildcards_and_deny_wins() -> None:
    policy = stmts({"Sid": "Get", "Effect": "Allow", "Action": "s3:Get*", "Resource": f"arn:aws:s3:::{BUCKET}/*"},
                   {"Sid": "NoCurated", "Effect": "Deny", "Action": "s3:*",
                    "Resource": f"arn:aws:s3:::{BUCKET}/curated/*"})
    assert evaluate(policy, "s3:getobject", f"arn:aws:s3:::{BUCKET}/raw/a", {}).by == ["Get"]
    denied = evaluate(policy, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/curated/a", {})
    assert (denied.allowed, denied.by, denied.reason) == (False, ["NoCurated"], "explicit deny")
    assert not evaluate(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/raw/a", {}).allowed


def test_namespace_condition_and_negated_and_if_exists_operators() -> None:
    policy = stmts({"Sid": "Metric", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
                    "Condition": {"StringEquals": {"cloudwatch:namespace": "BinanceLake"}}},
                   {"Sid": "NotSecret", "Effect": "Allow", "Action": "sns:Publish", "Resource": "*",
                    "Condition": {"StringNotEquals": {"aws:RequestTag/x": "y"},
                                  "BoolIfExists": {"aws:SecureTransport": "true"}}})
    assert evaluate(policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "BinanceLake"}).allowed
    assert not evaluate(policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Other"}).allowed
    assert evaluate(policy, "sns:Publish", "t", {}).allowed  # negated: absent key passes; IfExists: absent passes
    assert not evaluate(policy, "sns:Publish", "t", {"aws:RequestTag/x": "y"}).allowed


def test_an_operator_the_harness_does_not_know_fails_loudly() -> None:
    policy = stmts({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                    "Condition": {"NumericLessThan": {"s3:max-keys": "10"}}})
    with pytest.raises(NotImplementedError, match="NumericLessThan"):
        evaluate(policy, "s3:GetObject", "arn:aws:s3:::b/k", {})


def test_key_policy_root_delegates_to_iam_and_service_principals_do_not_count() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    root = stmts({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*",
                  "Resource": "*"})
    service_only = stmts({"Effect": "Allow", "Principal": {"Service": "logs.eu-west-1.amazonaws.com"},
                          "Action": "kms:*", "Resource": "*"})
    direct = stmts({"Sid": "Role", "Effect": "Allow", "Principal": {"AWS": role}, "Action": "kms:Decrypt",
                    "Resource": "*"})
    assert key_policy_decision(root, role, ACCOUNT, "kms:Decrypt", KEY, {})[:2] == (True, True)
    assert key_policy_decision(service_only, role, ACCOUNT, "kms:Decrypt", KEY, {})[0] is False
    assert key_policy_decision(direct, role, ACCOUNT, "kms:Decrypt", KEY, {}) == (True, False, ["Role"])


def test_calls_map_to_actions_with_the_kms_use_behind_them() -> None:
    enc = Encryption(REGION, buckets={BUCKET: KEY}, secrets={"sec": KEY}, topics={"topic": KEY})
    put = needs(Call("s3", "PutObject", {"Bucket": BUCKET, "Key": "raw/a.json"}), enc)
    assert [(n.action, n.resource) for n in put] == [("s3:PutObject", f"arn:aws:s3:::{BUCKET}/raw/a.json"),
                                                    ("kms:GenerateDataKey", KEY)]
    get_missing = needs(Call("s3", "GetObject", {"Bucket": BUCKET, "Key": "raw/b"}, status=404), enc)
    assert [n.action for n in get_missing] == ["s3:GetObject", "kms:Decrypt", "s3:ListBucket"]
    assert get_missing[2].ctx() == {"s3:prefix": "raw/b"}
    assert [n.action for n in needs(Call("secretsmanager", "GetSecretValue", {"SecretId": "sec"}), enc)] == \
        ["secretsmanager:GetSecretValue", "kms:Decrypt"]
    assert [n.action for n in needs(Call("sns", "Publish", {"TopicArn": "topic"}), enc)] == \
        ["sns:Publish", "kms:GenerateDataKey", "kms:Decrypt"]
    assert needs(Call("s3", "ListObjectsV2", {"Bucket": BUCKET, "Prefix": "curated/x/"}), enc)[0].ctx() == \
        {"s3:prefix": "curated/x/"}
    with pytest.raises(AssertionError, match="no IAM mapping for s3:PutBucketPolicy"):
        needs(Call("s3", "PutBucketPolicy", {"Bucket": BUCKET}), enc)


def test_sns_publish_without_a_kms_grant_is_denied_by_the_matrix() -> None:
    """The issue's case: sns:Publish granted, the topic's key not."""
    names = Names(ACCOUNT, REGION, refs={"Topic": "topic"})
    role = statements([{"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "Topic"}}], names)
    enc = Encryption(REGION, topics={"topic": KEY})
    verdicts = {n.action: evaluate(role, n.action, n.resource, n.ctx()).allowed
                for n in needs(Call("sns", "Publish", {"TopicArn": "topic"}), enc)}
    assert verdicts == {"sns:Publish": True, "kms:GenerateDataKey": False, "kms:Decrypt": False}


def test_intrinsics_resolve_to_the_rehearsal_names() -> None:
    names = Names(ACCOUNT, REGION, refs={"Lake": "lake"}, attrs={("Key", "Arn"): KEY})
    assert names.resolve({"Fn::Join": ["", [{"Fn::GetAtt": ["Key", "Arn"]}, "/x"]]}) == f"{KEY}/x"
    assert names.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Lake}/raw/*"}) == "arn:aws:s3:::lake/raw/*"
    assert names.resolve({"Fn::Sub": ["${A}-${AWS::Region}", {"A": {"Ref": "Lake"}}]}) == "lake-eu-west-1"
    with pytest.raises(KeyError):
        names.resolve({"Ref": "Missing"})


def test_moto_gets_s3_statements_verbatim_and_the_rest_relaxed_for_the_matrix_to_judge() -> None:
    from tests.cloud.iam_rehearsal import _moto_statements

    mixed = {"Sid": "M", "Effect": "Allow", "Action": ["s3:GetObject", "cloudwatch:PutMetricData"],
             "Resource": "arn:aws:s3:::lake/raw/*", "Condition": {"StringEquals": {"cloudwatch:namespace": "X"}}}
    s3, other = _moto_statements(mixed)
    assert s3 == {**mixed, "Action": ["s3:GetObject"]}
    assert other == {"Sid": "M", "Effect": "Allow", "Resource": "*",
                     "Action": ["cloudwatch:PutMetricData", "monitoring:PutMetricData"]}
    deny = {"Effect": "Deny", "Action": "kms:*", "Resource": KEY}
    assert _moto_statements(deny) == [deny]
