"""Offsite backups, through the real engine, to a moto S3 server on loopback; then a fresh stack restored from it.

Stack `bkps3` has `database.offsite` pointing at the moto server (credentials set as Pulumi secrets, as a user
would), `database.backups.keepScheduled` 2 (manual backups count with the scheduled ones). Its backups are
uploaded by the job on the target (the local engine: the endpoint is on loopback, so the job shares the host's
network) under <prefix>/<project>/<stack>/, read back with boto3 here: encrypted, checksums in the metadata, the
same retention. Stack `bkprestore`, deployed fresh under another database name and role (the way to rename them:
the identity guard's advice), restores `bkps3`'s latest offsite backup, then a local one. Then (issue 21)
releases push out only pre-deploy backups, locally and offsite, another project's prefix and the old layout are
left alone, and a backup moved to the old layout is still restored by its name.
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
PROJECT = "webstack"   # the project copy's Pulumi.yaml name


@pytest.fixture(scope="module")
def s3():
    with moto_s3(free_port()) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=KEYS["accessKeyId"], aws_secret_access_key=KEYS["secretAccessKey"])
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client


def offsite_config(endpoint: str) -> tuple[dict, dict]:
    plain = {"webstack:database.offsite.bucket": BUCKET, "webstack:database.offsite.endpoint": endpoint,
             "webstack:database.offsite.prefix": "backups/webstack", "webstack:database.backups.keepScheduled": 2}
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


def offsite_names(client, stack: str, prefix: str | None = None) -> list[str]:
    prefix = prefix or f"backups/webstack/{PROJECT}/{stack}/"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return sorted({k[len(prefix):].split("/")[0] for k in keys})


def test_1_each_backup_is_uploaded_encrypted_verified_and_kept_like_the_local_ones(s3, source):
    endpoint, client = s3
    plain, secrets = offsite_config(endpoint)
    source.engine.up(secrets=secrets, **{"webstack:release": "r1", **plain})
    for i in range(25):
        source.write_note(f"offsite note {i}")
    made = [source.ops("backup") for _ in range(3)]
    assert f"offsite copy verified: s3://webstack-offsite-test/backups/webstack/{PROJECT}/bkps3/" in made[-1].stdout
    local = source.backups()
    assert len(local) == 2 and offsite_names(client, SOURCE) == [b["name"] for b in local]
    newest = local[-1]
    key = f"backups/webstack/{PROJECT}/{SOURCE}/{newest['name']}/database.dump"
    head = client.head_object(Bucket=BUCKET, Key=key)
    assert head["ServerSideEncryption"] == "AES256" and head["Metadata"]["sha256"] == newest["sha256"]
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key=key.replace("database.dump", "manifest.json"))["Body"].read())
    assert manifest["sha256"] == newest["sha256"] and (manifest["project"], manifest["stack"]) == (PROJECT, SOURCE)
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
    key = f"backups/webstack/{PROJECT}/{SOURCE}/{name}/database.dump"
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


def test_5_releases_push_out_only_pre_deploy_backups_and_other_prefixes_are_left_alone(s3, source):
    """Issue 21: pre-deploy backups counted toward the same number as the others (three releases with a count of
    2 left no backup but theirs), and the prefix was <prefix>/<stack>, which another project's `bkps3` shares."""
    endpoint, client = s3
    plain, secrets = offsite_config(endpoint)
    strangers = [f"backups/webstack/another-project/{SOURCE}/20200101T000000Z-scheduled/manifest.json",
                 f"backups/webstack/{SOURCE}/20200101T000000Z-scheduled/manifest.json"]   # the old layout
    for key in strangers:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
    chosen = [b["name"] for b in source.backups() if b["reason"] != "pre-deploy"]
    assert len(chosen) == 2, chosen
    for release in ("r2", "r3", "r4"):   # a new backend generation each: a pre-deploy backup each
        result = source.engine.up(secrets=secrets, **{"webstack:release": release, **plain,
                                                      "webstack:database.backups.keepPreDeploy": 1})
        assert "backing up database appdb before the update" in result.output
    local = source.backups()
    assert [b["name"] for b in local if b["reason"] != "pre-deploy"] == chosen     # none of them pushed out
    assert [(b["reason"], b["release"]) for b in local if b["reason"] == "pre-deploy"] == [("pre-deploy", "r4")]
    assert offsite_names(client, SOURCE) == sorted(b["name"] for b in local)
    for key in strangers:
        assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == 2, key
    listed = source.ops("backup", "--list", "--offsite")
    assert f"1 backup(s) under the old layout backups/webstack/{SOURCE}/" in listed.stderr, listed.stderr


def test_6_a_backup_moved_to_the_old_layout_is_still_restored_by_its_name(s3, source, fresh):
    _, client = s3
    name = [b["name"] for b in source.backups() if b["reason"] == "manual"][-1]   # test 4's, intact
    new, old = f"backups/webstack/{PROJECT}/{SOURCE}/{name}/", f"backups/webstack/{SOURCE}/{name}/"
    for item in client.list_objects_v2(Bucket=BUCKET, Prefix=new)["Contents"]:
        client.copy_object(Bucket=BUCKET, Key=old + item["Key"][len(new):], ServerSideEncryption="AES256",
                           CopySource={"Bucket": BUCKET, "Key": item["Key"]})
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    sql("DELETE FROM notes", **RENAMED)
    restored = fresh.ops("restore", "--from-s3", "--from-stack", SOURCE, "--name", name,
                         "--signing-key-file", signing_key_file(source))
    assert f"taking {name} from s3://{BUCKET}/{old[:-len(name) - 1]}" in restored.stderr, restored.stderr
    assert "only in the local backup" in fresh.notes()


def test_7_a_restore_refuses_another_stacks_backup_unless_from_stack_names_it(source, fresh):
    """The fresh stack's volume holds the backup test 2 fetched from bkps3: not a restore point of its own."""
    name = [b["name"] for b in fresh.backups() if b["stack"] == SOURCE][-1]
    refused = fresh.ops("restore", "--name", name, ok=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"is of stack '{SOURCE}' of project '{PROJECT}'; this restore takes backups of stack '{FRESH}'" \
        in refused.stderr and f"--from-stack {SOURCE}" in refused.stderr, refused.stderr
