"""Offsite backups, through the real engine, to a moto S3 server on loopback; then a fresh stack restored from it.

Stack `bkps3` has `database.offsite` pointing at the moto server (credentials set as Pulumi secrets, as a user
would), `backupsToKeep` 2. Its backups are uploaded by the job on the target (the local engine: the endpoint
is on loopback, so the job shares the host's network), read back with boto3 here: encrypted, checksums in the
metadata, the same retention. Stack `bkprestore`, deployed fresh under another database name and role (the
way to rename them: the identity guard's advice), restores `bkps3`'s latest offsite backup, then a local one.
"""

from __future__ import annotations

import json

import boto3
import pytest

from tests.live.support import moto_s3
from tests.live.test_backups import CHECKSUM, BackupStack, databases, sql
from tests.live.test_scenarios import deployed, free_port

pytestmark = pytest.mark.live
SOURCE, FRESH = "bkps3", "bkprestore"
BUCKET = "webstack-offsite-test"
KEYS = {"accessKeyId": "moto-test-key", "secretAccessKey": "moto-test-secret"}
RENAMED = {"database": "shop", "stack": FRESH, "user": "shopper"}   # the fresh stack's database and role


@pytest.fixture(scope="module")
def s3():
    with moto_s3(free_port()) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=KEYS["accessKeyId"], aws_secret_access_key=KEYS["secretAccessKey"])
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client


def offsite_config(endpoint: str) -> tuple[dict, dict]:
    plain = {"webstack:database.offsite.bucket": BUCKET, "webstack:database.offsite.endpoint": endpoint,
             "webstack:database.offsite.prefix": "backups/webstack", "webstack:database.backupsToKeep": 2}
    secrets = {f"webstack:database.offsite.{k}": v for k, v in KEYS.items()}
    return plain, secrets


@pytest.fixture(scope="module")
def source(s3, tmp_path_factory, request):
    yield from deployed(lambda: BackupStack(tmp_path_factory.mktemp(SOURCE), stack=SOURCE), request, "offsite")


@pytest.fixture(scope="module")
def fresh(s3, tmp_path_factory, request):
    yield from deployed(lambda: BackupStack(tmp_path_factory.mktemp(FRESH), stack=FRESH), request, "fresh stack")


def signing_key_file(stack) -> str:
    """The stack's backup signing key in a 0600 file, as an operator would save it from `pulumi stack output`."""
    path = stack.engine.directory / "signing-key"
    path.touch(mode=0o600)
    path.write_text(stack.engine.stack.outputs()["backupSigningKey"].value + "\n")
    return str(path)


def offsite_names(client, stack: str) -> list[str]:
    prefix = f"backups/webstack/{stack}/"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return sorted({k[len(prefix):].split("/")[0] for k in keys})


def test_1_each_backup_is_uploaded_encrypted_verified_and_kept_like_the_local_ones(s3, source):
    endpoint, client = s3
    plain, secrets = offsite_config(endpoint)
    source.engine.up(secrets=secrets, **{"webstack:release": "r1", **plain})
    for i in range(25):
        source.write_note(f"offsite note {i}")
    made = [source.ops("backup") for _ in range(3)]
    assert "offsite copy verified: s3://webstack-offsite-test/backups/webstack/bkps3/" in made[-1].stdout
    local = source.backups()
    assert len(local) == 2 and offsite_names(client, SOURCE) == [b["name"] for b in local]
    newest = local[-1]
    key = f"backups/webstack/{SOURCE}/{newest['name']}/database.dump"
    head = client.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256" and head["Metadata"]["sha256"] == newest["sha256"]
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key=key.replace("database.dump", "manifest.json"))["Body"].read())
    assert manifest["sha256"] == newest["sha256"] and manifest["stack"] == SOURCE
    listed = json.loads(source.ops("backup", "--list", "--offsite", "--json").stdout)
    assert [m["name"] for m in listed] == [b["name"] for b in local]
    source.figures["offsite backup"] = made[-1].stdout.strip().splitlines()[-2]


def test_2_a_fresh_stack_restores_the_latest_offsite_backup(s3, source, fresh):
    endpoint, _ = s3
    plain, secrets = offsite_config(endpoint)
    fresh.engine.up(secrets=secrets, **{"webstack:release": "r1", **plain, "webstack:database.name": "shop",
                                        "webstack:database.user": "shopper"})
    expected = sql(CHECKSUM, stack=SOURCE)
    # The source stack lives in another backend (as after losing a host with its operator's machine): its
    # signing key comes from a file. Without it the restore is refused, saying how to get it.
    refused = fresh.ops("restore", "--from-s3", "--from-stack", SOURCE, "--latest", ok=False)
    assert refused.returncode != 0 and "--signing-key-file" in refused.stderr, refused.stderr
    restored = fresh.ops("restore", "--from-s3", "--from-stack", SOURCE, "--latest",
                         "--signing-key-file", signing_key_file(source))
    assert "verified and restored" in restored.stdout, restored.stdout + restored.stderr
    assert sql(CHECKSUM, **RENAMED) == expected
    assert sql("SELECT tableowner FROM pg_tables WHERE tablename = 'notes'", **RENAMED) == "shopper"
    assert "offsite note 24" in fresh.notes()
    fresh.figures["restore from S3 into a fresh stack"] = restored.stdout.strip().splitlines()[-2]


def test_3_a_corrupted_offsite_backup_is_refused_before_anything_changes(s3, source, fresh):
    _, client = s3
    name = offsite_names(client, SOURCE)[-1]
    key = f"backups/webstack/{SOURCE}/{name}/database.dump"
    body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[100] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    before, dbs = sql(CHECKSUM, **RENAMED), databases(FRESH)
    refused = fresh.ops("restore", "--from-s3", "--from-stack", SOURCE, "--name", name,
                        "--signing-key-file", signing_key_file(source), ok=False)
    assert refused.returncode == 2 and f"backup {name} is corrupted" in refused.stderr, refused.stderr
    assert sql(CHECKSUM, **RENAMED) == before and databases(FRESH) == dbs


def test_4_a_stack_on_the_same_target_restores_another_stacks_local_backup(source, fresh):
    """The way to move data to a stack with another database name or role (the identity guard's advice)."""
    source.write_note("only in the local backup")
    source.ops("backup")
    expected = sql(CHECKSUM, stack=SOURCE)
    restored = fresh.ops("restore", "--from-stack", SOURCE, "--latest")
    assert "verified and restored" in restored.stdout, restored.stdout + restored.stderr
    assert sql(CHECKSUM, **RENAMED) == expected and "only in the local backup" in fresh.notes()
