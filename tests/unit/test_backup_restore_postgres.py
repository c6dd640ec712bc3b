"""Finding 2 of issue 19 against a real PostgreSQL 15: containers/backup/webstack_backup.py dumps, restores and
checks a database whose app role left hostile names and hostile code in it, and no program runs.

The server is a private cluster (trust auth on a socket in a temporary directory) started from the Debian
postgresql-15 binaries; without them the module is skipped with the reason. The job's code runs unchanged; only
the socket path and /backups point into the temporary directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.stack_config import PROJECT_DIR

BIN = Path("/usr/lib/postgresql/15/bin")
PWNED = Path("/tmp/wst-pwned")   # short: the crafted name must fit PostgreSQL's 63 bytes
# Without spaces, so that the split() of the original parser took the whole name as one table: the count query
# then ended its identifier early (at the table `x`, which exists) and ran COPY ... TO PROGRAM as the superuser.
UNSPLIT = f"x\";COPY(SELECT(1))TO/**/PROGRAM'touch${{IFS}}{PWNED}';--"
HOSTILE = {
    "x": 6,
    'we"ird': 2,
    "semi; colon": 1,
    "new\nline": 3,
    "TABLE DATA public t app": 1,
    UNSPLIT: 4,
    f"t\"; COPY (SELECT 1) TO PROGRAM 'touch {PWNED}'; --": 5,
}
# A CHECK constraint's function runs while the data loads: as a superuser with SET ROLE it could RESET ROLE.
CHECK_ATTACK = f"""
CREATE FUNCTION public.sneaky(integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    RESET ROLE;
    COPY (SELECT 1) TO PROGRAM 'touch {PWNED}';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN true;
END $$;
CREATE TABLE public.checked (x integer CHECK (public.sneaky(x)));
INSERT INTO public.checked VALUES (1), (2);
"""

@pytest.fixture(autouse=True, scope="module")
def postgresql_15_is_installed() -> None:
    """Skipped with the reason outside CI; in CI (.ci/run installs postgresql-15) a missing server fails."""
    if not (BIN / "initdb").exists():
        reason = f"no PostgreSQL 15 server binaries in {BIN}: apt-get install postgresql-15"
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)


def as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse root: run them as the `postgres` OS user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def cluster():
    # Not under pytest's own temporary root: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="wst-helper-backup-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chmod(root, 0o755)
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    subprocess.run(as_server_user([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    subprocess.run(as_server_user([str(BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"), "-o",
                                   f"-k {root} -c listen_addresses=''", "start"]), check=True, capture_output=True)
    try:
        yield root
    finally:
        subprocess.run(as_server_user([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def sql(socket: Path, statement: str, role: str = "postgres", database: str = "postgres") -> str:
    done = subprocess.run(["psql", "-h", str(socket), "-U", role, "-d", database, "-X", "-q", "-A", "-t",
                           "-v", "ON_ERROR_STOP=1"], input=statement, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def tool(cluster, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("webstack_backup", PROJECT_DIR / "containers/backup/webstack_backup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "SOCKET", str(cluster))
    monkeypatch.setattr(module, "BACKUPS", tmp_path)
    for key, value in {"WEBSTACK_PROJECT": "webstack", "WEBSTACK_STACK": "pgtest", "WEBSTACK_DB_NAME": "appdb",
                       "WEBSTACK_DB_USER": "app", "WEBSTACK_KEEP_SCHEDULED": "3", "WEBSTACK_KEEP_PRE_DEPLOY": "3",
                       "WEBSTACK_VOLUMES": "", "WEBSTACK_OFFSITE": ""}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WEBSTACK_SIGNING_KEY", raising=False)
    return module


@pytest.fixture
def hostile_database(cluster):
    """appdb, owned by `app`, whose tables `app` created with hostile names and a hostile CHECK function."""
    sql(cluster, "DROP DATABASE IF EXISTS appdb WITH (FORCE)")
    for name in sql(cluster, "SELECT datname FROM pg_database WHERE datname LIKE 'appdb_%'").split():
        sql(cluster, f'DROP DATABASE "{name}" WITH (FORCE)')
    sql(cluster, "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN; "
                 "END IF; END$$")
    sql(cluster, "CREATE DATABASE appdb OWNER app")
    for name, rows in HOSTILE.items():
        quoted = '"' + name.replace('"', '""') + '"'
        sql(cluster, f"CREATE TABLE public.{quoted} (x integer); INSERT INTO public.{quoted} "
                     f"SELECT generate_series(1, {rows});", role="app", database="appdb")
    sql(cluster, CHECK_ATTACK, role="app", database="appdb")
    PWNED.unlink(missing_ok=True)
    return cluster


def test_finding_2_a_restore_of_hostile_table_names_brings_the_data_back_and_runs_no_program(tool, hostile_database):
    made = tool.dump("manual")
    manifest = tool.manifest_of(tool.BACKUPS / made["name"])
    assert {f"public.{name}" for name in HOSTILE} | {"public.checked"} == set(manifest["tables"])

    prepared = tool.restore_prepare(None, False, tool.BACKUPS, "pgtest", verify_only=False)
    assert prepared["tables"] == {**{f"public.{n}": rows for n, rows in HOSTILE.items()}, "public.checked": 2}
    tool.switch(prepared["scratch"])

    for name, rows in HOSTILE.items():
        quoted = '"' + name.replace('"', '""') + '"'
        assert sql(hostile_database, f"SELECT count(*) FROM public.{quoted}", "app", "appdb") == str(rows), name
    owners = sql(hostile_database, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
                 database="appdb")
    assert owners == "app"
    assert not PWNED.exists(), "a program ran as the database server during the backup or the restore"


def test_finding_2_the_verify_drill_drops_its_scratch_database_and_runs_no_program(tool, hostile_database):
    tool.dump("manual")
    prepared = tool.restore_prepare(None, False, tool.BACKUPS, "pgtest", verify_only=True)
    assert prepared["tables"][f"public.{UNSPLIT}"] == 4
    assert not tool.database_exists(prepared["scratch"]) and tool.database_exists("appdb")
    assert not PWNED.exists()


@pytest.mark.parametrize("name", ['a"b', "it's", "back\\slash", "new\nline", "; DROP DATABASE appdb; --"])
def test_finding_2_quoted_names_and_literals_reach_the_server_unchanged(tool, cluster, name):
    assert sql(cluster, f"SELECT {tool.quote_literal(name)} = {tool.quote_literal(name)}, "
                        f"length({tool.quote_literal(name)})") == f"t|{len(name)}"
    sql(cluster, f"DROP DATABASE IF EXISTS {tool.quote_ident(name)}")
    tool.psql(f"CREATE DATABASE {tool.quote_ident(name)}")
    try:
        assert tool.database_exists(name)
    finally:
        tool.psql(f"DROP DATABASE {tool.quote_ident(name)}")


def test_pg_restore_prints_a_newline_in_a_name_as_a_space(tool, hostile_database):
    """What TABLE_DATA relies on: no name can start a line of `pg_restore --list` of its own."""
    made = tool.dump("manual")
    listing = subprocess.run(["pg_restore", "--list", str(tool.BACKUPS / made["name"] / "database.dump")],
                             capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA public new line app" in listing
    assert tool.table_data_entries(tool.BACKUPS / made["name"] / "database.dump") == len(HOSTILE) + 1


def test_issue_21_a_backup_records_its_project_stack_and_kind_and_releases_push_out_only_pre_deploy_ones(
        tool, hostile_database, monkeypatch):
    """The real dump against PostgreSQL 15: its manifest names the project, the stack and the kind, and the
    pruning after it keeps each kind by its own count (an older pre-deploy backup goes, the scheduled ones stay)."""
    monkeypatch.setenv("WEBSTACK_KEEP_SCHEDULED", "2")
    monkeypatch.setenv("WEBSTACK_KEEP_PRE_DEPLOY", "1")
    older = {"20200101T000000Z-scheduled": "scheduled", "20200102T000000Z-scheduled": "scheduled",
             "20200103T000000Z-pre-deploy": "pre-deploy"}
    for name, reason in older.items():
        (tool.BACKUPS / name).mkdir()
        (tool.BACKUPS / name / "manifest.json").write_text(json.dumps({"name": name, "stack": "pgtest",
                                                                       "reason": reason, "files": {}}))
    made = tool.dump("pre-deploy")
    manifest = tool.manifest_of(tool.BACKUPS / made["name"])
    assert (manifest["project"], manifest["stack"], manifest["reason"]) == ("webstack", "pgtest", "pre-deploy")
    assert made["name"].endswith("-pre-deploy") and made["removed"] == ["20200103T000000Z-pre-deploy"]
    assert [b.name for b in tool.complete_backups()] == [*list(older)[:2], made["name"]]


def teardown_module():
    PWNED.unlink(missing_ok=True)


def test_the_switch_keeps_the_backends_connected_ends_their_sessions_and_swaps_names_in_one_transaction(
        tool, hostile_database):
    """Issue 21: a restore no longer stops the backends. A session the app holds on the current database is
    ended; the restored database takes the name and opens; the previous data stays, closed to connections."""
    tool.dump("manual")
    prepared = tool.restore_prepare(None, False, tool.BACKUPS, "pgtest", verify_only=False)
    held = subprocess.Popen(["psql", "-h", str(hostile_database), "-U", "app", "-d", "appdb", "-X", "-q", "-c",
                             "SELECT pg_sleep(60)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(100):   # the app's session is open on the current database
            if sql(hostile_database, "SELECT count(*) FROM pg_stat_activity WHERE datname = 'appdb' "
                                     "AND usename = 'app'") == "1":
                break
            time.sleep(0.05)
        switched = tool.switch(prepared["scratch"])
        assert held.wait(timeout=10) != 0 and "terminat" in held.stderr.read()   # ended, as a db restart would
    finally:
        held.kill()
    allowed = dict(line.split("|") for line in sql(
        hostile_database, "SELECT datname, datallowconn FROM pg_database WHERE datname LIKE 'appdb%'").splitlines())
    assert allowed == {"appdb": "t", switched["previous"]: "f"}
    assert sql(hostile_database, "SELECT count(*) FROM public.checked", "app", "appdb") == "2"   # reconnects


def test_a_switch_that_cannot_rename_opens_the_current_database_again(tool, hostile_database, monkeypatch):
    tool.dump("manual")
    prepared = tool.restore_prepare(None, False, tool.BACKUPS, "pgtest", verify_only=False)
    real_psql = tool.psql

    def refusing_renames(statement: str, *args, **kwargs):
        if "RENAME" in statement:
            raise tool.Refused("a rename refused (the stand-in)")
        return real_psql(statement, *args, **kwargs)
    monkeypatch.setattr(tool, "psql", refusing_renames)
    monkeypatch.setattr(tool.time, "sleep", lambda seconds: None)
    with pytest.raises(tool.Refused, match="stand-in"):
        tool.switch(prepared["scratch"])
    assert sql(hostile_database, "SELECT datallowconn FROM pg_database WHERE datname = 'appdb'") == "t"
    assert sql(hostile_database, "SELECT count(*) FROM public.checked", "app", "appdb") == "2"


def test_a_scratch_database_left_by_an_interrupted_restore_is_dropped_by_the_next_one(tool, hostile_database):
    tool.dump("manual")
    sql(hostile_database, "CREATE DATABASE appdb_restore_20200101000000 OWNER app")
    prepared = tool.restore_prepare(None, False, tool.BACKUPS, "pgtest", verify_only=False)
    restores = sql(hostile_database, "SELECT datname FROM pg_database WHERE datname LIKE 'appdb_restore_%'").split()
    assert restores == [prepared["scratch"]]
