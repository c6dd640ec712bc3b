"""Backups you can restore, through the real engine and the operator commands (`python -m ops backup/restore`).

One stack (`bkptest`, the dev stack's settings on free loopback ports, a schedule of every 1 minute), in order:
the first deploy (nothing to back up yet) with its scheduled backup, the restore drill (rows written, backed up,
the table dropped, the latest backup restored: the same rows, the same checksum of the table's contents), a
corrupted backup refused before anything changes, a release with a migration backed up first, a failing backup
that fails the update while the running release keeps serving, the database identity guard, and a ~100 MB
database backed up and restored within 2 minutes (figures printed at the end), and a restore of tables the app role
named to attack it (issue 19, finding 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.live.engine import EngineFailed
from tests.live.test_scenarios import TLS, LiveStack, deployed

pytestmark = pytest.mark.live
STACK = "bkptest"
PREFIX = f"webstack-{STACK}-"
BACKUPS_VOLUME = f"{PREFIX}backups"
DB = f"{PREFIX}db"
CHECKSUM = "SELECT count(*) || ':' || coalesce(md5(string_agg(id || '|' || text || '|' || created_at, ',' ORDER BY id)), '') FROM notes"


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"docker {' '.join(args[:3])}: {done.stderr}"
    return done


def sql(statement: str, database: str = "appdb", stack: str = STACK, user: str = "app") -> str:
    """As the app's own role, through the socket inside the database container (uid 1001 maps to `user`)."""
    return docker("exec", "-u", "1001", f"webstack-{stack}-db", "psql", "-h", "/var/run/postgresql", "-U", user,
                  "-d", database, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement).stdout.strip()


def databases(stack: str = STACK) -> list[str]:
    return sorted(docker("exec", f"webstack-{stack}-db", "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d",
                         "postgres", "-X", "-A", "-t", "-c", "SELECT datname FROM pg_database").stdout.split())


def on_volume(command: str, volume: str = BACKUPS_VOLUME) -> str:
    """A shell command as root on the backups volume: what an administrator on the host could do to it."""
    return docker("run", "--rm", "--network", "none", "-v", f"{volume}:/b", "debian:bookworm-slim", "sh", "-c",
                  command).stdout


class BackupStack(LiveStack):
    def ops(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = self.engine.ops(*args)
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def backups(self) -> list[dict]:
        return json.loads(self.ops("backup", "--list", "--json").stdout)

    def api_ok(self) -> bool:
        with urllib.request.urlopen(self.url + "/api/readiness", context=TLS, timeout=10) as response:
            return response.status == 200


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    yield from deployed(lambda: BackupStack(tmp_path_factory.mktemp(STACK), stack=STACK), request, "backups")


def test_1_the_first_deploy_has_nothing_to_back_up_and_the_schedule_runs_on_the_target(stack):
    result = stack.up(**{"webstack:release": "r1", "webstack:database.backupSchedule": "every 1m"})
    stack.figures["cold deploy"] = f"{result.seconds:.1f}s"
    assert "no database container webstack-bkptest-db yet (first deploy): nothing to back up" in result.output
    stack.write_note("before the first scheduled backup")
    deadline = time.monotonic() + 150
    while not [b for b in stack.backups() if b["reason"] == "scheduled"]:
        assert time.monotonic() < deadline, docker("logs", f"{PREFIX}backup", check=False).stderr[-2000:]
        time.sleep(5)
    # The data volume records the identity it was set up with (the database entrypoint refuses another).
    identity = docker("exec", DB, "cat", "/var/lib/postgresql/data/webstack-identity").stdout
    assert identity == "database=appdb role=app\n", identity
    health = docker("inspect", "-f", "{{.State.Health.Status}}", f"{PREFIX}backup").stdout.strip()
    assert health == "healthy", health
    scheduled = [b for b in stack.backups() if b["reason"] == "scheduled"][0]
    assert (scheduled["project"], scheduled["stack"]) == ("webstack", STACK)
    assert scheduled["database"] == {"name": "appdb", "user": "app"}
    assert scheduled["postgresql"].startswith("15") and "public.notes" in scheduled["tables"]
    # Back to the default (daily 03:15): the tests below count on no backup appearing unasked.
    stack.up(**{"webstack:release": "r1"})
    assert "WEBSTACK_SCHEDULE=daily 03:15" in docker("inspect", "-f", "{{.Config.Env}}", f"{PREFIX}backup").stdout


def test_2_restore_drill_brings_every_row_back_with_the_same_checksum(stack):
    for i in range(40):
        stack.write_note(f"drill note {i}")
    before = sql(CHECKSUM)
    started = time.monotonic()
    made = stack.ops("backup")
    stack.figures["backup (small)"] = f"{time.monotonic() - started:.1f}s: {made.stdout.strip().splitlines()[-1]}"
    name = stack.backups()[-1]["name"]
    status = stack.ops("status")       # the operator's overview names the newest backups
    assert "last backups: " in status.stdout and f"{name} (manual, release r1" in status.stdout, status.stdout
    stack.figures["ops status with backups"] = "\n" + status.stdout
    sql("DROP TABLE notes")
    drill = stack.ops("restore", "--verify", "--latest")
    assert "verify mode" in drill.stdout and "notes" in drill.stderr, drill.stdout + drill.stderr
    assert not [d for d in databases() if "_restore_" in d]
    started = time.monotonic()
    restored = stack.ops("restore", "--latest")
    stack.figures["restore (small)"] = f"{time.monotonic() - started:.1f}s"
    assert f"restored backup {name} into database appdb" in restored.stdout, restored.stdout
    assert sql(CHECKSUM) == before
    assert [d for d in databases() if d.startswith("appdb_pre_restore_")], databases()
    assert stack.api_ok() and "drill note 39" in stack.notes()


# Lines `python -m ops restore` prints: before the restore into a scratch database, as the switch starts, after it.
RESTORE_KILL_POINTS = {"before the switch": "restoring the latest backup",
                       "as the switch starts": "switching database appdb",
                       "after the switch": "serve the restored data"}


def answers_within(stack: BackupStack, seconds: float) -> bool:
    """/api/readiness answers 200 within `seconds` (a restore's switch refuses new sessions for a moment)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if stack.api_ok():
                return True
        except urllib.error.URLError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


@pytest.mark.parametrize("point", RESTORE_KILL_POINTS)
def test_2b_a_restore_killed_at_any_point_leaves_the_api_answering_and_a_rerun_finishes(stack, point):
    """Issue 21: SIGKILL `python -m ops restore` (with everything it started on this machine) before, as and after
    the switch: the API keeps answering (the backends never stop), and the next restore completes."""
    before = sql(CHECKSUM)
    process = stack.engine.ops_popen("restore", "--latest")
    seen = []
    for line in process.stdout:
        seen.append(line)
        if RESTORE_KILL_POINTS[point] in line:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    assert answers_within(stack, 10)
    # The job a killed restore left on the target finishes by itself; the rerun says so, or runs.
    deadline = time.monotonic() + 120
    while True:
        rerun = stack.ops("restore", "--latest", ok=False)
        if rerun.returncode == 0 or "restore-job has been running" not in rerun.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert answers_within(stack, 10) and sql(CHECKSUM) == before
    assert not [d for d in databases() if "_restore_" in d and "_pre_restore_" not in d], databases()


def test_3_a_corrupted_backup_is_refused_before_anything_changes(stack):
    name = stack.backups()[-1]["name"]
    on_volume(f"printf 'XXXX' | dd of=/b/{name}/database.dump bs=1 seek=200 conv=notrunc 2>/dev/null")
    before, dbs = sql(CHECKSUM), databases()
    refused = stack.ops("restore", "--name", name, ok=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"backup {name} is corrupted: database.dump has SHA-256" in refused.stderr, refused.stderr
    assert "nothing was changed" in refused.stderr
    assert sql(CHECKSUM) == before and databases() == dbs
    on_volume(f"rm -rf /b/{name}")   # the operator removes the broken backup


def test_4_a_release_with_a_migration_is_backed_up_before_its_backends_start(stack):
    migrations = stack.engine.work_dir / "containers" / "backend" / "migrations"
    (migrations / "0002_note_tags.sql").write_text("ALTER TABLE notes ADD COLUMN tag text;\n")
    result = stack.up(**{"webstack:release": "r2"})
    latest = stack.backups()[-1]
    assert latest["reason"] == "pre-deploy" and latest["release"] == "r2", latest
    backend = stack.containers("backend")
    assert all("-r2-" in name for name in backend), backend
    started = docker("inspect", "-f", "{{.State.StartedAt}}", backend[0]).stdout.strip()
    assert latest["created"][:19] <= started[:19], (latest["created"], started)
    assert "backing up database appdb before the update" in result.output
    assert sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'tag'") == "1"


def test_5_a_failing_backup_fails_the_update_and_the_running_release_keeps_serving(stack):
    # The backups volume loses its write permission (a mistaken chmod on the host; a full disk fails the same way).
    on_volume("chmod 0500 /b")
    try:
        with pytest.raises(EngineFailed) as failed:
            stack.up(**{"webstack:release": "r3"})
        message = failed.value.message
        assert "the backup failed, so the update stops here" in message, message[-3000:]
        assert "Permission denied" in message, message[-3000:]
        assert all("-r2-" in name for name in stack.containers("backend"))
        assert stack.api_ok() and "drill note 39" in stack.notes()
    finally:
        on_volume("chmod 0700 /b")
    stack.figures["failed backup"] = f"the update failed after {failed.value.seconds:.1f}s; r2 kept serving"


def test_6_renaming_the_database_of_a_stack_with_data_is_refused_with_the_way_to_migrate(stack):
    with pytest.raises(EngineFailed) as failed:
        stack.up(**{"webstack:release": "r2", "webstack:database.name": "shop"})
    message = failed.value.message
    assert "holds data as database 'appdb', role 'app'" in message, message[-3000:]
    assert "python -m ops restore --stack NEW_STACK --from-stack bkptest --latest" in message
    assert stack.api_ok() and sql("SELECT count(*) FROM notes") != "0"
    assert "shop" not in databases()
    stack.engine.configure({"webstack:release": "r2"})   # as the message says: the old values set back


def test_6b_a_stopped_database_fails_the_update_before_anything_changes(stack):
    """Issue 21: a stopped database only logged a warning, and an update that replaced it went on with no backup.
    database.memoryMb alone replaces the database container (a new image): the update must stop first."""
    container = docker("inspect", "-f", "{{.Id}}", DB).stdout.strip()
    backends, taken = stack.containers("backend"), len(stack.backups())
    docker("stop", DB)
    try:
        with pytest.raises(EngineFailed) as failed:
            stack.up(**{"webstack:release": "r2", "webstack:database.memoryMb": 640})
        message = failed.value.message
        assert f"the database container {DB} exists but is exited, not running" in message, message[-3000:]
        assert f"docker start {DB}" in message and "nothing was changed" in message, message[-3000:]
        assert docker("inspect", "-f", "{{.Id}} {{.State.Status}}", DB).stdout.split() == [container, "exited"]
        assert stack.containers("backend") == backends and len(stack.backups()) == taken
    finally:
        docker("start", DB)
    stack.engine.configure({"webstack:release": "r2"})   # the refused memoryMb is not kept
    deadline = time.monotonic() + 120
    while docker("inspect", "-f", "{{.State.Health.Status}}", DB).stdout.strip() != "healthy":
        assert time.monotonic() < deadline, docker("logs", DB, check=False).stderr[-2000:]
        time.sleep(2)
    # The backends' pools reconnect on their next request after the database restarted (a stale connection
    # answers one 503 first): the app serves again within seconds.
    if not answers_within(stack, 30):
        try:
            urllib.request.urlopen(stack.url + "/api/readiness", context=TLS, timeout=10)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
        backend = stack.containers("backend")
        raise AssertionError((body, backend, [docker("logs", "--tail", "15", b, check=False).stderr for b in backend],
                              docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout))
    assert sql("SELECT count(*) FROM notes") != "0"


def test_7_a_100_mb_database_is_backed_up_and_restored_within_two_minutes(stack):
    sql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) "
        "|| md5((g * 31)::text) AS payload FROM generate_series(1, 650000) AS g")
    size = int(sql("SELECT pg_database_size('appdb')"))
    expected = sql("SELECT count(*) || ':' || md5(string_agg(payload, '' ORDER BY id)) FROM big")
    started = time.monotonic()
    stack.ops("backup")
    backup_seconds = time.monotonic() - started
    dump_size = stack.backups()[-1]["size"]
    sql("DROP TABLE big")
    started = time.monotonic()
    stack.ops("restore", "--latest")
    restore_seconds = time.monotonic() - started
    stack.figures["100 MB database"] = (f"database {size / 1e6:.0f} MB, dump {dump_size / 1e6:.0f} MB; backup "
                                        f"{backup_seconds:.1f}s, restore (verify, restore, check, switch, backends "
                                        f"healthy) {restore_seconds:.1f}s")
    assert size >= 95e6, size
    assert sql("SELECT count(*) || ':' || md5(string_agg(payload, '' ORDER BY id)) FROM big") == expected
    assert restore_seconds < 120, restore_seconds
    assert stack.api_ok()


def test_8_a_data_volume_started_under_another_database_name_is_refused_by_the_entrypoint(stack):
    """After a destroy/redeploy there is no running container for the pre-deploy guard to compare with: the
    database image itself refuses a volume set up under another name (on a volume of its own here)."""
    image = docker("inspect", "-f", "{{.Config.Image}}", DB).stdout.strip()
    volume = f"{PREFIX}identity-check"
    common = ["--network", "none", "-v", f"{volume}:/var/lib/postgresql/data", "-e", "WEBSTACK_DB_USER=app"]
    first = docker("run", "-d", "--name", f"{PREFIX}identity-first", *common, "-e", "WEBSTACK_DB_NAME=appdb",
                   image).stdout.strip()
    try:
        deadline = time.monotonic() + 90
        while "setup finished" not in docker("logs", first, check=False).stdout:
            assert time.monotonic() < deadline, docker("logs", first, check=False).stderr[-2000:]
            time.sleep(1)
        docker("stop", first)
        renamed = docker("run", "--rm", *common, "-e", "WEBSTACK_DB_NAME=shop", image, check=False, timeout=60)
        assert renamed.returncode == 1, renamed.stdout + renamed.stderr
        assert "this data volume holds database=appdb role=app, but the configuration says database=shop" \
            in renamed.stderr, renamed.stderr
    finally:
        docker("rm", "-f", "-v", first, check=False)
        docker("volume", "rm", "-f", volume, check=False)


# COPY ... TO PROGRAM runs in the server's working directory, its data directory: `touch pwned` lands there.
PWNED = "/var/lib/postgresql/data/pwned"
HOSTILE_TABLES = {
    "x": 1,                                                       # what the crafted name below ends its identifier at
    "x\";COPY(SELECT(1))TO/**/PROGRAM'touch${IFS}pwned';--": 2,   # no spaces: one "name" to the old parser
    "t\"; COPY (SELECT 1) TO PROGRAM 'touch pwned'; --": 3,
    "semi; colon": 4,
    "new\nline": 5,
    'we"ird': 6,
}
CHECK_ATTACK = """
CREATE FUNCTION sneaky(integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  BEGIN RESET ROLE; COPY (SELECT 1) TO PROGRAM 'touch pwned'; EXCEPTION WHEN OTHERS THEN NULL; END;
  RETURN true;
END $$;
CREATE TABLE checked (x integer CHECK (sneaky(x)));
INSERT INTO checked VALUES (1), (2);
"""


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_9_finding_2_tables_the_app_role_named_to_attack_a_restore_come_back_and_no_program_runs(stack):
    """Issue 19: as the app role, tables whose names carry quotes, semicolons, newlines and COPY ... TO PROGRAM,
    and a CHECK constraint whose function tries to become the superuser while the data loads; backed up,
    dropped, restored: every row is back, and the program never ran."""
    for name, rows in HOSTILE_TABLES.items():
        sql(f"CREATE TABLE {quoted(name)} (x integer); INSERT INTO {quoted(name)} SELECT generate_series(1, {rows})")
    sql(CHECK_ATTACK)
    assert docker("exec", DB, "test", "-e", PWNED, check=False).returncode != 0
    stack.ops("backup")
    for name in HOSTILE_TABLES:
        sql(f"DROP TABLE {quoted(name)}")
    sql("DROP TABLE checked")

    drill = stack.ops("restore", "--latest")
    assert "Traceback" not in drill.stderr
    for name, rows in HOSTILE_TABLES.items():
        assert sql(f"SELECT count(*) FROM {quoted(name)}") == str(rows), name
    assert sql("SELECT count(*) FROM checked") == "2"
    assert sql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'") == "app"
    assert docker("exec", DB, "test", "-e", PWNED, check=False).returncode != 0, "a program ran as the server"
    assert stack.api_ok()
