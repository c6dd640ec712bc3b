"""Issue 21: backups are kept by kind (scheduled and manual apart from pre-deploy), offsite keys name the project
and the stack, and a restore takes only a backup of the project and stack it expects. The job's own code
(containers/backup/webstack_backup.py) on plain files and a stand-in bucket; the settings and the operator command
that feed it."""

from __future__ import annotations

import argparse
import io
import json
import shutil

import pytest

from components import backup_job
from ops.errors import OpsError
from ops.restore import source_command, source_signing_key
from tests.program import run_program
from tests.unit.test_backups import (FETCHED, GOOD, LEGACY, OURS, SIGNING_KEY, FakeBucket, bucket, make_backup,
                                     problems, settings, tool)  # noqa: F401 (tool is a fixture)

# --- settings ---------------------------------------------------------------------------------------------------


def test_each_kind_has_its_own_count_seven_scheduled_and_five_pre_deploy_by_default():
    assert settings().database.backups.model_dump() == {"keepScheduled": 7, "keepPreDeploy": 5,
                                                           "timeoutSeconds": 3600}
    kept = settings({"backups": {"keepScheduled": 30, "keepPreDeploy": 2}}).database.backups
    assert (kept.keepScheduled, kept.keepPreDeploy) == (30, 2)


@pytest.mark.parametrize("field", ["keepScheduled", "keepPreDeploy"])
def test_a_count_below_one_is_refused_with_its_key(field):
    assert f"webstack:database.backups.{field}: Input should be greater than or equal to 1" in problems(
        {"backups": {field: 0}})


def test_the_replaced_backups_to_keep_is_refused_naming_the_keys_that_took_its_place():
    message = problems({"backupsToKeep": 14})
    assert "webstack:database.backupsToKeep: was replaced by database.backups.keepScheduled (default 7" in message
    assert "database.backups.keepPreDeploy (default 5)" in message
    assert ("Fix: pulumi config rm --path webstack:database.backupsToKeep, then pulumi config set --path "
            "webstack:database.backups.keepScheduled 14") in message
    assert "Traceback" not in message and "unknown setting" not in message


def test_a_secret_database_object_keeps_its_old_count_out_of_the_message():
    message = problems({"backupsToKeep": 14}, secret=True)
    assert "webstack:database.backups.keepScheduled N" in message and "14" not in message


def test_the_job_gets_the_project_and_each_count(tool, monkeypatch):
    environment = backup_job.environment(settings({"backups": {"keepScheduled": 2, "keepPreDeploy": 1}}))
    assert {k: environment[k] for k in ("WEBSTACK_PROJECT", "WEBSTACK_STACK", "WEBSTACK_KEEP_SCHEDULED",
                                        "WEBSTACK_KEEP_PRE_DEPLOY")} == {
        "WEBSTACK_PROJECT": "webstack", "WEBSTACK_STACK": "dev", "WEBSTACK_KEEP_SCHEDULED": "2",
        "WEBSTACK_KEEP_PRE_DEPLOY": "1"}
    assert "WEBSTACK_KEEP" not in environment
    for key in ("WEBSTACK_KEEP_SCHEDULED", "WEBSTACK_KEEP_PRE_DEPLOY"):
        monkeypatch.setenv(key, environment[key])
    assert tool.keep_counts() == {"scheduled": 2, "pre-deploy": 1}


def test_the_program_gives_the_schedule_and_the_pre_deploy_backup_the_project_and_the_counts(dev):
    envs = dev.named("backups-schedule").inputs["envs"]
    assert {"WEBSTACK_PROJECT=webstack", "WEBSTACK_KEEP_SCHEDULED=7", "WEBSTACK_KEEP_PRE_DEPLOY=5"} <= set(envs)
    script = dev.named("backups-pre-deploy").inputs["create"]
    assert "-e WEBSTACK_PROJECT=webstack" in script and "-e WEBSTACK_KEEP_PRE_DEPLOY=5" in script


def test_the_program_takes_the_project_from_the_engine():
    run = run_program("dev", project="shop")
    assert "WEBSTACK_PROJECT=shop" in run.named("backups-schedule").inputs["envs"]


# --- retention by kind ------------------------------------------------------------------------------------------

def a_day_of_releases() -> tuple[list[str], list[str], list[str]]:
    """Issue 21's case: three nightly backups and a manual one, then seven releases in one day."""
    scheduled = [f"2026010{d}T031500Z-scheduled" for d in (1, 2, 3)]
    manual = ["20260103T120000Z-manual"]
    pre_deploy = [f"20260104T{h:02d}0000Z-pre-deploy" for h in range(9, 16)]
    return scheduled, manual, pre_deploy


def test_seven_releases_in_a_day_keep_the_scheduled_backups_each_kind_by_its_own_count(tool):
    scheduled, manual, pre_deploy = a_day_of_releases()
    for name in scheduled + manual + pre_deploy:
        make_backup(tool, name)
    removed = tool.prune({"scheduled": 3, "pre-deploy": 5})
    assert removed == [scheduled[0], *pre_deploy[:2]]   # manual backups count with the scheduled ones
    assert [b.name for b in tool.complete_backups()] == [*scheduled[1:], *manual, *pre_deploy[2:]]


def test_the_newest_backup_of_each_kind_always_stays(tool):
    scheduled, manual, pre_deploy = a_day_of_releases()
    for name in scheduled + manual + pre_deploy:
        make_backup(tool, name)
    tool.prune({"scheduled": 0, "pre-deploy": 0})
    assert [b.name for b in tool.complete_backups()] == [manual[0], pre_deploy[-1]]


def test_offsite_retention_is_by_kind_too_and_stays_in_the_stacks_own_prefix(tool):
    scheduled, manual, pre_deploy = a_day_of_releases()
    theirs = "webstack/shop/dev/"    # project shop's stack dev, in the same bucket
    fake = FakeBucket({f"{where}{name}/{part}": b"x" for where in (OURS, theirs, LEGACY)
                       for name in scheduled + manual + pre_deploy for part in ("database.dump", "manifest.json")})
    removed = tool.prune_offsite(fake, "b-1", OURS, {"scheduled": 3, "pre-deploy": 5})
    assert removed == [scheduled[0], *pre_deploy[:2]]
    assert tool.offsite_backups(fake, "b-1", OURS) == sorted([*scheduled[1:], *manual, *pre_deploy[2:]])
    for other in (theirs, LEGACY):   # another project's stack of the same name, and the old layout: untouched
        assert len(tool.offsite_backups(fake, "b-1", other)) == 11


def test_only_the_three_kinds_of_backup_are_taken_and_manual_ones_count_with_the_scheduled(tool):
    with pytest.raises(tool.Refused, match="one of scheduled, pre-deploy, manual"):
        tool.dump("nightly")
    assert [tool.pool_of(n) for n in ("20260101T000000Z-scheduled", "20260101T000000Z-manual",
                                      "20260101T000000Z-pre-deploy")] == ["scheduled", "scheduled", "pre-deploy"]


# --- offsite keys name the project and the stack ----------------------------------------------------------------

class UploadBucket(FakeBucket):
    """FakeBucket plus the calls upload() makes: it keeps what it is given, encrypted as asked."""

    def upload_file(self, path, bucket, key, ExtraArgs):
        with open(path, "rb") as handle:
            self.objects[key] = handle.read()
        self.heads = {**getattr(self, "heads", {}), key: {"ServerSideEncryption": ExtraArgs["ServerSideEncryption"],
                                                          "Metadata": ExtraArgs["Metadata"]}}

    def head_object(self, Bucket, Key):
        return self.heads[Key]

    def get_object(self, Bucket, Key):
        body = io.BytesIO(self.objects[Key])
        body.iter_chunks = lambda size: iter([body.read()])
        return {"Body": body}


def test_offsite_keys_are_prefix_project_stack(tool):
    config = {"bucket": "b-1", "prefix": "backups/webstack"}
    assert tool.s3_prefix(config, "shop", "prod") == "backups/webstack/shop/prod/"
    assert tool.s3_prefix(config, "blog", "prod") != tool.s3_prefix(config, "shop", "prod")
    assert tool.legacy_prefix(config, "prod") == "backups/webstack/prod/"


def test_an_upload_goes_under_the_project_and_the_stack_and_prunes_only_there(tool, monkeypatch):
    make_backup(tool, GOOD)
    backup = tool.BACKUPS / GOOD
    (backup / "manifest.hmac").write_text(tool.signature((backup / "manifest.json").read_bytes(),
                                                         SIGNING_KEY.encode()) + "\n")
    theirs = [f"webstack/shop/dev/2025{n:02d}01T000000Z-scheduled/manifest.json" for n in range(1, 13)]
    fake = UploadBucket({key: b"{}" for key in theirs})   # project shop's stack dev: twelve backups
    monkeypatch.setenv("WEBSTACK_OFFSITE", json.dumps({"bucket": "b-1", "prefix": "webstack"}))
    monkeypatch.setattr(tool, "s3_client", lambda config: fake)
    uploaded = tool.upload(backup)
    assert uploaded["prefix"] == f"{OURS}{GOOD}/" and uploaded["removed"] == []
    assert sorted(k for k in fake.objects if k.startswith(OURS)) == [
        f"{OURS}{GOOD}/{f}" for f in ("database.dump", "manifest.hmac", "manifest.json")]
    assert len([k for k in fake.objects if k.startswith("webstack/shop/dev/")]) == 12   # the other project's


def test_two_projects_stacks_of_one_name_in_one_bucket_do_not_restore_each_others_latest(tool, monkeypatch):
    fake = bucket(tool, monkeypatch, {"database.dump": b"PGDMP ours"}, name=GOOD)
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP theirs"}, name=FETCHED, project="shop",
           where="webstack/shop/dev/", key="their own key " * 4, into=fake)   # newer, and another project's
    assert tool.fetch(None, "webstack", "dev").name == f".incoming-{GOOD}"


def test_a_manifest_naming_another_project_is_refused_unless_that_project_is_the_source(tool, monkeypatch):
    # Under this stack's prefix and signed with its key, but naming project shop (a key copied between stacks).
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP good"}, project="shop")
    with pytest.raises(tool.Refused, match=r"is of stack 'dev' of project 'shop'; this restore takes backups of "
                                           r"stack 'dev' of project 'webstack'\. Refused, nothing was changed\. To "
                                           r"restore it on purpose: python -m ops restore --stack dev --from-stack "
                                           r"shop/dev"):
        tool.fetch(FETCHED, "webstack", "dev")
    assert not (tool.BACKUPS / f".incoming-{FETCHED}").exists()
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP good"}, project="shop", where="webstack/shop/dev/")
    assert tool.verify(tool.fetch(FETCHED, "shop", "dev"))["project"] == "shop"   # --from-stack shop/dev


def test_backups_under_the_old_layout_stay_restorable_and_are_never_pruned(tool, monkeypatch):
    fake = bucket(tool, monkeypatch, {"database.dump": b"PGDMP old"}, name=GOOD, project=None, where=LEGACY)
    assert tool.fetch(None, "webstack", "dev").name == f".incoming-{GOOD}"    # nothing under the new layout yet
    shutil.rmtree(tool.BACKUPS / f".incoming-{GOOD}")
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP new"}, name=FETCHED, into=fake)
    assert tool.fetch(None, "webstack", "dev").name == f".incoming-{FETCHED}"  # the newest under the new layout
    assert tool.fetch(GOOD, "webstack", "dev").name == f".incoming-{GOOD}"     # an old one, by its name
    assert tool.prune_offsite(fake, "b-1", OURS, {"scheduled": 1, "pre-deploy": 1}) == []
    assert tool.offsite_backups(fake, "b-1", LEGACY) == [GOOD]
    listed = tool.list_offsite()
    assert [m["name"] for m in listed["offsite"]] == [FETCHED]
    assert (listed["legacy"], listed["legacyPrefix"], listed["prefix"]) == ([GOOD], LEGACY, OURS)


def test_an_old_layout_backup_of_another_project_is_refused_by_its_signature(tool, monkeypatch):
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP theirs"}, project=None, where=LEGACY, key="k" * 48)
    with pytest.raises(tool.Refused, match="signature that does not match stack dev's key"):
        tool.fetch(None, "webstack", "dev")


# --- local restores take their own stack's backups --------------------------------------------------------------

def test_a_local_restore_takes_its_own_stacks_newest_and_another_stacks_only_as_the_source(tool):
    make_backup(tool, GOOD)
    make_backup(tool, FETCHED, stack="prod")   # fetched by an earlier `restore --from-s3 --from-stack prod`
    assert tool.choose(tool.BACKUPS, None, "webstack", "dev").name == GOOD
    with pytest.raises(tool.Refused, match=r"is of stack 'prod' of project 'webstack'.*--from-stack prod --name"):
        tool.choose(tool.BACKUPS, FETCHED, "webstack", "dev")
    assert tool.choose(tool.BACKUPS, FETCHED, "webstack", "prod").name == FETCHED
    assert tool.choose(tool.BACKUPS, None, "webstack", "prod").name == FETCHED
    with pytest.raises(tool.Refused, match="none of the 2 backups here is of stack qa of project webstack"):
        tool.choose(tool.BACKUPS, None, "webstack", "qa")


def test_a_manifest_from_before_manifests_named_the_project_is_taken_on_its_stack(tool):
    make_backup(tool, GOOD, project=None)
    assert tool.choose(tool.BACKUPS, None, "webstack", "dev").name == GOOD
    with pytest.raises(tool.Refused, match="is of stack 'dev'"):
        tool.choose(tool.BACKUPS, GOOD, "webstack", "prod")


def test_a_hostile_stack_name_in_a_manifest_gets_no_command_to_copy(tool):
    make_backup(tool, GOOD, stack="dev; docker rm -f x")
    with pytest.raises(tool.Refused) as refused:
        tool.choose(tool.BACKUPS, GOOD, "webstack", "dev")
    assert "Refused, nothing was changed." in str(refused.value) and "python -m ops" not in str(refused.value)


def test_restore_prepare_hands_the_source_project_and_stack_to_the_check(tool, monkeypatch):
    monkeypatch.setenv("WEBSTACK_DB_NAME", "appdb")
    monkeypatch.setenv("WEBSTACK_DB_USER", "app")
    make_backup(tool, GOOD, stack="prod", project="shop")
    with pytest.raises(tool.Refused, match="is of stack 'prod' of project 'shop'"):
        tool.restore_prepare(GOOD, False, tool.BACKUPS, "prod", verify_only=True)
    monkeypatch.setattr(tool, "table_data_entries", lambda dump: (_ for _ in ()).throw(tool.Refused("reached")))
    with pytest.raises(tool.Refused, match="reached"):   # past the check, to the restore itself
        tool.restore_prepare(GOOD, False, tool.BACKUPS, "prod", verify_only=True, source_project="shop")


# --- the operator command ---------------------------------------------------------------------------------------

def restore_args(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"from_stack": None, "from_s3": False, "signing_key_file": None, **given})


@pytest.mark.parametrize("given, job", [
    ({}, []),
    ({"from_s3": True}, ["--from-s3"]),
    ({"from_stack": "prod"}, ["--source", "/source", "--source-stack", "prod"]),
    ({"from_stack": "prod", "from_s3": True}, ["--from-s3", "--source-stack", "prod"]),
    ({"from_stack": "webstack/prod", "from_s3": True}, ["--from-s3", "--source-stack", "prod"]),
    ({"from_stack": "shop/prod", "from_s3": True}, ["--from-s3", "--source-stack", "prod", "--source-project", "shop"]),
])
def test_from_stack_names_a_stack_of_this_project_or_project_slash_stack(given, job):
    assert source_command(restore_args(**given), "webstack") == job


@pytest.mark.parametrize("value", ["a/b/c", "/prod", "prod/", "-x", "pr od", "shop/"])
def test_a_from_stack_that_is_no_stack_name_is_refused(value):
    with pytest.raises(OpsError, match="expected STACK or PROJECT/STACK"):
        source_command(restore_args(from_stack=value), "webstack")


def test_another_projects_offsite_backups_need_its_signing_key_from_a_file(tmp_path):
    with pytest.raises(OpsError, match="stack prod is of project shop.*--signing-key-file FILE"):
        source_signing_key(restore_args(from_stack="shop/prod", from_s3=True), "webstack")
    key = tmp_path / "key"
    key.write_text("k" * 48 + "\n")
    assert source_signing_key(restore_args(from_stack="shop/prod", signing_key_file=str(key)), "webstack") == "k" * 48
