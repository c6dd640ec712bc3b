"""`python -m ops state-bucket`: the S3 calls it builds, and what they leave on S3 (moto's in-process S3)."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from ops.__main__ import main
from ops.errors import OpsError
from ops.state_bucket import NONCURRENT_DAYS, apply, login_url, requests


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def test_the_calls_create_then_lock_down_the_bucket_in_order():
    assert [method for method, _ in requests("team-state", "us-east-1")] == [
        "create_bucket", "put_public_access_block", "put_bucket_versioning", "put_bucket_encryption",
        "put_bucket_lifecycle_configuration"]


def test_a_region_other_than_us_east_1_is_the_buckets_location_constraint():
    assert requests("b-1", "us-east-1")[0][1] == {"Bucket": "b-1"}
    assert requests("b-1", "eu-west-1")[0][1] == {"Bucket": "b-1",
                                                  "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"}}


def test_the_login_url_names_a_custom_endpoint_with_path_style_and_no_tls_for_http():
    assert login_url("b", "us-east-1", None) == "s3://b?region=us-east-1"
    assert login_url("b", "us-east-1", "http://127.0.0.1:9000") == \
        "s3://b?region=us-east-1&endpoint=127.0.0.1:9000&s3ForcePathStyle=true&disableSSL=true"


def test_the_command_leaves_a_versioned_encrypted_private_bucket_and_is_idempotent(aws, capsys):
    for _ in range(2):
        assert main(["state-bucket", "--bucket", "team-state"]) == 0
    assert aws.get_bucket_versioning(Bucket="team-state")["Status"] == "Enabled"
    rule = aws.get_bucket_encryption(Bucket="team-state")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(aws.get_public_access_block(Bucket="team-state")["PublicAccessBlockConfiguration"].values())
    lifecycle = aws.get_bucket_lifecycle_configuration(Bucket="team-state")["Rules"]
    assert lifecycle[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == NONCURRENT_DAYS
    # (us-east-1 answers a second create_bucket of one's own bucket with 200, as S3 itself does)
    assert capsys.readouterr().out.count("ready: pulumi login 's3://team-state?region=us-east-1'") == 2


def test_a_bucket_of_ours_in_another_region_is_taken_as_is(aws, capsys, monkeypatch):
    eu = boto3.client("s3", region_name="eu-west-1")
    eu.create_bucket(Bucket="team-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert main(["state-bucket", "--bucket", "team-eu", "--region", "eu-west-1"]) == 0
    assert "team-eu: exists (yours)" in capsys.readouterr().out
    assert eu.get_bucket_versioning(Bucket="team-eu")["Status"] == "Enabled"


def test_an_invalid_bucket_name_is_refused_before_any_call(capsys):
    assert main(["state-bucket", "--bucket", "Team_State"]) == 2
    assert "not a valid S3 bucket name" in capsys.readouterr().err


def test_missing_credentials_are_one_clear_error(monkeypatch):
    class NoCredentials:
        def create_bucket(self, **_):
            from botocore.exceptions import NoCredentialsError
            raise NoCredentialsError()
    with pytest.raises(OpsError, match="no AWS credentials: set AWS_ACCESS_KEY_ID"):
        apply(NoCredentials(), requests("team-state", "us-east-1"), say=lambda _: None)


def test_an_unreachable_endpoint_is_one_clear_error_without_a_traceback(monkeypatch, capsys):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert main(["state-bucket", "--bucket", "team-state", "--endpoint-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: create_bucket failed: Could not connect") and "Traceback" not in err, err
