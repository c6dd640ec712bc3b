"""Point-in-time recovery (webstack:database.pitr), through the real engine and `python -m ops`, on the local engine.

One stack (`pitrtest`, the dev stack's settings with continuous archiving on), in order: the first deploy creates
the archive and its first base backup; the drill (rows inserted continuously with their commit time, a DELETE
without WHERE at T, `ops restore --to-time T-1s` brings back exactly the rows committed by T-1s, same count and
checksum); a change of database.memoryMb alone takes a restore point before the database container is replaced,
and `ops restore --before-release` goes back to it (the app volume's files too); the host lost under write load and a
new stack recovered from the archive the backup container shipped to S3 (moto), losing at most a minute of writes;
a release's `up` with ~20 MB and with ~500 MB of data (a restore point costs the same whatever the size). Figures (archive lag, restore time, release times) are printed at the end.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

import boto3

from tests.live.support import moto_s3
from tests.live.test_backups import BackupStack, docker, sql as sql_as_app
from tests.live.test_backups_s3 import BUCKET, KEYS, offsite_config, signing_key_file
from tests.live.test_scenarios import deployed, free_port

pytestmark = pytest.mark.live
STACK, NEW_HOST = "pitrtest", "pitrhost"
DB = f"webstack-{STACK}-db"
PITR = {"webstack:database.pitr.enabled": True}


def sql(statement: str, stack: str = STACK) -> str:
    return sql_as_app(statement, stack=stack)


# Rows of the drill table, in id order, as one digest: equal digests mean the same rows with the same contents.
DRILL_DIGEST = "count(*) || ':' || coalesce(md5(string_agg(id || '|' || payload || '|' || at, ',' ORDER BY id)), '')"


def superuser(statement: str) -> str:
    """As the `postgres` role (the container's own uid 999, by peer authentication), from stdin: psql's \\gset works."""
    done = subprocess.run(["docker", "exec", "-i", DB, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d",
                           "appdb", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"], input=statement,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def superuser_in(database: str, statement: str) -> str:
    done = subprocess.run(["docker", "exec", "-i", DB, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d",
                           database, "-X", "-A", "-t", "-q", "-c", statement], capture_output=True, text=True)
    return done.stdout.strip() + done.stderr.strip()


class Writer(threading.Thread):
    """Inserts a row every ~20 ms, each in its own transaction, as the app's role, until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.process: subprocess.Popen | None = None

    def run(self) -> None:
        self.process = subprocess.Popen(
            ["docker", "exec", "-u", "1001", DB, "psql", "-h", "/var/run/postgresql", "-U", "app", "-d", "appdb", "-X",
             "-q", "-c", "DO $$ BEGIN FOR i IN 1..3000 LOOP INSERT INTO drill (payload) VALUES (md5(random()::text)); "
                         "COMMIT; PERFORM pg_sleep(0.02); END LOOP; END $$"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.process.wait()

    def stop(self) -> None:
        subprocess.run(["docker", "exec", DB, "psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "appdb",
                        "-X", "-q", "-c", "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'DO $$ BEGIN FOR i IN%' AND pid <> pg_backend_pid()"],
                       capture_output=True, timeout=60)
        self.join(60)


def make_stack(directory, name: str, endpoint: str) -> BackupStack:
    live = BackupStack(directory, stack=name)
    # An app volume (a restore brings its files back with the database), and the archive shipped to S3.
    live.engine.base_config.update({"webstack:backend.volumes": {"media": "/app/media"}, **offsite_config(endpoint)[0]})
    live.engine.base_secrets.update(offsite_config(endpoint)[1])
    return live


@pytest.fixture(scope="module")
def s3():
    with moto_s3(free_port()) as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=KEYS["accessKeyId"],
                     aws_secret_access_key=KEYS["secretAccessKey"]).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture(scope="module")
def stack(s3, tmp_path_factory, request):
    yield from deployed(lambda: make_stack(tmp_path_factory.mktemp(STACK), STACK, s3), request, "pitr")


@pytest.fixture(scope="module")
def new_host(s3, tmp_path_factory, request):
    """The stack a team deploys after losing the host: another stack, restored from the bucket alone."""
    yield from deployed(lambda: make_stack(tmp_path_factory.mktemp(NEW_HOST), NEW_HOST, s3), request, "pitr new host")


def media(stack: BackupStack, command: str) -> str:
    """A shell command in a backend container, as the app's uid: what the app itself does to its volume."""
    return docker("exec", "-u", "1001", stack.containers("backend")[0], "sh", "-c", command).stdout


def test_1_the_first_deploy_archives_and_takes_the_first_base_backup(stack):
    result = stack.up(**{"webstack:release": "p1", **PITR})
    stack.figures["cold deploy with archiving"] = f"{result.seconds:.1f}s"
    assert "continuous archiving works; 1 base backup(s)" in result.output, result.output[-3000:]
    listed = stack.ops("backup", "--list").stdout
    assert "continuous archiving: 1 base backup(s)" in listed, listed
    settings = superuser("SELECT current_setting('archive_mode') || ' ' || current_setting('archive_timeout') "
                         "|| ' ' || current_setting('track_commit_timestamp')")
    assert settings == "on 30s on", settings
    status = stack.ops("status").stdout
    assert "archiving: last WAL segment" in status and "1 base backup(s)" in status, status


def test_2_a_delete_without_where_is_undone_to_the_second_before_it(stack):
    sql("CREATE TABLE drill (id bigserial PRIMARY KEY, payload text NOT NULL, at timestamptz NOT NULL "
        "DEFAULT clock_timestamp())")
    writer = Writer()
    writer.start()
    try:
        time.sleep(10)
        # T is the DELETE's time; the rows committed by T-1s are what the restore must bring back (each row's commit
        # time, not its insert time, is what recovery compares: track_commit_timestamp records it).
        expected = superuser(
            "SELECT clock_timestamp() - interval '1 second' AS target \\gset\n"
            f"SELECT :'target' || '|' || {DRILL_DIGEST} FROM drill WHERE pg_xact_commit_timestamp(xmin) <= :'target';\n"
            "DELETE FROM drill;\n")
        time.sleep(3)   # the writer goes on after the accident, as an app would
    finally:
        writer.stop()
    target, digest = expected.split("|", 1)
    rows_expected = int(digest.split(":")[0])
    assert rows_expected > 100, expected
    lag = superuser("SELECT round(extract(epoch FROM now() - last_archived_time)) FROM pg_stat_archiver")
    stack.figures["archive lag during the drill (s since the last archived segment)"] = lag
    started = time.monotonic()
    restored = stack.ops("restore", "--to-time", target)
    stack.figures["restore --to-time (drill table of a few hundred rows)"] = f"{time.monotonic() - started:.1f}s"
    assert "recovered; the last transaction replayed committed at" in restored.stderr, restored.stderr[-3000:]
    after = sql(f"SELECT {DRILL_DIGEST} FROM drill")
    assert after == digest, (after, digest, restored.stderr[-2000:])
    stack.figures["drill"] = f"{rows_expected} rows committed by T-1s restored, checksum equal; none after"
    assert stack.api_ok()


def test_3_a_database_memory_change_takes_a_restore_point_and_before_release_goes_back_to_it(stack):
    before = {b["name"] for b in stack.backups()}
    sql("INSERT INTO drill (payload) VALUES ('before the memory change')")
    media(stack, "mkdir -p /app/media/uploads && echo 'before the memory change' > /app/media/uploads/a.txt")
    result = stack.up(**{"webstack:release": "p1", **PITR, "webstack:database.memoryMb": 640})
    assert docker("inspect", "-f", "{{.HostConfig.Memory}}", DB).stdout.strip() == str(640 * 1024 * 1024)
    new = [b for b in stack.backups() if b["name"] not in before]
    assert [(b["reason"], b.get("kind"), b["release"]) for b in new] == [("pre-deploy", "restore-point", "p1")], new
    assert "restore point webstack-" in result.output, result.output[-3000:]
    assert list(new[0]["files"]) == [f"volumes/webstack-{STACK}-vol-media.tar"], new[0]
    sql("INSERT INTO drill (payload) VALUES ('after the memory change')")
    media(stack, "echo 'after the memory change' > /app/media/uploads/a.txt && echo new > /app/media/b.txt")
    started = time.monotonic()
    restored = stack.ops("restore", "--before-release", "p1")
    stack.figures["restore --before-release (database and app volume)"] = f"{time.monotonic() - started:.1f}s"
    assert f"restore point {new[0]['restorePoint']['name']}" in restored.stderr, restored.stderr[-2000:]
    payloads = sql("SELECT string_agg(payload, ',') FROM drill WHERE payload LIKE '% the memory change'")
    assert payloads == "before the memory change", payloads
    assert f"app volume webstack-{STACK}-vol-media: 3 entries restored" in restored.stdout, restored.stdout
    assert media(stack, "cat /app/media/uploads/a.txt; ls /app/media") == "before the memory change\nuploads\n"


def test_4_after_losing_the_host_a_new_stack_recovers_from_the_bucket_within_a_minute_of_writes(stack, new_host):
    writer = Writer()
    writer.start()
    time.sleep(40)
    # The host is lost right after the last write: its database and its backup container stop at this instant
    # (frozen, so that the data they held can be read afterwards to measure what was lost).
    writer.stop()
    shipping = docker("exec", f"webstack-{STACK}-backup", "cat", "/tmp/webstack-backup-ship-status").stdout
    assert shipping == "ok", shipping
    archiver = superuser("SELECT row_to_json(a) FROM pg_stat_archiver a")
    db_log = docker("logs", "--tail", "30", DB, check=False).stderr[-3000:]
    listing = docker("exec", DB, "sh", "-c", "ls -la /backups/pgbackrest/archive/webstack/*/ "
                     "/backups/pgbackrest/archive/webstack/*/0000000100000000 | tail -15").stdout
    lost = [DB, f"webstack-{STACK}-backup"]
    docker("pause", *lost)
    try:
        new_host.up(**{"webstack:release": "h1"})
        started = time.monotonic()
        restored = new_host.ops("restore", "--from-s3", "--from-stack", STACK, "--signing-key-file",
                                signing_key_file(stack))
        seconds = time.monotonic() - started
        assert "recovered; the last transaction replayed committed at" in restored.stderr, restored.stderr[-3000:]
        newest = sql("SELECT max(id) || '|' || max(at) FROM drill", stack=NEW_HOST)
    finally:
        docker("unpause", *lost)
    newest_id, newest_at = newest.split("|")
    # The rows the new stack has are exactly the old stack's first rows, up to the newest it recovered.
    rows = "SELECT coalesce(string_agg(id || '=' || payload, ' ' ORDER BY id), '') FROM drill"
    old_rows = set(sql(f"{rows} WHERE id <= {newest_id}").split())
    new_rows = set(sql(rows, stack=NEW_HOST).split())
    if old_rows != new_rows:
        per_db = superuser("SELECT string_agg(datname, ' ') FROM pg_database")
        extra = {db: superuser_in(db, "SELECT string_agg(id || '=' || payload, ' ' ORDER BY id) FROM drill "
                                      "WHERE payload LIKE '%memory change'") for db in per_db.split()
                 if db.startswith("appdb")}
        raise AssertionError((sorted(old_rows - new_rows), sorted(new_rows - old_rows), extra,
                              restored.stderr[-4000:], archiver, db_log, listing))
    lost_seconds = float(sql(f"SELECT extract(epoch FROM max(at) - '{newest_at}'::timestamptz) FROM drill"))
    lost_rows = sql(f"SELECT count(*) FROM drill WHERE id > {newest_id}")
    stack.figures["host loss"] = (f"recovered from the bucket in {seconds:.1f}s; writes lost: the last "
                                  f"{lost_seconds:.1f}s ({lost_rows} rows)")
    assert lost_seconds <= 60, stack.figures["host loss"]


def release_seconds(stack: BackupStack, release: str) -> float:
    result = stack.up(**{"webstack:release": release, **PITR, "webstack:database.memoryMb": 640})
    assert "restore point webstack-" in result.output, result.output[-3000:]
    return result.seconds


def grow_to(megabytes: int) -> str:
    """Fills a table to about `megabytes` of data, then waits until the archive has caught up (a release's restore
    point waits for its own segment, so a backlog would be measured too)."""
    sql("CREATE TABLE IF NOT EXISTS bulk (id bigserial PRIMARY KEY, filler text NOT NULL)")
    have = int(sql("SELECT pg_database_size('appdb') / 1000000"))
    rows = max(0, megabytes - have) * 1000000 // 560
    if rows:
        sql(f"INSERT INTO bulk (filler) SELECT repeat(md5(i::text), 16) FROM generate_series(1, {rows}) i")
    superuser("CHECKPOINT; SELECT pg_switch_wal();")
    current = superuser("SELECT pg_walfile_name(pg_current_wal_lsn())")
    deadline = time.monotonic() + 600
    while superuser("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < current:
        assert time.monotonic() < deadline, "the archive did not catch up within 10 minutes"
        time.sleep(2)
    return sql("SELECT pg_size_pretty(pg_database_size('appdb'))")


def test_5_a_release_takes_as_long_with_500_mb_as_with_20_mb(stack):
    small = grow_to(20)
    seconds_small = release_seconds(stack, "p2")
    large = grow_to(500)
    seconds_large = release_seconds(stack, "p3")
    stack.figures["release up"] = (f"{seconds_small:.1f}s with {small}, {seconds_large:.1f}s with {large} "
                                   f"({seconds_large / seconds_small:.2f}x)")
    assert seconds_large <= 1.2 * seconds_small + 3, stack.figures["release up"]
    # A restore's time does grow with the data (the archive is recovered, dumped and loaded): the drill measures it.
    started = time.monotonic()
    drill = stack.ops("restore", "--verify")
    assert "verify mode" in drill.stdout, drill.stdout + drill.stderr[-2000:]
    stack.figures["restore drill (--verify, end of the archive)"] = f"{time.monotonic() - started:.1f}s with {large}"
