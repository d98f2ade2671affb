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


def test_lifecycle_raw_to_ia_and_athena_results_expire(synth: Synth) -> None:
    stack = synth.beta_stack
    buckets = resources(synth.beta, "AWS::S3::Bucket")
    lake_rules = buckets[logical_id(stack, stack.storage.lake)]["Properties"]["LifecycleConfiguration"]["Rules"]
    raw = next(r for r in lake_rules if r["Id"] == "raw-to-infrequent-access")
    assert raw["Prefix"] == "raw/"
    assert raw["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": 30}]
    athena = buckets[logical_id(stack, stack.storage.athena_results)]["Properties"]["LifecycleConfiguration"]
    assert athena["Rules"][0]["ExpirationInDays"] == 30


def test_prod_retains_data_beta_may_delete_it(synth: Synth) -> None:
    for bucket in resources(synth.prod, "AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Retain"
    synth.prod.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})
    synth.prod.has_resource("AWS::SecretsManager::Secret", {"DeletionPolicy": "Retain"})
    synth.prod.resource_count_is("Custom::S3AutoDeleteObjects", 0)
    for bucket in resources(synth.beta, "AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Delete"
    synth.beta.resource_count_is("Custom::S3AutoDeleteObjects", 4)


def test_key_rotates_and_admits_logs_and_alarms(beta: Template) -> None:
    beta.has_resource_properties("AWS::KMS::Key", {
        "EnableKeyRotation": True,
        "KeyPolicy": {"Statement": Match.array_with([
            Match.object_like({"Sid": "CloudWatchLogs",
                               "Principal": {"Service": "logs.eu-west-1.amazonaws.com"}}),
            Match.object_like({"Sid": "CloudWatchAlarmsToSns", "Principal": {"Service": "cloudwatch.amazonaws.com"}}),
        ])},
    })


def test_lake_uri_points_at_the_lake_bucket(synth: Synth) -> None:
    assert flatten(synth.beta_stack.resolve(synth.beta_stack.storage.lake_uri)) == \
        f"s3://<{logical_id(synth.beta_stack, synth.beta_stack.storage.lake)}>"
