"""Team state on S3 through the real engine, against a moto S3 server on loopback.

The bucket is made by `python -m ops state-bucket` (a subprocess, as an operator runs it) and its settings read
back with boto3. Then test_engine's small program (no Docker) runs on the S3 backend: `up`, `stack history`,
and a second `up` while the first holds the stack's lock, refused by that lock (the lock file is seen in the
bucket, not assumed).
"""

from __future__ import annotations

import os
import subprocess
import sys

import boto3
import pytest

from tests.live.engine import PROJECT_DIR, EngineStack
from tests.live.support import moto_s3
from tests.live.test_engine import PROGRAM, require_toolchain, second_up_while_the_first_runs
from tests.live.test_scenarios import free_port

pytestmark = pytest.mark.live
BUCKET = "webstack-team-state"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with dummy credentials in the environment (the CLI inherits them)."""
    require_toolchain()
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        with moto_s3(free_port()) as endpoint:
            yield endpoint, boto3.client("s3", endpoint_url=endpoint)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    endpoint, _ = s3
    command = [sys.executable, "-m", "ops", "state-bucket", "--bucket", BUCKET, "--endpoint-url", endpoint]
    for _ in range(2):   # idempotent: the second run changes nothing and succeeds
        done = subprocess.run(command, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert "ready: pulumi login 's3://webstack-team-state?region=us-east-1&endpoint=127.0.0.1:" in done.stdout
    return BUCKET


@pytest.fixture(scope="module")
def stack(s3, bucket, tmp_path_factory) -> EngineStack:
    directory = tmp_path_factory.mktemp("s3-program")
    (directory / "Pulumi.yaml").write_text("name: enginetest\nruntime:\n  name: python\n  options:\n"
                                           "    virtualenv: venv\n")
    (directory / "__main__.py").write_text(PROGRAM)
    for name in ("components", "templates", "venv"):
        (directory / name).symlink_to(PROJECT_DIR / name)
    port = s3[0].rsplit(":", 1)[1]
    url = f"s3://{bucket}?endpoint=127.0.0.1:{port}&disableSSL=true&s3ForcePathStyle=true&region=us-east-1"
    return EngineStack(directory, "team", tmp_path_factory.mktemp("s3-state"), copy=False, backend_url=url,
                       config={"enginetest:domain": "team.example.test"}, secrets={"enginetest:token": "t0ken"})


def keys(client, prefix: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_the_state_bucket_is_versioned_encrypted_private_and_expires_old_versions(s3, bucket):
    client = s3[1]
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                     "RestrictPublicBuckets": True}
    lifecycle = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert lifecycle[0]["Status"] == "Enabled" and lifecycle[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0


def test_up_on_the_s3_backend_writes_the_state_into_the_bucket_and_history_lists_it(s3, stack):
    first = stack.up()
    assert first.changes == {"create": 3}, first.changes
    again = stack.up()
    assert again.changes == {"same": 3}, again.changes
    stored = keys(s3[1], ".pulumi/")
    assert ".pulumi/stacks/enginetest/team.json" in stored, stored
    assert len([k for k in stored if k.endswith(".history.json")]) == 2, stored
    updates = [h for h in stack.history() if h.kind == "update"]
    assert [h.result for h in updates] == ["succeeded", "succeeded"]
    assert updates[0].config["enginetest:domain"].value == "team.example.test"
    # Versioning keeps the earlier checkpoint that the second update overwrote.
    versions = s3[1].list_object_versions(Bucket=BUCKET, Prefix=".pulumi/stacks/enginetest/team.json")["Versions"]
    assert len(versions) >= 2


def test_a_second_up_while_one_runs_is_refused_by_the_lock_in_the_bucket(s3, stack, tmp_path):
    other = EngineStack(stack.work_dir, "team", tmp_path, copy=False, backend_url=stack.backend_url,
                        passphrase=stack.passphrase)
    slow = {"enginetest:slowSeconds": "8", "enginetest:slowToken": "s3"}
    run, refused = second_up_while_the_first_runs(stack, other, slow, lambda: bool(keys(s3[1], ".pulumi/locks/")))
    assert "currently locked" in refused.message, refused.message
    assert run.names("create") == ["slow"]
    assert not keys(s3[1], ".pulumi/locks/")   # released at the end of the update
