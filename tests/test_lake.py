"""Lake storage: atomic local writes, create-if-absent, listings that ignore temporaries,
and S3's 403-for-missing-key behaviour under prefix-scoped IAM."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from binance_lake.errors import StorageError
from binance_lake.lake import LocalLake, S3Lake


def test_local_writes_are_atomic_and_listings_ignore_temporaries(tmp_path):
    lake = LocalLake(str(tmp_path))
    assert lake.write_bytes("a/b/x.json", b"1") is True
    assert lake.write_bytes("a/b/x.json", b"2", if_absent=True) is False  # immutable raw stays
    assert lake.read_bytes("a/b/x.json") == b"1"
    (tmp_path / "a" / "b" / ".x.json.tmp-123-abc").write_bytes(b"torn")  # a killed writer's leftover
    assert lake.list_keys("a") == ["a/b/x.json"] and lake.list_children("a/b") == ["x.json"]
    with pytest.raises(KeyError):
        lake.read_bytes("a/b/missing.json")
    with pytest.raises(StorageError, match="invalid lake key"):
        lake.read_bytes("../etc/passwd")


class _DeniedS3:
    """An S3 client as a prefix-scoped IAM role sees it: GET of a missing key is a 403."""

    def __init__(self, listed: list):
        self.listed = listed

    def get_object(self, **kw):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    head_object = get_object

    def list_objects_v2(self, Bucket, Prefix, MaxKeys):  # boto3 keyword names
        return {"Contents": [{"Key": k} for k in self.listed if k.startswith(Prefix)][:MaxKeys]}


def test_s3_missing_key_behind_403_is_absent_but_real_denials_stay_errors():
    absent = S3Lake("s3://lake/pfx", client=_DeniedS3([]))
    with pytest.raises(KeyError):
        absent.read_bytes("curated/_index/orders/symbol=BTCUSDT.json")
    assert absent.exists("curated/x") is False
    present = S3Lake("s3://lake/pfx", client=_DeniedS3(["pfx/curated/x"]))
    with pytest.raises(StorageError, match="access denied to s3://lake/pfx/curated/x"):
        present.read_bytes("curated/x")


def test_s3_connection_and_credential_failures_say_what_to_do():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    class Broken:
        def __init__(self, exc):
            self.exc = exc

        def get_object(self, **kw):
            raise self.exc

    with pytest.raises(StorageError, match="no AWS credentials for --lake s3://b/p; set AWS_PROFILE"):
        S3Lake("s3://b/p", client=Broken(NoCredentialsError())).read_bytes("raw/x")
    with pytest.raises(StorageError, match="cannot reach S3 for --lake s3://b/p"):
        S3Lake("s3://b/p", client=Broken(EndpointConnectionError(endpoint_url="http://x"))).read_bytes("raw/x")
