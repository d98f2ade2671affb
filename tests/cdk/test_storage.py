"""Buckets: encryption, TLS-only, no public access, versioning, lifecycle, retention per stage."""

from __future__ import annotations

from aws_cdk.assertions import Match, Template

from .support import Synth, flatten, logical_id, resources


def _bucket_ids(template: Template) -> list:
    return list(resources(template, "AWS::S3::Bucket"))


def test_four_buckets_per_stage(synth: Synth) -> None:
    for template in (synth.beta, synth.prod):
        template.resource_count_is("AWS::S3::Bucket", 4)  # lake, athena results, artifacts, access logs


def test_every_bucket_is_encrypted_and_private(synth: Synth) -> None:
    for template in (synth.beta, synth.prod):
        for bucket in resources(template, "AWS::S3::Bucket").values():
            props = bucket["Properties"]
            assert props["PublicAccessBlockConfiguration"] == {
                "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True}
            rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")


def test_data_buckets_use_the_cmk_and_only_the_log_bucket_uses_sse_s3(synth: Synth) -> None:
    storage = synth.beta_stack.storage
    buckets = resources(synth.beta, "AWS::S3::Bucket")
    key_id = logical_id(synth.beta_stack, storage.key)
    for bucket in (storage.lake, storage.athena_results, storage.artifacts):
        sse = buckets[logical_id(synth.beta_stack, bucket)]["Properties"]["BucketEncryption"]
        default = sse["ServerSideEncryptionConfiguration"][0]
        assert default["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}
        assert default["BucketKeyEnabled"] is True
    logs = buckets[logical_id(synth.beta_stack, storage.access_logs)]["Properties"]
    # S3 server access logging cannot deliver into a CMK-encrypted bucket.
    assert logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}


def test_every_bucket_denies_non_tls(synth: Synth) -> None:
    for template in (synth.beta, synth.prod):
        policies = resources(template, "AWS::S3::BucketPolicy").values()
        covered = set()
        for policy in policies:
            for st in policy["Properties"]["PolicyDocument"]["Statement"]:
                if st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and st["Effect"] == "Deny":
                    assert st["Action"] == "s3:*"
                    covered.add(policy["Properties"]["Bucket"]["Ref"])
        assert covered == set(_bucket_ids(template))


def test_lake_is_versioned_and_logs_access(synth: Synth) -> None:
    stack = synth.beta_stack
    lake = resources(synth.beta, "AWS::S3::Bucket")[logical_id(stack, stack.storage.lake)]["Properties"]
    assert lake["VersioningConfiguration"] == {"Status": "Enabled"}
    assert lake["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": logical_id(stack, stack.storage.access_logs)}


def _lake_rules(synth: Synth) -> list:
    stack = synth.beta_stack
    bucket = resources(synth.beta, "AWS::S3::Bucket")[logical_id(stack, stack.storage.lake)]
    return bucket["Properties"]["LifecycleConfiguration"]["Rules"]


def test_lifecycle_ia_only_for_objects_worth_it_and_athena_results_expire(synth: Synth) -> None:
    stack = synth.beta_stack
    (ia,) = [r for r in _lake_rules(synth) if r.get("Transitions")]
    assert ia["Prefix"] == "raw/"
    assert ia["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30}]
    # S3 skips objects under 128 KB by default and IA bills 128 KB minimum: the rule says so.
    assert ia["ObjectSizeGreaterThan"] == str(128 * 1024)  # CloudFormation's type is a string
    buckets = resources(synth.beta, "AWS::S3::Bucket")
    athena = buckets[logical_id(stack, stack.storage.athena_results)]["Properties"]["LifecycleConfiguration"]
    assert athena["Rules"][0]["ExpirationInDays"] == 30


def test_delete_markers_and_old_versions_expire_in_every_rewritten_prefix(synth: Synth) -> None:
    """Every prefix a tick deletes or overwrites in (pending markers, leases, run records, index,
    state) and the zones themselves expire delete markers and noncurrent versions."""
    rules = _lake_rules(synth)
    covered = {r["Prefix"]: r for r in rules
               if r.get("ExpiredObjectDeleteMarker") is True and "NoncurrentVersionExpiration" in r}
    for prefix in ("raw/_pending/", "curated/_locks/", "raw/_runs/", "curated/_index/", "curated/_state/",
                   "raw/_gaps/", "raw/_resolved/"):
        assert covered[prefix]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}, prefix
    assert covered["raw/"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert covered["curated/"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}
    for rule in rules:  # S3 rejects ExpiredObjectDeleteMarker next to an expiration in days
        assert not (rule.get("ExpiredObjectDeleteMarker") and "ExpirationInDays" in rule), rule["Id"]


def test_prod_retains_data_except_on_a_rolled_back_create_beta_may_delete_it(synth: Synth) -> None:
    for type_ in ("AWS::S3::Bucket", "AWS::KMS::Key", "AWS::SecretsManager::Secret"):
        for res in resources(synth.prod, type_).values():
            assert res["DeletionPolicy"] == "RetainExceptOnCreate", type_
            assert res["UpdateReplacePolicy"] == "Retain", type_
        for res in resources(synth.beta, type_).values():
            assert res["DeletionPolicy"] == "Delete", type_
    synth.prod.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    synth.beta.resource_count_is("Custom::S3AutoDeleteObjects", 4)


def test_key_rotates_and_admits_logs_alarms_and_the_glue_failure_rule(beta: Template) -> None:
    beta.has_resource_properties("AWS::KMS::Key", {
        "EnableKeyRotation": True,
        "KeyPolicy": {"Statement": Match.array_with([
            Match.object_like({"Sid": "CloudWatchLogs",
                               "Principal": {"Service": "logs.eu-west-1.amazonaws.com"}}),
            Match.object_like({"Sid": "CloudWatchAlarmsToSns", "Principal": {"Service": "cloudwatch.amazonaws.com"},
                               "Action": ["kms:Decrypt", "kms:GenerateDataKey*"]}),
            # EventBridge encrypts what it publishes to the CMK topic: same two actions.
            Match.object_like({"Sid": "EventRulesToSns", "Principal": {"Service": "events.amazonaws.com"},
                               "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Condition": Match.absent()}),
        ])},
    })


def test_lake_uri_points_at_the_lake_bucket(synth: Synth) -> None:
    assert flatten(synth.beta_stack.resolve(synth.beta_stack.storage.lake_uri)) == \
        f"s3://<{logical_id(synth.beta_stack, synth.beta_stack.storage.lake)}>"
