"""Backups: settings validation, the job's container and script, the program's ordering, and the job's own logic
(containers/backup/webstack_backup.py: schedules, checksum verification, retention) on plain files."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import time

import pytest

from components import backups, backup_job, rendering
from components.settings_loader import ConfigError, load_settings
from tests.program import is_secret, run_program
from tests.stack_config import PROJECT_DIR

OFFSITE = {"bucket": "acme-backups", "endpoint": "http://127.0.0.1:9000", "region": "eu-central-1"}
KEYS = {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI-example"}


def settings(database: dict | None = None, secret: bool = False):
    values = {"release": "r7", **({"database": database} if database is not None else {})}
    return load_settings(values, {"database"} if secret else set(), "dev", PROJECT_DIR)


def problems(database: dict, secret: bool = False) -> str:
    with pytest.raises(ConfigError) as raised:
        settings(database, secret)
    return str(raised.value)


# --- settings ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["daily 03:15", "daily 23:59", "every 30m", "every 6h", "off", "daily  00:00"])
def test_valid_schedules(schedule):
    assert settings({"backupSchedule": schedule}).database.backupSchedule == " ".join(schedule.split())


@pytest.mark.parametrize("schedule", ["daily 24:00", "daily 3:15", "every 0m", "every 5s", "15 3 * * *", "hourly",
                                      "daily 03:15 extra"])
def test_invalid_schedules_name_the_key_and_the_forms(schedule):
    message = problems({"backupSchedule": schedule})
    assert "webstack:database.backupSchedule" in message and "'daily HH:MM'" in message


def test_offsite_fields_are_validated_with_their_key_paths():
    message = problems({"offsite": {"bucket": "Bad_Bucket", "endpoint": "ftp://x", "region": "mars"}})
    assert "webstack:database.offsite.bucket: 'Bad_Bucket' is not an S3 bucket name" in message
    assert "webstack:database.offsite.endpoint:" in message and "webstack:database.offsite.region:" in message
    assert "webstack:database.offsite: " not in message


def test_offsite_bucket_is_required():
    assert "webstack:database.offsite.bucket: is required" in problems({"offsite": {"region": "us-east-1"}})


def test_offsite_credentials_in_plain_config_are_refused_without_echoing_them():
    message = problems({"offsite": {**OFFSITE, **KEYS}})
    assert "webstack:database.offsite.accessKeyId: is stored in plain text; it must be a secret" in message
    assert "webstack:database.offsite.secretAccessKey: is stored in plain text" in message
    assert KEYS["secretAccessKey"] not in message and KEYS["accessKeyId"] not in message


def test_offsite_credentials_as_secrets_are_accepted_and_need_each_other():
    offsite = settings({"offsite": {**OFFSITE, **KEYS}}, secret=True).database.offsite
    assert offsite.secretAccessKey.get_secret_value() == KEYS["secretAccessKey"]
    message = problems({"offsite": {**OFFSITE, "accessKeyId": "AKID"}}, secret=True)
    assert "webstack:database.offsite.secretAccessKey: is required with the other key" in message
    assert "AKID" not in message


# --- the job ------------------------------------------------------------------------------------------------

def test_the_job_needs_no_network_without_offsite_and_the_hosts_for_a_loopback_endpoint():
    assert backup_job.network(settings()) == "none"
    assert backup_job.network(settings({"offsite": OFFSITE})) == "host"
    assert backup_job.network(settings({"offsite": {**OFFSITE, "endpoint": "https://s3.example.com"}})) == "bridge"
    assert backup_job.network(settings({"offsite": {"bucket": "b-1"}})) == "bridge"   # AWS itself


def test_the_job_container_is_hardened_and_carries_no_secret():
    s = settings({"offsite": {**OFFSITE, **KEYS}}, secret=True)
    args = backup_job.run_args(s, "img:1", ["dump"], volumes=["uploads"], credentials_on_stdin=True)
    text = " ".join(args)
    for flag in ("--read-only", "--cap-drop ALL", "--security-opt no-new-privileges:true", "--user 999:999",
                 "--group-add 1500", "--pids-limit 256", "--memory 512m", "-v uploads:/volumes/uploads:ro",
                 "-v webstack-dev-pgsocket:/var/run/postgresql:nocopy", "-v webstack-dev-backups:/backups", "-i img:1 dump"):
        assert flag in text, flag
    assert KEYS["secretAccessKey"] not in text and KEYS["accessKeyId"] not in text
    assert "WEBSTACK_VOLUMES=uploads" in args


def test_finding_4_the_configured_offsite_keys_win_and_the_operators_aws_keys_reach_no_container(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "operator-id", "AWS_SECRET_ACCESS_KEY": "operator-secret",
                       "AWS_SESSION_TOKEN": "operator-token"}.items():
        monkeypatch.setenv(key, value)
    assert backup_job.offsite_credentials(settings({"offsite": {**OFFSITE, **KEYS}}, secret=True)) == KEYS
    assert backup_job.offsite_credentials(settings({"offsite": OFFSITE})) is None   # the target's own chain
    assert backup_job.offsite_credentials(settings()) is None
    run = run_program("dev", overrides={"webstack:database": {"offsite": OFFSITE}})
    declared = json.dumps([r.inputs for r in run.resources])
    assert "operator-" not in declared


def test_finding_12_plain_http_is_refused_for_an_endpoint_off_the_target():
    message = problems({"offsite": {"bucket": "b-1", "endpoint": "http://s3.example.com:9000"}})
    assert "webstack:database.offsite.endpoint: 'http://s3.example.com:9000' is plain http:// to another machine" \
        in message
    assert "pulumi config set --path webstack:database.offsite.endpoint https://" in message
    for endpoint in ("http://127.0.0.1:9000", "http://localhost:9000", "https://s3.example.com"):
        assert settings({"offsite": {"bucket": "b-1", "endpoint": endpoint}}).database.offsite.endpoint == endpoint


def pre_deploy_script(s, rollback: bool = False) -> str:
    if rollback:   # python -m ops rollback pins the release's images
        s = load_settings({"release": s.release, "images": {"pinned": {
            "release": s.release, "backend": "sha256:" + "a" * 64, "web": "sha256:" + "b" * 64}}}, set(), "dev", PROJECT_DIR)
    return backups.pre_deploy_script(s, "webstack-dev-backup:abc", database_image="webstack-dev-db:d1")


def test_the_pre_deploy_script_is_valid_sh_and_guards_the_identity(tmp_path):
    script = pre_deploy_script(settings({"name": "shop"}))
    path = tmp_path / "pre-deploy.sh"
    path.write_text(script)
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True).returncode == 0
    assert "[ \"$old_name\" != shop ]" in script
    assert "docker run --rm --name webstack-dev-backup-pre-deploy --user 999:999" in script


def fake_docker(tmp_path, env: str, status: str = "running", stdin_to: str = "", exists: bool = True):
    """A `docker` on PATH that answers inspect like a target whose database container is in `status` (docker's
    .State.Status; .State.Running is true for running, paused and restarting, as dockerd reports it), or has no
    database container (exists=False), and records a run (or, with stdin_to, what the run read on stdin).
    The container runs the image ID $DB_IMAGE; `docker image inspect` of the database image's tag answers
    $DB_TAG_IMAGE (default the same ID)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    running = "true" if status in ("running", "paused", "restarting") else "false"
    inspect = (f"case \"$3\" in *State.Running*) echo {running};; *State.Status*) echo {status};; "
               f"*.Image*) echo \"$DB_IMAGE\";; *) printf '{env}';; esac;;" if exists
               else "echo 'Error: No such object' >&2; exit 1;;")
    (bin_dir / "docker").write_text(
        # No restore of the stack runs ($RESTORE_RUNNING=true: one does).
        "#!/bin/sh\ncase \"$4\" in *-restore-job) [ \"$RESTORE_RUNNING\" = true ] && echo true && exit 0;"
        " echo 'Error: No such object' >&2; exit 1;; esac\n"
        f"case \"$1 $2\" in\n  \"inspect -f\") {inspect}\n"
        "  \"image inspect\") echo \"${DB_TAG_IMAGE-$DB_IMAGE}\";;\n"
        + (f"  run*) cat > {tmp_path}/{stdin_to};;\nesac\n" if stdin_to else f"  run*) echo ran >> {tmp_path}/runs;;\nesac\n"))
    (bin_dir / "docker").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_the_pre_deploy_script_refuses_a_renamed_database_before_any_backup(tmp_path):
    environment = fake_docker(tmp_path, r"WEBSTACK_DB_NAME=appdb\nWEBSTACK_DB_USER=app\n")
    done = subprocess.run(["sh", "-c", pre_deploy_script(settings({"name": "shop"}))], env=environment,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "holds data as database 'appdb', role 'app'" in done.stderr
    assert "pulumi config set --path webstack:database.name appdb" in done.stderr
    assert not (tmp_path / "runs").exists()
    same = subprocess.run(["sh", "-c", pre_deploy_script(settings())], env=environment, capture_output=True, text=True)
    assert same.returncode == 0 and (tmp_path / "runs").read_text() == "ran\n", same.stderr


IDENTITY = r"WEBSTACK_DB_NAME=appdb\nWEBSTACK_DB_USER=app\n"


@pytest.mark.parametrize("status", ["exited", "created", "paused", "restarting", "dead"])
def test_a_database_that_is_not_running_stops_the_update_before_anything_changes(tmp_path, status):
    """Issue 21: a stopped database only logged a warning and the update went on to replace it, unbacked."""
    done = subprocess.run(["sh", "-c", pre_deploy_script(settings())], env=fake_docker(tmp_path, IDENTITY, status),
                          capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"the database container webstack-dev-db exists but is {status}, not running" in done.stderr
    assert "The update stops here; nothing was changed" in done.stderr
    for fix in ("docker start webstack-dev-db", "docker logs --tail 50 webstack-dev-db",
                "python -m ops logs --stack dev database", "docker rm -f webstack-dev-db", "pulumi up --refresh"):
        assert fix in done.stderr, fix
    assert not (tmp_path / "runs").exists()


def test_a_stopped_database_stops_a_rollback_that_keeps_its_image_too(tmp_path):
    environment = {**fake_docker(tmp_path, IDENTITY, "exited"), "DB_IMAGE": "sha256:" + "1" * 64}
    done = subprocess.run(["sh", "-c", pre_deploy_script(settings(), rollback=True)], env=environment,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "exists but is exited" in done.stderr and "no backup needed" not in done.stdout


def test_the_first_deploy_has_no_database_container_and_goes_on_without_a_backup(tmp_path):
    done = subprocess.run(["sh", "-c", pre_deploy_script(settings())],
                          env=fake_docker(tmp_path, IDENTITY, exists=False), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "no database container webstack-dev-db yet (first deploy): nothing to back up" in done.stdout
    assert not (tmp_path / "runs").exists()


def test_the_identity_guard_speaks_first_even_when_the_database_is_stopped(tmp_path):
    done = subprocess.run(["sh", "-c", pre_deploy_script(settings({"name": "shop"}))],
                          env=fake_docker(tmp_path, IDENTITY, "exited"), capture_output=True, text=True)
    assert done.returncode == 1 and "holds data as database 'appdb', role 'app'" in done.stderr
    assert "not running" not in done.stderr


def test_a_rollback_that_keeps_the_database_image_takes_no_backup_and_anything_else_does(tmp_path):
    """Compared by image ID: the container runs an ID, and its tag may hold a rebuild on a new base image."""
    environment = fake_docker(tmp_path, r"WEBSTACK_DB_NAME=appdb\nWEBSTACK_DB_USER=app\n")
    runs = tmp_path / "runs"
    old, new = "sha256:" + "1" * 64, "sha256:" + "2" * 64

    def deploy(rollback: bool, running_image: str, tag_image: str) -> subprocess.CompletedProcess:
        runs.unlink(missing_ok=True)
        return subprocess.run(["sh", "-c", pre_deploy_script(settings(), rollback=rollback)],
                              env={**environment, "DB_IMAGE": running_image, "DB_TAG_IMAGE": tag_image},
                              capture_output=True, text=True)

    skipped = deploy(True, old, old)
    assert skipped.returncode == 0 and "no backup needed" in skipped.stdout and not runs.exists()
    assert deploy(True, old, new).returncode == 0 and runs.exists()     # the database image was rebuilt
    assert deploy(True, old, "").returncode == 0 and runs.exists()      # no such image: never "the same"
    assert deploy(False, old, old).returncode == 0 and runs.exists()    # an ordinary release


def test_only_a_rollback_renders_the_shortcut(dev):
    assert "no backup needed" not in dev.named("backups-pre-deploy").inputs["create"]
    pinned = {"release": "dev-1", "backend": "sha256:" + "a" * 64, "web": "sha256:" + "b" * 64}
    rolled_back = run_program("dev", overrides={"webstack:images": {"keep": 5, "pinned": pinned}})
    script = rolled_back.named("backups-pre-deploy").inputs["create"]
    assert "no backup needed" in script and "docker image inspect -f '{{.Id}}' webstack-dev-db:" in script


# --- the program ----------------------------------------------------------------------------------------------

def test_the_database_and_every_container_of_a_release_start_only_after_the_pre_deploy_backup(dev):
    backup = dev.named("backups-pre-deploy")
    assert backup.urn in dev.named("database-postgres").dependencies
    for role in ("backend", "web"):       # a failed backup leaves nothing of the release behind
        for container in dev.containers()[role]:
            assert backup.urn in container.dependencies, container.name
    assert "webstack-dev-backup:" in backup.inputs["create"]
    assert dev.outputs["backups"]["volume"] == "webstack-dev-backups"
    volume = dev.named("backups-volume")
    assert volume.retain_on_delete and not volume.protect


def test_the_schedule_container_is_hardened_on_no_network_without_offsite(dev):
    schedule = dev.named("backups-schedule")
    inputs = schedule.inputs
    assert inputs["readOnly"] is True and inputs["user"] == "999:999" and inputs["networkMode"] == "none"
    assert inputs["capabilities"]["drops"] == ["ALL"] and inputs["healthcheck"]["tests"][1:] == [
        "/usr/local/bin/webstack-backup", "health"]
    assert "WEBSTACK_SCHEDULE=daily 03:15" in inputs["envs"]
    assert not [e for e in inputs["envs"] if e.startswith("WEBSTACK_RELEASE=")]   # a release does not replace it
    assert "no-new-privileges:true" in inputs["securityOpts"] and inputs["memory"] == inputs["memorySwap"] > 0
    assert inputs["restart"] == "unless-stopped" and inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}
    assert "docker.sock" not in str(inputs["mounts"])


def test_the_policy_pack_passes_the_declared_schedule_container(dev):
    from tests.unit.test_policy import rules, violations

    schedule = dev.named("backups-schedule").inputs
    assert violations(rules.CONTAINER, schedule) == []
    as_web = {**schedule, "labels": [{"label": "webstack.role", "value": "web"}]}
    assert [v for v in violations(rules.CONTAINER, as_web) if v.startswith("socket-volume")], as_web


def test_finding_11_with_offsite_on_the_pre_deploy_backup_has_no_secret_stdin_so_its_output_shows():
    """Issue 19: the command provider withholds all output of a command whose stdin is a secret (the identity
    guard's message included); the job's secrets travel in the secret script text instead."""
    run = run_program("dev", secret_overrides={"webstack:database": {"offsite": {**OFFSITE, **KEYS}}})
    backup, schedule = run.named("backups-pre-deploy"), run.named("backups-schedule")
    assert backup.inputs.get("stdin") is None and is_secret(backup.secret_inputs["create"])
    assert is_secret(schedule.secret_inputs["envs"]) and schedule.inputs["networkMode"] == "host"
    script = backup.inputs["create"]
    assert script.startswith("# The pre-deploy backup's launcher") and "exec sh -c " in script
    assert json.loads(script.split("<<'WEBSTACK_BACKUP_SECRETS'\n")[1].split("\n")[0]) == {
        **KEYS, "signingKey": "r" * 48}


def test_finding_11_the_identity_guard_speaks_and_the_job_reads_its_secrets_from_the_launcher(tmp_path):
    s = settings({"offsite": {**OFFSITE, **KEYS}}, secret=True)
    secrets = backup_job.job_secrets(s, "k" * 48)

    def launcher(name: str) -> str:
        named = settings({"name": name, "offsite": {**OFFSITE, **KEYS}}, secret=True)
        body = backups.pre_deploy_script(named, "webstack-dev-backup:abc", database_image="webstack-dev-db:d1")
        return rendering.render("host/backup-pre-deploy-secrets.sh.j2", body=body, secrets_json=json.dumps(secrets))

    environment = fake_docker(tmp_path, r"WEBSTACK_DB_NAME=appdb\nWEBSTACK_DB_USER=app\n", stdin_to="runs")
    guarded = subprocess.run(["sh", "-c", launcher("shop")], env=environment, capture_output=True, text=True)
    assert guarded.returncode == 1 and "holds data as database 'appdb', role 'app'" in guarded.stderr
    done = subprocess.run(["sh", "-c", launcher("appdb")], env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "runs").read_text()) == secrets


def test_no_schedule_container_when_the_schedule_is_off():
    run = run_program("dev", overrides={"webstack:database": {"backupSchedule": "off"}})
    assert not [r for r in run.resources if r.name == "backups-schedule"]


# --- the job's own logic (containers/backup/webstack_backup.py) ----------------------------------------------

@pytest.fixture
def tool(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("webstack_backup", PROJECT_DIR / "containers/backup/webstack_backup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "BACKUPS", tmp_path)
    monkeypatch.setenv("WEBSTACK_PROJECT", "webstack")   # the job runs as stack dev of project webstack
    monkeypatch.setenv("WEBSTACK_STACK", "dev")
    return module


def make_backup(tool, name: str, content: bytes = b"PGDMP dump", stack: str = "dev",
                project: str | None = "webstack") -> None:
    """A complete backup as dump() writes it; project=None: a manifest from before manifests named the project."""
    directory = tool.BACKUPS / name
    directory.mkdir()
    (directory / "database.dump").write_bytes(content)
    entry = {"size": len(content), "sha256": tool.sha256_of(directory / "database.dump")}
    (directory / "manifest.json").write_text(json.dumps({
        "name": name, "stack": stack, **({"project": project} if project else {}), "reason": name.split("-", 1)[1],
        "files": {"database.dump": entry}, "size": len(content), "sha256": entry["sha256"]}))


def test_the_schedule_forms_give_the_next_run_in_utc(tool):
    now = dt.datetime(2026, 1, 2, 10, 0, 30, tzinfo=dt.timezone.utc)
    assert tool.next_run("daily 03:15", now) == dt.datetime(2026, 1, 3, 3, 15, tzinfo=dt.timezone.utc)
    assert tool.next_run("daily 10:05", now) == dt.datetime(2026, 1, 2, 10, 5, tzinfo=dt.timezone.utc)
    assert tool.next_run("every 30m", now) == now + dt.timedelta(minutes=30)
    assert tool.next_run("every 2h", now) == now + dt.timedelta(hours=2)
    with pytest.raises(tool.Refused):
        tool.next_run("daily 3:15", now)


def test_a_changed_byte_is_found_and_named(tool):
    make_backup(tool, "20260101T000000Z-manual")
    backup = tool.BACKUPS / "20260101T000000Z-manual"
    assert tool.verify(backup)["name"] == backup.name
    (backup / "database.dump").write_bytes(b"PGDMP dumX")
    with pytest.raises(tool.Refused, match="is corrupted: database.dump has SHA-256 .* nothing was changed"):
        tool.verify(backup)


def test_retention_removes_the_oldest_complete_backups_and_never_the_last(tool):
    names = [f"2026010{i}T000000Z-scheduled" for i in range(1, 6)]
    for name in names:
        make_backup(tool, name)
    (tool.BACKUPS / ".partial-20260106T000000Z-manual").mkdir()    # incomplete: not counted, not restorable
    assert tool.prune({"scheduled": 3, "pre-deploy": 5}) == names[:2]
    assert [b.name for b in tool.complete_backups()] == names[2:]
    assert tool.prune({"scheduled": 0, "pre-deploy": 0}) == names[2:4]    # 0 is 1: the newest always stays
    assert [b.name for b in tool.complete_backups()] == names[4:]


@pytest.mark.parametrize("command", [["dump"], ["list"], ["restore-prepare"], ["switch", "--scratch", "x"]])
def test_every_job_command_takes_the_credentials_on_stdin(tool, command, monkeypatch):
    """ops passes --credentials-stdin to every job of a stack with offsite: no command may refuse it."""
    seen = {}
    monkeypatch.setattr(tool, "read_credentials_from_stdin", lambda: seen.setdefault("read", True))
    monkeypatch.setattr(tool, "dump", lambda reason: {})
    monkeypatch.setattr(tool, "complete_backups", lambda: [])
    monkeypatch.setattr(tool, "restore_prepare", lambda *a: {})
    monkeypatch.setattr(tool, "switch", lambda scratch: {})
    monkeypatch.setenv("WEBSTACK_STACK", "s")
    assert tool.main([*command, "--credentials-stdin"]) == 0 and seen == {"read": True}


# --- issue 19: hostile names and a hostile bucket ---------------------------------------------------------------

HOSTILE_LISTING = """;
; Archive created at 2026-01-01 00:00:00 UTC
;
215; 1259 16386 TABLE public x";COPY(SELECT(1))TO/**/PROGRAM'touch${IFS}/tmp/p';-- app
3355; 0 16386 TABLE DATA public x";COPY(SELECT(1))TO/**/PROGRAM'touch${IFS}/tmp/p';-- app
3356; 0 16389 TABLE DATA public semi; colon app
3357; 0 16392 TABLE DATA public new line app
219; 1259 16399 TABLE my schema TABLE DATA public t app app
"""


def test_finding_2_restore_builds_no_sql_from_the_names_in_the_archive_and_restores_as_the_stacks_role(
        tool, monkeypatch):
    monkeypatch.setenv("WEBSTACK_DB_NAME", "appdb")
    monkeypatch.setenv("WEBSTACK_DB_USER", "app")
    make_backup(tool, "20260101T000000Z-manual")
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        sql = command[-1]
        out = {True: HOSTILE_LISTING}.get(command[:2] == ["pg_restore", "--list"], "")
        if "json_build_array" in sql:
            out = json.dumps([['public.x";COPY(SELECT(1))TO/**/PROGRAM\'touch${IFS}/tmp/p\';--', 1],
                              ["public.semi; colon", 2], ["public.new\nline", 3]])
        elif command[0] == "psql" and "count(" in sql:
            out = "1"
        return subprocess.CompletedProcess(command, 0, out, "")

    monkeypatch.setattr(tool.subprocess, "run", fake_run)
    prepared = tool.restore_prepare(None, False, tool.BACKUPS, "dev", verify_only=True)
    assert prepared["tables"]["public.new\nline"] == 3 and len(prepared["tables"]) == 3
    sql = [c[-1] for c in commands if c[0] == "psql"]
    assert not [s for s in sql if "PROGRAM" in s or "semi" in s], sql
    restore = next(c for c in commands if c[0] == "pg_restore" and "--list" not in c)
    assert restore[restore.index("-U") + 1] == "app" and not [a for a in restore if a.startswith("--role")]
    counts = next(c for c in commands if "json_build_array" in c[-1])
    assert counts[counts.index("-U") + 1] == "app" and "format('SELECT count(*) AS n FROM %I.%I'" in counts[-1]


@pytest.mark.parametrize("name, ident, literal", [
    ('we"ird', '"we""ird"', "E'we\"ird'"),
    ("it's", '"it\'s"', "E'it''s'"),
    ("back\\slash", '"back\\slash"', "E'back\\\\slash'"),
    ("x\";COPY (SELECT 1) TO PROGRAM 'id';--", '"x"";COPY (SELECT 1) TO PROGRAM \'id\';--"',
     "E'x\";COPY (SELECT 1) TO PROGRAM ''id'';--'"),
])
def test_finding_2_identifiers_and_literals_are_quoted_for_postgresql(tool, name, ident, literal):
    assert (tool.quote_ident(name), tool.quote_literal(name)) == (ident, literal)


def test_finding_2_a_name_with_a_nul_byte_is_refused(tool):
    for quote in (tool.quote_ident, tool.quote_literal):
        with pytest.raises(tool.Refused, match="NUL"):
            quote("a\x00b")


class FakeBucket:
    """The S3 calls fetch() makes, over a dict of key -> bytes."""

    class NoSuchKey(Exception):
        pass

    def __init__(self, objects: dict[str, bytes]):
        self.objects = objects
        self.exceptions = type("Exceptions", (), {"NoSuchKey": self.NoSuchKey})

    def get_paginator(self, _):
        objects = self.objects
        return type("P", (), {"paginate": lambda self, Bucket, Prefix: [
            {"Contents": [{"Key": k} for k in sorted(objects) if k.startswith(Prefix)]}]})()

    def get_object(self, Bucket, Key):
        if Key not in self.objects:
            raise self.NoSuchKey(Key)
        import io
        return {"Body": io.BytesIO(self.objects[Key])}

    def download_fileobj(self, bucket, key, handle):
        handle.write(self.objects[key])

    def delete_objects(self, Bucket, Delete):
        for item in Delete["Objects"]:
            del self.objects[item["Key"]]

    def download_file(self, bucket, key, path):   # what the code before issue 19 called
        with open(path, "wb") as handle:
            handle.write(self.objects[key])


GOOD = "20260101T000000Z-manual"
FETCHED = "20260102T000000Z-manual"
SIGNING_KEY = "s" * 48


OURS, LEGACY = "webstack/webstack/dev/", "webstack/dev/"   # <prefix>/<project>/<stack>/, and the layout before it


def bucket(tool, monkeypatch, files: dict[str, bytes], key: str | None = SIGNING_KEY, stack: str = "dev",
           name: str = FETCHED, project: str | None = "webstack", where: str = OURS,
           into: FakeBucket | None = None) -> FakeBucket:
    """A bucket holding, under `where` (default stack dev's prefix), one backup whose manifest names `project`
    (None: a manifest from before they named it) and `stack` and lists `files`, signed with `key`."""
    import hashlib
    import hmac

    prefix = f"{where}{name}/"
    manifest = json.dumps({"name": name, "stack": stack, **({"project": project} if project else {}), "size": 1,
                           "sha256": "0" * 64, "files": {
        relative: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for relative, data in files.items()
    }}).encode()
    objects = {prefix + "database.dump": b"PGDMP good", prefix + "manifest.json": manifest}
    objects.update({prefix + relative: data for relative, data in files.items()})
    if key:
        objects[prefix + "manifest.hmac"] = hmac.new(key.encode(), manifest, hashlib.sha256).hexdigest().encode()
    fake = into or FakeBucket({})
    fake.objects.update(objects)
    monkeypatch.setenv("WEBSTACK_OFFSITE", json.dumps({"bucket": "b-1", "prefix": "webstack"}))
    monkeypatch.setenv("WEBSTACK_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setattr(tool, "s3_client", lambda config: fake)
    return fake


def test_finding_5_a_manifest_naming_paths_outside_the_backup_area_is_refused_before_anything_is_written(
        tool, monkeypatch, tmp_path):
    make_backup(tool, GOOD, b"PGDMP the good one")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    for relative in (f"../{GOOD}/database.dump", f"../../{outside.name}/x", str(outside / "x"), "volumes/../../x.tar",
                     "volumes/x.tar/../../x"):
        bucket(tool, monkeypatch, {"database.dump": b"PGDMP good", relative: b"PGDMP evil"})
        with pytest.raises(tool.Refused, match="names the file .* refused and nothing was changed"):
            tool.fetch(FETCHED, "webstack", "dev")
        assert (tool.BACKUPS / GOOD / "database.dump").read_bytes() == b"PGDMP the good one"
        assert not outside.exists() and not (tool.BACKUPS / f".incoming-{FETCHED}").exists()


@pytest.mark.parametrize("signed_with, message", [
    (None, "is not signed .* nothing was changed"),
    ("another stack's key" + "x" * 30, "signature that does not match stack dev's key"),
])
def test_finding_5_an_offsite_backup_without_this_stacks_signature_is_refused(tool, monkeypatch, signed_with, message):
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP good"}, key=signed_with)
    with pytest.raises(tool.Refused, match=message):
        tool.fetch(FETCHED, "webstack", "dev")
    assert not (tool.BACKUPS / f".incoming-{FETCHED}").exists()


def test_finding_5_a_signed_manifest_of_another_backup_or_stack_is_refused(tool, monkeypatch):
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP good"}, stack="prod")
    with pytest.raises(tool.Refused, match="is of stack 'prod' of project 'webstack'.* Refused, nothing was changed"):
        tool.fetch(FETCHED, "webstack", "dev")
    fake = bucket(tool, monkeypatch, {"database.dump": b"PGDMP good"})
    for key in list(fake.objects):   # a validly signed manifest of FETCHED, copied under another backup's name
        fake.objects[key.replace(FETCHED, GOOD)] = fake.objects[key]
    with pytest.raises(tool.Refused, match="describes another backup"):
        tool.fetch(GOOD, "webstack", "dev")


def test_finding_5_a_signed_offsite_backup_is_fetched_and_verifies(tool, monkeypatch):
    bucket(tool, monkeypatch, {"database.dump": b"PGDMP good", "volumes/uploads.tar": b"tar"})
    incoming = tool.fetch(None, "webstack", "dev")
    assert incoming == tool.BACKUPS / f".incoming-{FETCHED}"
    assert tool.verify(incoming)["name"] == FETCHED and (incoming / "manifest.hmac").is_file()


def test_finding_5_a_local_manifest_naming_a_path_outside_its_backup_is_refused(tool):
    make_backup(tool, GOOD)
    manifest = json.loads((tool.BACKUPS / GOOD / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = manifest["files"]["database.dump"]
    (tool.BACKUPS / GOOD / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(tool.Refused, match="names the file '../../etc/passwd'"):
        tool.verify(tool.BACKUPS / GOOD)


def test_finding_5_each_stack_has_a_signing_key_that_reaches_the_jobs_only_as_a_secret():
    run = run_program("dev", secret_overrides={"webstack:database": {"offsite": {**OFFSITE, **KEYS}}})
    key = run.named("backups-signing-key")
    assert key.type == "random:index/randomPassword:RandomPassword" and key.inputs["length"] == 48
    assert key.parent == run.named("backups").urn
    assert "WEBSTACK_SIGNING_KEY=" + "r" * 48 in run.named("backups-schedule").inputs["envs"]
    assert is_secret(run.named("backups-schedule").secret_inputs["envs"])
    assert run.outputs["backupSigningKey"] == "r" * 48


def test_finding_5_an_offsite_dump_without_the_signing_key_is_refused_before_it_starts(tool, monkeypatch):
    monkeypatch.setenv("WEBSTACK_STACK", "dev")
    monkeypatch.setenv("WEBSTACK_DB_NAME", "appdb")
    monkeypatch.setenv("WEBSTACK_DB_USER", "app")
    monkeypatch.setenv("WEBSTACK_OFFSITE", json.dumps({"bucket": "b-1"}))
    monkeypatch.delenv("WEBSTACK_SIGNING_KEY", raising=False)
    with pytest.raises(tool.Refused, match="offsite copies are signed"):
        tool.dump("manual")


@pytest.mark.parametrize("change", [{"webstack:database": {"memoryMb": 1024}}])
def test_a_change_that_replaces_only_the_database_container_takes_a_backup_first(dev, change):
    """Issue 21: database.memoryMb (or containers/db) alone replaced the database container with no backup: the
    pre-deploy backup's triggers did not change. Every input that replaces that container is among them."""
    from tests.program import run_program
    changed = run_program("dev", change)
    before, after = dev.named("backups-pre-deploy"), changed.named("backups-pre-deploy")
    assert dev.named("database-postgres").inputs["memory"] != changed.named("database-postgres").inputs["memory"]
    assert before.inputs["triggers"] != after.inputs["triggers"]
    assert changed.named("backups-pre-deploy").urn in changed.named("database-postgres").dependencies


def test_the_database_image_is_a_trigger_of_the_pre_deploy_backup(dev):
    image = dev.named("images-db").inputs["name"]
    assert image in dev.named("backups-pre-deploy").inputs["triggers"]


def test_a_pre_deploy_backup_past_its_timeout_is_stopped_and_fails_the_update_with_the_setting_named(tmp_path):
    """Issue 20: nothing waits forever. The job's `docker run` never ends here; the script stops it at
    database.backups.timeoutSeconds, removes its container by name and fails before anything changes."""
    environment = fake_docker(tmp_path, IDENTITY)
    docker = tmp_path / "bin" / "docker"
    docker.write_text(docker.read_text().replace("  run*)", "  run*) sleep 30;;\n  zz*)")
                      .replace("#!/bin/sh\n", f"#!/bin/sh\necho \"$*\" >> {tmp_path}/calls\n"))
    s = settings()
    script = pre_deploy_script(s).replace(f"timeout {s.database.backups.timeoutSeconds} docker", "timeout 1 docker")
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=20)
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert "did not finish within" in done.stderr and "database.backups.timeoutSeconds" in done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    job = backup_job.pre_deploy_job_name(s)
    assert calls[-1] == f"rm -f {job}" and any(c.startswith(f"run --rm --name {job} ") for c in calls)
    assert calls.index(f"rm -f {job}") < next(i for i, c in enumerate(calls) if c.startswith("run "))   # a leftover goes first


def test_the_pre_deploy_timeout_is_the_setting():
    assert "timeout 900 docker run --rm --name webstack-dev-backup-pre-deploy " in pre_deploy_script(
        settings({"backups": {"timeoutSeconds": 900}}))


def test_an_update_stops_before_anything_changes_while_a_restore_of_the_stack_runs(tmp_path):
    """Issue 21: a restore (python -m ops restore, one job container of a fixed name) and an update never overlap."""
    environment = {**fake_docker(tmp_path, IDENTITY), "RESTORE_RUNNING": "true"}
    done = subprocess.run(["sh", "-c", pre_deploy_script(settings())], env=environment, capture_output=True, text=True)
    assert done.returncode == 1 and "a restore of stack dev is running (webstack-dev-restore-job)" in done.stderr
    assert not (tmp_path / "runs").exists()
