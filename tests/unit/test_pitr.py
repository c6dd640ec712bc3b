"""Continuous archiving and point-in-time recovery (webstack:database.pitr): settings, the rendered configuration,
the program's resources and the job's pure decisions (which target, which base backup). The recovery itself runs
live (tests/live/test_pitr.py)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from components import backup_job, rendering
from components.settings import Settings
from components.settings_loader import ConfigError, load_settings
from tests.program import run_program
from tests.stack_config import PROJECT_DIR
from tests.unit.test_backups import FakeBucket, make_backup, tool  # noqa: F401 - the fixture

PITR = {"webstack:database": {"pitr": {"enabled": True}}}


def settings(**database: object) -> Settings:
    return load_settings({"release": "v1", "database": json.dumps(database)}, set(), "dev", PROJECT_DIR)


def test_off_by_default_and_nothing_of_it_is_rendered_or_mounted():
    plain = settings()
    assert plain.database.pitr.enabled is False
    assert "archive_command" not in rendering.render_postgresql_conf(plain.database)
    assert backup_job.pgbackrest_environment(plain) == {}
    assert not any("pgdata" in a for a in backup_job.run_args(plain, "img", ["dump"]))


def test_on_it_archives_with_pgbackrest_every_timeout_and_records_commit_times():
    conf = rendering.render_postgresql_conf(settings(pitr={"enabled": True, "archiveTimeoutSeconds": 30}).database)
    assert "archive_mode = on" in conf and "archive_command = 'pgbackrest archive-push %p'" in conf
    assert "archive_timeout = 30 " in conf and "track_commit_timestamp = on" in conf


def test_pitr_without_a_backup_schedule_is_refused_with_the_path_and_the_fix():
    with pytest.raises(ConfigError) as refused:
        settings(pitr={"enabled": True}, backupSchedule="off")
    message = str(refused.value)
    assert "database.backupSchedule" in message and "daily 03:15" in message and "pitr.enabled false" in message


@pytest.mark.parametrize("field,value", [("archiveTimeoutSeconds", 5), ("archiveTimeoutSeconds", 7200),
                                         ("keepFull", 0)])
def test_out_of_range_values_are_refused_with_their_key(field, value):
    with pytest.raises(ConfigError, match=rf"database\.pitr\.{field}"):
        settings(pitr={"enabled": True, field: value})


def test_jobs_read_the_data_volume_read_only_and_get_the_repository_and_retention():
    on = settings(pitr={"enabled": True, "keepFull": 3})
    args = backup_job.run_args(on, "img", ["base-backup"])
    assert "webstack-dev-pgdata:/var/lib/postgresql/data:ro" in args
    assert "PGBACKREST_REPO1_PATH=/backups/pgbackrest" in args and "PGBACKREST_REPO1_RETENTION_FULL=3" in args
    # The database container gets the same options but not the retention: changing it replaces nothing.
    assert "PGBACKREST_REPO1_RETENTION_FULL" not in backup_job.pgbackrest_environment(on)


def test_the_program_archives_into_the_backups_volume_and_checks_the_archive_after_each_new_database():
    run = run_program("dev", PITR)
    db = run.named("database-postgres").inputs
    assert {"source": "webstack-dev-backups", "target": "/backups", "type": "volume"} in [
        {k: m[k] for k in ("source", "target", "type")} for m in db["mounts"]]
    assert "PGBACKREST_STANZA=webstack" in db["envs"]
    init = run.named("archiving-init")
    assert "pitr-init" in init.inputs["create"] and "database-postgres" in " ".join(init.dependencies)
    assert "restore-point --reason pre-deploy" in run.named("backups-pre-deploy").inputs["create"]
    schedule = run.named("backups-schedule").inputs
    assert any(m["target"] == "/var/lib/postgresql/data" and m.get("readOnly") for m in schedule["mounts"])


def test_without_pitr_the_program_has_no_archiving_step_and_dumps_before_an_update():
    run = run_program("dev")
    assert not [r for r in run.resources if r.name == "archiving-init"]
    assert "dump --reason pre-deploy" in run.named("backups-pre-deploy").inputs["create"]


# --- the job's decisions --------------------------------------------------------------------------------------

def base(label: str, stop: dt.datetime) -> dict:
    return {"label": label, "timestamp": {"start": stop.timestamp() - 5, "stop": stop.timestamp()}}


NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
BASES = [base("20261201-000000F", NOW - dt.timedelta(days=2)), base("20261202-000000F", NOW - dt.timedelta(days=1))]


def test_a_time_without_a_zone_is_utc_and_a_time_in_the_future_is_refused(tool):
    assert tool.recovery_time("2026-01-02 10:15:00") == "2026-01-02 10:15:00.000000+00"
    assert tool.recovery_time("2026-01-02T11:15:00+01:00") == "2026-01-02 10:15:00.000000+00"
    with pytest.raises(tool.Refused, match="in the future"):
        tool.recovery_time((NOW + dt.timedelta(hours=1)).isoformat())
    with pytest.raises(tool.Refused, match="is not a time like"):
        tool.recovery_time("yesterday")


def test_a_time_before_the_oldest_base_backup_names_the_earliest_recoverable_time(tool, monkeypatch):
    monkeypatch.setattr(tool, "base_backups", lambda repo=None: BASES)
    too_early = (NOW - dt.timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    with pytest.raises(tool.Refused) as refused:
        tool.pitr_target(too_early, None)
    oldest = (NOW - dt.timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"the earliest recoverable time is {oldest} UTC" in str(refused.value)
    assert "keepFull" in str(refused.value)


def test_a_restore_point_recovers_from_the_newest_base_backup_taken_before_it(tool, monkeypatch):
    monkeypatch.setattr(tool, "base_backups", lambda repo=None: BASES)
    point = {"created": (NOW - dt.timedelta(hours=36)).isoformat(),
             "restorePoint": {"name": "webstack-x-pre-deploy"}}
    options, label = tool.pitr_target(None, point)
    assert options == ["--type=name", "--target=webstack-x-pre-deploy", "--target-action=promote",
                       "--set=20261201-000000F"]
    assert label == "restore point webstack-x-pre-deploy"
    options, _ = tool.pitr_target(None, None)
    assert options == ["--type=default"]


def test_before_release_takes_the_newest_pre_deploy_point_of_that_release_of_this_stack(tool):
    for name, release, stack in [("20260101T000000Z-pre-deploy", "r2", "dev"), ("20260102T000000Z-pre-deploy", "r2", "dev"),
                                 ("20260103T000000Z-pre-deploy", "r2", "other"), ("20260104T000000Z-pre-deploy", "r3", "dev")]:
        make_backup(tool, name, stack=stack)
        path = tool.BACKUPS / name / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "release": release}))
    assert tool.pre_deploy_point("r2", tool.BACKUPS, "webstack", "dev").name == "20260102T000000Z-pre-deploy"
    with pytest.raises(tool.Refused, match="releases with one: r2, r3"):
        tool.pre_deploy_point("r9", tool.BACKUPS, "webstack", "dev")


def test_to_time_needs_an_archive_and_before_release_this_stacks_own_volume(tool, monkeypatch):
    monkeypatch.setenv("WEBSTACK_DB_NAME", "appdb")
    monkeypatch.setenv("WEBSTACK_DB_USER", "app")
    monkeypatch.delenv("PGBACKREST_STANZA", raising=False)
    with pytest.raises(tool.Refused, match="pitr.enabled true"):
        tool.restore_prepare(None, False, tool.BACKUPS, "dev", False, to_time="2026-01-01 00:00:00")
    with pytest.raises(tool.Refused, match="pitr.enabled true"):   # another stack's volume holds no archive
        tool.restore_prepare(None, False, tool.BACKUPS, "other", False, to_time="2026-01-01 00:00:00")
    with pytest.raises(tool.Refused, match="own pre-deploy restore point"):
        tool.restore_prepare(None, True, tool.BACKUPS, "dev", False, before_release="r1")


# --- the archive shipped offsite (a lost host) ---------------------------------------------------------------

class ShippingBucket(FakeBucket):
    """FakeBucket with the calls the archive's mirror makes too."""

    def __init__(self):
        super().__init__({})

    def upload_file(self, path, bucket, key, ExtraArgs):
        assert ExtraArgs["ServerSideEncryption"] == "AES256"
        self.objects[key] = open(path, "rb").read()

    def put_object(self, Bucket, Key, Body, ServerSideEncryption):
        self.objects[Key] = Body if isinstance(Body, bytes) else Body.encode()

    def delete_object(self, Bucket, Key):
        del self.objects[Key]


@pytest.fixture
def shipping(tool, tmp_path, monkeypatch):
    repo = tmp_path / "pgbackrest"
    for relative, data in {"archive/webstack/archive.info": b"info",
                           "archive/webstack/15-1/0000000100000000/000000010000000000000001-ab12.gz": b"wal 1",
                           "backup/webstack/backup.info": b"backups",
                           "backup/webstack/20261203-100000F/pg_data/base/5/1259.gz": b"a table"}.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_bytes(data)
    fake = ShippingBucket()
    monkeypatch.setattr(tool, "s3_client", lambda config: fake)
    monkeypatch.setenv("WEBSTACK_OFFSITE", json.dumps({"bucket": "b-1", "prefix": "webstack"}))
    monkeypatch.setenv("WEBSTACK_SIGNING_KEY", "k" * 48)
    monkeypatch.setenv("PGBACKREST_REPO1_PATH", str(repo))
    return tool, repo, fake


def files_under(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_archive_is_mirrored_under_the_project_and_stack_and_comes_back_file_for_file(shipping):
    tool, repo, fake = shipping
    assert tool.ship_archive() == 4
    assert tool.ship_archive() == 0   # nothing changed: nothing sent again
    assert all(k.startswith("webstack/webstack/dev/pgbackrest/") for k in fake.objects)
    fetched = tool.fetch_archive("webstack", "dev")
    assert files_under(fetched) == files_under(repo)


def test_an_expired_file_leaves_the_mirror_and_a_new_segment_joins_it(shipping):
    tool, repo, fake = shipping
    tool.ship_archive()
    (repo / "archive/webstack/15-1/0000000100000000/000000010000000000000001-ab12.gz").unlink()
    (repo / "archive/webstack/15-1/0000000100000000/000000010000000000000002-cd34.gz").write_bytes(b"wal 2")
    assert tool.ship_archive() == 2
    names = [k.rsplit("/", 1)[1] for k in fake.objects]
    assert "000000010000000000000002-cd34.gz" in names and "000000010000000000000001-ab12.gz" not in names
    assert files_under(tool.fetch_archive("webstack", "dev")) == files_under(repo)


def test_a_changed_file_an_unsigned_index_or_another_stacks_index_is_refused(shipping, monkeypatch):
    tool, repo, fake = shipping
    tool.ship_archive()
    prefix = "webstack/webstack/dev/pgbackrest/"
    fake.objects[prefix + "backup/webstack/backup.info"] = b"changed in the bucket"
    with pytest.raises(tool.Refused, match="does not match its SHA-256 in the signed index"):
        tool.fetch_archive("webstack", "dev")
    monkeypatch.setenv("WEBSTACK_SIGNING_KEY", "o" * 48)   # another stack's key
    with pytest.raises(tool.Refused, match="not signed with stack dev's key"):
        tool.fetch_archive("webstack", "dev")
    assert tool.fetch_archive("webstack", "nothing-there") is None


def test_an_index_naming_a_path_outside_the_repository_is_refused(shipping):
    tool, repo, fake = shipping
    tool.ship_archive()
    prefix = "webstack/webstack/dev/pgbackrest/"
    index = json.loads(fake.objects[prefix + "index.json"])
    index["files"]["archive/webstack/../../../etc/cron.d/x"] = {"size": 1, "sha256": "0" * 64}
    body = (json.dumps(index, sort_keys=True) + "\n").encode()
    fake.objects[prefix + "index.json"] = body
    fake.objects[prefix + "index.hmac"] = tool.signature(body, b"k" * 48).encode()
    with pytest.raises(tool.Refused, match="no pgBackRest file"):
        tool.fetch_archive("webstack", "dev")


def test_a_file_that_goes_away_mid_pass_and_temporary_files_do_not_stop_the_mirror(shipping, monkeypatch):
    """pgBackRest writes each segment under a temporary name and renames it; expire removes files. A pass that met
    either used to fail whole, and the index (what a lost host recovers from) stopped moving."""
    tool, repo, fake = shipping
    (repo / "archive/webstack/15-1/0000000100000000/000000010000000000000002-cd34.gz.pgbackrest.tmp").write_bytes(b"half")
    gone = repo / "backup/webstack/backup.info"
    real = tool.sha256_of

    def vanishing(path):
        if path == gone:
            raise FileNotFoundError(path)
        return real(path)

    monkeypatch.setattr(tool, "sha256_of", vanishing)
    assert tool.ship_archive() == 3
    index = json.loads(fake.objects["webstack/webstack/dev/pgbackrest/index.json"])
    assert "backup/webstack/backup.info" not in index["files"]
    assert not [name for name in index["files"] if name.endswith(".tmp")]
    monkeypatch.setattr(tool, "sha256_of", real)
    assert tool.ship_archive() == 1   # the next pass sends what is there now


def test_the_schedule_finishes_a_written_segment_every_archive_timeout_and_leaves_an_idle_one(tool, monkeypatch):
    monkeypatch.setenv("WEBSTACK_ARCHIVE_TIMEOUT", "30")
    asked, now = [], [1000.0]
    monkeypatch.setattr(tool.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(tool, "psql", lambda sql: asked.append(sql) or "0/3000000")
    clock = tool.SegmentClock()
    clock.tick()
    now[0] += 10
    clock.tick()                      # within the timeout: nothing asked
    now[0] += 25
    clock.tick()
    assert len(asked) == 2 and "pg_switch_wal()" in asked[1] and "> E'0/3000000'::pg_lsn" in asked[1]
