#!/usr/bin/python3
"""webstack-backup: dumps, verifies, keeps, uploads and restores one stack's database, inside the target.

Runs in the backup image as uid 999, which the database maps to its `postgres` role by peer authentication over
the socket volume (/var/run/postgresql): no password anywhere. A backup is a directory /backups/<name>/ holding
database.dump (pg_dump --format=custom), volumes/<volume>.tar for each app volume mounted under /volumes, and
manifest.json (project, stack, reason: its kind, release, time, sizes, PostgreSQL version, SHA-256 of every file).
Its name is <UTC time>-<kind>, the kind scheduled, pre-deploy or manual. It is written under a `.partial-` name,
fsynced, then renamed: a directory with a manifest is a complete backup. With the stack's signing
key (WEBSTACK_SIGNING_KEY), manifest.hmac holds HMAC-SHA256(key, manifest.json): a restore from S3 accepts only a
backup whose manifest carries a valid one, and follows no file name but database.dump and volumes/<volume>.tar.

Every name that comes from a dump, a bucket or another stack is hostile: SQL gets names from the catalog of the
restored database (never from `pg_restore --list`, whose names are unquoted and ambiguous), quoted by the server
(format('%I')) or by quote_ident/quote_literal below; the restore and its checks run as the stack's own role, so
code the app role left in its database (a CHECK constraint's function, a crafted name) never runs as a superuser.

Retention is by kind (WEBSTACK_KEEP_SCHEDULED for scheduled and manual backups, WEBSTACK_KEEP_PRE_DEPLOY for
pre-deploy ones), locally and offsite. Offsite keys are <prefix>/<project>/<stack>/<backup>/<file>; a restore takes
a backup only when its manifest names the project and stack it expects (this one, or the one given as the source).

Settings come from the environment (WEBSTACK_PROJECT, WEBSTACK_STACK, WEBSTACK_DB_NAME, WEBSTACK_DB_USER,
WEBSTACK_RELEASE, WEBSTACK_KEEP_SCHEDULED, WEBSTACK_KEEP_PRE_DEPLOY, WEBSTACK_OFFSITE as JSON, WEBSTACK_SCHEDULE,
WEBSTACK_VOLUMES); S3 credentials and the signing key from the environment or, with --credentials-stdin, as JSON on
stdin (so they appear in no process list and no container's configuration). Progress goes to stderr; a command's
result is one line `RESULT <json>` on stdout. Exit codes: 0 done, 2 refused or failed with a message (no traceback).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

BACKUPS = Path("/backups")
VOLUMES = Path("/volumes")
SOCKET = "/var/run/postgresql"
HEARTBEAT = Path("/tmp/webstack-backup-heartbeat")
LAST_RUN = Path("/tmp/webstack-backup-last-run")
SHIP_STATUS = Path("/tmp/webstack-backup-ship-status")
MANIFEST = "manifest.json"
SIGNATURE = "manifest.hmac"
DUMP = "database.dump"
# The only files a manifest may name: anything else (`../x`, `/etc/x`) is refused before it becomes a path.
VOLUME_FILE = re.compile(r"volumes/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.tar\Z")
MANIFEST_MAX = 1 << 20
# A TABLE DATA line of `pg_restore --list`: "<id>; <tableoid> <oid> TABLE DATA <schema> <name> <owner>". The
# prefix is fixed (a name cannot fake it: pg_restore prints a newline in a name as a space), the rest is not
# parseable (names may hold spaces), so it is only ever counted, never turned into SQL.
TABLE_DATA = re.compile(r"\d+; \d+ \d+ TABLE DATA ")
SQL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z-[a-z0-9-]{1,40}\Z")
# What took a backup; the last part of its name. Each kind is kept by one count (see retention below).
KINDS = ("scheduled", "pre-deploy", "manual")
SCHEDULE = re.compile(r"(?:daily (?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)|every (?P<every>[1-9]\d{0,3})(?P<unit>[mh]))\Z")
CHUNK = 1 << 20
started = time.monotonic()


class Refused(Exception):
    """A problem the operator can act on: printed as one message, exit code 2."""


def log(message: str) -> None:
    print(f"webstack-backup [{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)


def result(value: dict) -> None:
    print("RESULT " + json.dumps(value, sort_keys=True), flush=True)


# --- configuration --------------------------------------------------------------------------------------

def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise Refused(f"environment variable {name} is not set (the job is started by webstack with it)")
    return value


def db_name() -> str:
    name = env("WEBSTACK_DB_NAME")
    if not SQL_NAME.fullmatch(name):
        raise Refused(f"WEBSTACK_DB_NAME={name!r} is not a lower-case SQL identifier")
    return name


def db_user() -> str:
    user = env("WEBSTACK_DB_USER")
    if not SQL_NAME.fullmatch(user):
        raise Refused(f"WEBSTACK_DB_USER={user!r} is not a lower-case SQL identifier")
    return user


def offsite() -> dict | None:
    raw = os.environ.get("WEBSTACK_OFFSITE", "")
    return json.loads(raw) if raw.strip() else None


def read_credentials_from_stdin() -> None:
    """{"accessKeyId", "secretAccessKey"[, "sessionToken"], "signingKey"} on stdin: into this process's
    environment only."""
    data = json.loads(sys.stdin.read() or "{}")
    names = {"accessKeyId": "AWS_ACCESS_KEY_ID", "secretAccessKey": "AWS_SECRET_ACCESS_KEY",
             "sessionToken": "AWS_SESSION_TOKEN", "signingKey": "WEBSTACK_SIGNING_KEY"}
    for key, variable in names.items():
        if data.get(key):
            os.environ[variable] = data[key]


def signing_key() -> bytes | None:
    key = os.environ.get("WEBSTACK_SIGNING_KEY", "")
    return key.encode() if key else None


def signature(manifest: bytes, key: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


# --- files ------------------------------------------------------------------------------------------------

def safe_relative(relative: object) -> str:
    """A file name from a manifest, refused unless it is the dump or volumes/<volume>.tar."""
    if not isinstance(relative, str) or not (relative == DUMP or VOLUME_FILE.fullmatch(relative)):
        raise Refused(f"the backup's manifest names the file {relative!r}, which is neither {DUMP} nor "
                      "volumes/<volume>.tar: the backup is refused and nothing was changed")
    return relative


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def complete_backups(root: Path | None = None) -> list[Path]:
    """Complete backups (a manifest exists), oldest first: names start with their UTC time."""
    root = root or BACKUPS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and BACKUP_NAME.fullmatch(p.name)
                  and (p / MANIFEST).is_file())


def manifest_of(backup: Path) -> dict:
    return json.loads((backup / MANIFEST).read_text())


def verify(backup: Path) -> dict:
    """The manifest, once every file's SHA-256 and size match it; Refused naming the first file that does not."""
    label = backup.name.removeprefix(".incoming-")
    if not (backup / MANIFEST).is_file():
        raise Refused(f"backup {label} has no manifest: it is incomplete and cannot be restored")
    manifest = manifest_of(backup)
    for relative, expected in sorted(manifest["files"].items()):
        path = backup / safe_relative(relative)
        if path.is_symlink() or not path.is_file():
            raise Refused(f"backup {label} is corrupted: {relative} is missing; nothing was changed. "
                          "Pick another backup (python -m ops backup --list --stack STACK) and restore it with --name")
        actual = sha256_of(path)
        if actual != expected["sha256"] or path.stat().st_size != expected["size"]:
            raise Refused(f"backup {label} is corrupted: {relative} has SHA-256 {actual[:16]}... "
                          f"({path.stat().st_size} bytes), the manifest says {expected['sha256'][:16]}... "
                          f"({expected['size']} bytes); nothing was changed. Pick another backup "
                          "(python -m ops backup --list --stack STACK) and restore it with --name")
    return manifest


class Lock:
    """One job at a time writes or prunes /backups (the schedule and an operator's job may meet)."""

    def __enter__(self):
        self.handle = open(BACKUPS / ".lock", "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# --- PostgreSQL -------------------------------------------------------------------------------------------

def quote_ident(name: str) -> str:
    """An SQL identifier that PostgreSQL reads back as exactly `name`: in double quotes, each `"` doubled."""
    if "\x00" in name:
        raise Refused(f"the name {name!r} holds a NUL byte, which no PostgreSQL name can")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """An SQL string literal, whatever standard_conforming_strings says: E'...' with backslashes and quotes
    doubled."""
    if "\x00" in value:
        raise Refused(f"the value {value!r} holds a NUL byte, which no PostgreSQL string can")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def psql(sql: str, database: str = "postgres", role: str = "postgres", socket: str | None = None) -> str:
    """socket: the stack's server by default (SOCKET); a recovered scratch server has its own (PITR_SOCKET)."""
    # search_path from the connection: a database owner (the app role) may have set one for its database that puts
    # its own functions before pg_catalog's; a client option outranks that setting.
    done = subprocess.run(["psql", "-h", socket or SOCKET, "-U", role, "-d", database, "-X", "-q", "-A", "-t",
                           "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True,
                          env={**os.environ, "PGOPTIONS": "-c search_path=pg_catalog"})
    if done.returncode != 0:
        where = "" if socket is None else " of the recovered server"
        raise Refused(f"psql on {database}{where} as {role} failed: {done.stderr.strip()[-800:]}")
    return done.stdout.strip()


def run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise Refused(f"{what} failed: {done.stderr.strip()[-1500:]}")


def server_version() -> str:
    return psql("SHOW server_version")


def database_exists(name: str) -> bool:
    return psql(f"SELECT count(*) FROM pg_database WHERE datname = {quote_literal(name)}") == "1"


def table_data_entries(dump: Path) -> int:
    """How many TABLE DATA entries the dump's table of contents (`pg_restore --list`) has."""
    done = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True)
    if done.returncode != 0:
        raise Refused(f"pg_restore --list cannot read {dump.name}: {done.stderr.strip()[-500:]}")
    return sum(1 for line in done.stdout.splitlines() if TABLE_DATA.match(line))


# The app's tables (the catalog, not the dump, names them), as JSON so that any name survives. Only catalog
# tables are read: safe for a superuser in a database whose owner is the app role.
USER_TABLES = ("FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'")


def table_names(database: str) -> list[str]:
    return json.loads(psql("SELECT coalesce(json_agg(n.nspname || '.' || c.relname ORDER BY n.nspname, c.relname), "
                           f"'[]') {USER_TABLES}", database))


def row_counts(database: str, role: str) -> dict[str, int]:
    """Rows per table, counted by `role` (not a superuser: reading the app's tables may run the app's code),
    each query built by the server from the catalog's names (format('%I'))."""
    counts = json.loads(psql(
        "SELECT coalesce(json_agg(json_build_array(n.nspname || '.' || c.relname, (xpath('/row/n/text()', "
        "query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]"
        f"::text::bigint)), '[]') {USER_TABLES}", database, role))
    return {name: count for name, count in sorted(counts)}


# --- backup -------------------------------------------------------------------------------------------------

def dump(reason: str) -> dict:
    if reason not in KINDS:
        raise Refused(f"reason {reason!r}: one of {', '.join(KINDS)} (it decides how long the backup is kept)")
    project, stack, database, user = env("WEBSTACK_PROJECT"), env("WEBSTACK_STACK"), db_name(), db_user()
    key = signing_key()
    if offsite() and key is None:
        raise Refused("offsite copies are signed, and this job has no signing key (WEBSTACK_SIGNING_KEY): "
                      "deploy the stack with this version of webstack first (pulumi up)")
    now = dt.datetime.now(dt.timezone.utc)
    name = f"{now:%Y%m%dT%H%M%SZ}-{reason}"
    with Lock():
        for stale in BACKUPS.glob(".partial-*"):   # left by a job that died: never a complete backup
            shutil.rmtree(stale, ignore_errors=True)
        partial = BACKUPS / f".partial-{name}"
        final = BACKUPS / name
        if final.exists():
            raise Refused(f"backup {name} exists already; wait a second and run again")
        partial.mkdir(mode=0o700)
        try:
            version = server_version()
            log(f"dumping database {database} (PostgreSQL {version}) of stack {stack}")
            run(["pg_dump", "-h", SOCKET, "-U", "postgres", "-d", database, "--format=custom",
                 "--file", str(partial / DUMP)], "pg_dump")
            entries = file_entries(partial, [DUMP, *archive_volumes(partial)])
            # project and stack are signed with the rest: a restore checks them before it uses the backup.
            manifest = {
                "format": 1, "name": name, "project": project, "stack": stack, "reason": reason,
                "release": env("WEBSTACK_RELEASE", ""),
                "created": now.isoformat(timespec="seconds"), "database": {"name": database, "user": user},
                "postgresql": version, "files": entries, "sha256": entries[DUMP]["sha256"],
                "size": sum(e["size"] for e in entries.values()),
                "tables": table_names(database)}
            seal(partial, final, manifest, key)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        log(f"backup {name}: {manifest['size']} bytes, sha256 {manifest['sha256'][:16]}...")
        removed = prune(keep_counts())
    uploaded = upload(final) if offsite() else None
    return {"name": name, "size": manifest["size"], "sha256": manifest["sha256"], "removed": removed,
            "offsite": uploaded}


def archive_volumes(partial: Path) -> list[str]:
    """volumes/<volume>.tar of each app volume mounted under /volumes (what a volume restore set aside is left
    out); returns their names relative to `partial`."""
    volumes = os.environ.get("WEBSTACK_VOLUMES", "").split()
    if volumes:
        (partial / "volumes").mkdir()
    files = []
    for volume in volumes:
        log(f"archiving app volume {volume}")
        relative = f"volumes/{volume}.tar"
        with tarfile.open(partial / relative, "w") as tar:
            tar.add(VOLUMES / volume, arcname=volume,
                    filter=lambda member: None if RESTORE_LEFTOVER.match(member.name) else member)
        files.append(relative)
    return files


def file_entries(partial: Path, files: list[str]) -> dict[str, dict]:
    """Each file's size and SHA-256, once it is on disk (fsynced)."""
    entries = {}
    for relative in files:
        path = partial / relative
        fsync_path(path)
        entries[relative] = {"size": path.stat().st_size, "sha256": sha256_of(path)}
    return entries


def seal(partial: Path, final: Path, manifest: dict, key: bytes | None) -> None:
    """Writes the manifest (and its signature) into `partial`, fsyncs, renames it to `final`: from then on it is a
    complete backup."""
    text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    (partial / MANIFEST).write_bytes(text)
    fsync_path(partial / MANIFEST)
    if key:
        (partial / SIGNATURE).write_text(signature(text, key) + "\n")
        fsync_path(partial / SIGNATURE)
    fsync_path(partial)
    os.rename(partial, final)
    fsync_path(BACKUPS)


# --- retention ----------------------------------------------------------------------------------------------
# Each kind is pruned by its own count, so a day of releases (a pre-deploy backup each) cannot push out every
# scheduled backup. Manual backups count with the scheduled ones: both are restore points someone chose the time
# of, and kept apart without a limit they would fill the volume until a pre-deploy backup fails.

POOLS = {"scheduled": ("WEBSTACK_KEEP_SCHEDULED", "keepScheduled", 7),
         "pre-deploy": ("WEBSTACK_KEEP_PRE_DEPLOY", "keepPreDeploy", 5)}


def kind_of(name: str) -> str:
    """A backup's kind (its manifest's `reason`) from its name, <time>-<kind>: offsite pruning lists names and
    reads no manifest."""
    return name.split("-", 1)[1]


def pool_of(name: str) -> str:
    return "pre-deploy" if kind_of(name) == "pre-deploy" else "scheduled"


def keep_counts() -> dict[str, int]:
    return {pool: int(env(variable, str(default))) for pool, (variable, _, default) in POOLS.items()}


def beyond_retention(names: list[str], keep: dict[str, int]) -> list[str]:
    """The backups no count keeps, oldest first: in each pool all but the newest `keep[pool]` (at least 1: the
    newest good backup of each kind always stays). Names sort by time."""
    doomed = []
    for pool, count in keep.items():
        members = sorted(n for n in names if pool_of(n) == pool)
        doomed += members[:-max(count, 1)]
    return sorted(doomed)


def retention_note(name: str, keep: dict[str, int]) -> str:
    pool = pool_of(name)
    return f"{POOLS[pool][1]}={keep[pool]}"


def prune(keep: dict[str, int]) -> list[str]:
    """Removes the complete backups beyond retention (beyond_retention)."""
    backups = {b.name: b for b in complete_backups()}
    doomed = beyond_retention(list(backups), keep)
    for name in doomed:
        shutil.rmtree(backups[name])
        log(f"removed old backup {name} ({retention_note(name, keep)})")
    return doomed


# --- offsite ------------------------------------------------------------------------------------------------

def s3_client(config: dict):
    import boto3   # only the offsite commands need it

    return boto3.client("s3", region_name=config.get("region") or None, endpoint_url=config.get("endpoint") or None)


def s3_prefix(config: dict, project: str, stack: str) -> str:
    """Where a stack's offsite backups live: <prefix>/<project>/<stack>/. The project is part of it because stack
    names repeat across projects (every project has a `prod`): under <prefix>/<stack>/ alone, two projects' stacks
    in one bucket pruned each other's backups, and a restore's "latest" could be the other project's."""
    return "/".join(p for p in (config.get("prefix", "").strip("/"), project, stack) if p) + "/"


def legacy_prefix(config: dict, stack: str) -> str:
    """<prefix>/<stack>/, where backups were uploaded before the key named the project. Read by a restore when the
    backup is not under s3_prefix, never pruned or written: other projects' stacks of the same name may share it
    (README "Backups" says how to move or remove what is there)."""
    return "/".join(p for p in (config.get("prefix", "").strip("/"), stack) if p) + "/"


def upload(backup: Path) -> dict:
    """Every file with SSE (AES256) and its SHA-256 in the metadata, read back and hashed, then the manifest's
    signature, the manifest last."""
    config = offsite()
    client = s3_client(config)
    bucket, prefix = config["bucket"], s3_prefix(config, env("WEBSTACK_PROJECT"), env("WEBSTACK_STACK"))
    manifest = manifest_of(backup)
    if not (backup / SIGNATURE).is_file():
        raise Refused(f"backup {backup.name} has no {SIGNATURE}: only signed backups are copied offsite")
    for relative in [*sorted(manifest["files"]), SIGNATURE, MANIFEST]:
        key = f"{prefix}{backup.name}/{relative}"
        expected = sha256_of(backup / relative)
        log(f"uploading {relative} to s3://{bucket}/{key}")
        client.upload_file(str(backup / relative), bucket, key,
                           ExtraArgs={"ServerSideEncryption": "AES256", "Metadata": {"sha256": expected}})
        head = client.head_object(Bucket=bucket, Key=key)
        if head.get("ServerSideEncryption") != "AES256":
            raise Refused(f"s3://{bucket}/{key} is not encrypted at rest (ServerSideEncryption "
                          f"{head.get('ServerSideEncryption')!r}); check the bucket's policy")
        digest = hashlib.sha256()
        for block in client.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(CHUNK):
            digest.update(block)
        if digest.hexdigest() != expected or head["Metadata"].get("sha256") != expected:
            raise Refused(f"s3://{bucket}/{key} read back with SHA-256 {digest.hexdigest()[:16]}..., "
                          f"expected {expected[:16]}...: the upload is not trusted; run the backup again")
    removed = prune_offsite(client, bucket, prefix, keep_counts())
    log(f"offsite copy verified: s3://{bucket}/{prefix}{backup.name}/")
    return {"bucket": bucket, "prefix": f"{prefix}{backup.name}/", "removed": removed}


def offsite_backups(client, bucket: str, prefix: str) -> list[str]:
    """Complete offsite backups (their manifest was uploaded last), oldest first."""
    names = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            name, _, rest = item["Key"][len(prefix):].partition("/")
            if rest == MANIFEST and BACKUP_NAME.fullmatch(name):
                names.add(name)
    return sorted(names)


def prune_offsite(client, bucket: str, prefix: str, keep: dict[str, int]) -> list[str]:
    """The same retention as on the target (beyond_retention), in this stack's own prefix only."""
    doomed = beyond_retention(offsite_backups(client, bucket, prefix), keep)
    for name in doomed:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{name}/"):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
        log(f"removed old offsite backup {name} ({retention_note(name, keep)})")
    return doomed


def list_offsite() -> dict:
    """This stack's offsite manifests (oldest first), and the names still under the legacy prefix (shown so that
    the operator can see them and move or remove them; they may be another project's)."""
    config = offsite()
    if not config:
        raise Refused("this stack has no webstack:database.offsite")
    client, bucket = s3_client(config), config["bucket"]
    prefix = s3_prefix(config, env("WEBSTACK_PROJECT"), env("WEBSTACK_STACK"))
    legacy = legacy_prefix(config, env("WEBSTACK_STACK"))
    manifests = [json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}{n}/{MANIFEST}")["Body"].read())
                 for n in offsite_backups(client, bucket, prefix)]
    return {"offsite": manifests, "prefix": prefix, "legacyPrefix": legacy,
            "legacy": offsite_backups(client, bucket, legacy)}


def read_object(client, bucket: str, key: str) -> bytes | None:
    """A small object (a manifest, a signature), None when it does not exist; a larger one is refused."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except client.exceptions.NoSuchKey:
        return None
    data = body.read(MANIFEST_MAX + 1)
    if len(data) > MANIFEST_MAX:
        raise Refused(f"s3://{bucket}/{key} is larger than {MANIFEST_MAX} bytes: not a webstack manifest")
    return data


def authenticated_manifest(client, bucket: str, base: str, name: str, project: str,
                           stack: str) -> tuple[bytes, bytes, dict]:
    """The manifest's bytes, its signature and its content, once the signature is the stack's and the manifest
    names it (check_origin); Refused before any name in it is used."""
    key = signing_key()
    if key is None:
        raise Refused(f"--from-s3 needs the signing key of stack {stack} (the job gets it from webstack)")
    manifest = read_object(client, bucket, base + MANIFEST)
    signed = read_object(client, bucket, base + SIGNATURE)
    if manifest is None:
        raise Refused(f"s3://{bucket}/{base} has no {MANIFEST}")
    if signed is None:
        raise Refused(f"backup {name} in s3://{bucket}/{base} is not signed (it was uploaded before webstack signed "
                      f"offsite backups, or not by stack {stack}), so it is not restored from S3; nothing was changed. "
                      "Restore the target's own copy of it (python -m ops restore --stack STACK --name NAME) or a "
                      "newer, signed backup (every backup taken since this version is)")
    if not hmac.compare_digest(signed.strip(), signature(manifest, key).encode()):
        raise Refused(f"backup {name} in s3://{bucket}/{base} has a signature that does not match stack {stack}'s "
                      "key: its manifest was changed, or it is not this stack's; refused, nothing was changed")
    content = json.loads(manifest)
    if not isinstance(content, dict) or content.get("name") != name or not isinstance(content.get("files"), dict):
        raise Refused(f"backup {name} in s3://{bucket}/{base}: its signed manifest describes another backup; refused")
    check_origin(content, project, stack)
    for relative in content["files"]:
        safe_relative(relative)
    return manifest, signed, content


def locate(client, config: dict, name: str | None, project: str, stack: str) -> tuple[str, str]:
    """(prefix, name) of the offsite backup to fetch, default the newest: under the stack's prefix, else under the
    legacy one (backups uploaded before keys named the project), so that those stay restorable."""
    bucket = config["bucket"]
    prefix, legacy = s3_prefix(config, project, stack), legacy_prefix(config, stack)
    for where in (prefix, legacy):
        names = offsite_backups(client, bucket, where)
        if names and (name is None or name in names):
            if where == legacy:
                log(f"taking {name or names[-1]} from s3://{bucket}/{legacy}, where backups were kept before offsite "
                    f"keys named the project (README \"Backups\")")
            return where, name or names[-1]
    what = f"backup {name}" if name else "backups"
    there = offsite_backups(client, bucket, prefix)[-5:]
    raise Refused(f"no {what} in s3://{bucket}/{prefix}, nor in s3://{bucket}/{legacy} (the layout before offsite "
                  "keys named the project)" + (f"; there: {', '.join(there)}" if there else ""))


def fetch(name: str | None, project: str, stack: str) -> Path:
    """Downloads an offsite backup of `stack` of `project` (default the newest) into /backups/.incoming-<name>;
    returns that directory (checksums not yet verified). The bucket is not trusted: the manifest must carry the
    stack's signature, name that project and stack, and name only the dump and volumes/<volume>.tar, and every file
    is created new inside that directory."""
    config = offsite()
    if not config:
        raise Refused("--from-s3 needs webstack:database.offsite (bucket, region, endpoint) on this stack")
    if name is not None and not BACKUP_NAME.fullmatch(name):
        raise Refused(f"{name!r} is not a backup name (like 20260101T031500Z-scheduled)")
    client = s3_client(config)
    bucket = config["bucket"]
    prefix, name = locate(client, config, name, project, stack)
    base = f"{prefix}{name}/"
    manifest, signed, content = authenticated_manifest(client, bucket, base, name, project, stack)
    incoming = BACKUPS / f".incoming-{name}"
    if incoming.is_symlink():
        incoming.unlink()
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(mode=0o700)
    for relative in sorted(content["files"]):
        path = incoming / relative
        if path.parent != incoming:
            path.parent.mkdir(mode=0o700, exist_ok=True)
        log(f"downloading s3://{bucket}/{base}{relative}")
        # O_EXCL|O_NOFOLLOW: a new file in a directory made here, never through a link or over another file.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            client.download_fileobj(bucket, base + relative, handle)
    (incoming / MANIFEST).write_bytes(manifest)
    (incoming / SIGNATURE).write_bytes(signed)
    return incoming


# --- origin -------------------------------------------------------------------------------------------------
# A restore takes a backup only of the project and stack it expects: this stack's own, or the source it was given
# (ops restore --from-stack [PROJECT/]STACK). A manifest without `project` was written before manifests named it:
# its stack decides (offsite, its signature is also the stack's own key, which no stack of another project has).

IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")   # a project or stack name (components/settings.py)


def origin(manifest: dict, project: str) -> tuple[object, object]:
    return manifest.get("project", project), manifest.get("stack")


def is_from(backup: Path, project: str, stack: str) -> bool:
    try:
        return origin(manifest_of(backup), project) == (project, stack)
    except (OSError, ValueError, AttributeError):   # an unreadable manifest is nobody's restore point
        return False


def check_origin(manifest: dict, project: str, stack: str) -> None:
    """Refused, with the way to take it on purpose, unless the manifest names `project` and `stack`."""
    theirs_project, theirs_stack = origin(manifest, project)
    if (theirs_project, theirs_stack) == (project, stack):
        return
    message = (f"backup {manifest.get('name')!r} is of stack {theirs_stack!r} of project {theirs_project!r}; this "
               f"restore takes backups of stack {stack!r} of project {project!r}. Refused, nothing was changed.")
    # A hint only with names that are names: the manifest may come from a hostile bucket or volume.
    if all(isinstance(v, str) and IDENTIFIER.fullmatch(v) for v in (theirs_project, theirs_stack)):
        source = theirs_stack if theirs_project == env("WEBSTACK_PROJECT", "") else f"{theirs_project}/{theirs_stack}"
        message += (f" To restore it on purpose: python -m ops restore --stack {env('WEBSTACK_STACK', 'STACK')} "
                    f"--from-stack {source} --name NAME (add --from-s3 for the offsite copy)")
    raise Refused(message)


# --- restore ------------------------------------------------------------------------------------------------

def choose(root: Path, name: str | None, project: str, stack: str) -> Path:
    """The backup `name` in root, or the newest of `stack` of `project` there: a backup another stack's restore
    fetched from S3 is kept beside this stack's own, and is no restore point of this stack."""
    backups = complete_backups(root)
    if not backups:
        raise Refused("there is no backup to restore yet: take one with python -m ops backup --stack STACK")
    if name is None:
        own = [b for b in backups if is_from(b, project, stack)]
        if not own:
            raise Refused(f"none of the {len(backups)} backups here is of stack {stack} of project {project}; "
                          "nothing was changed. Take one (python -m ops backup), or name another stack's with "
                          "--from-stack and --name")
        return own[-1]
    found = next((b for b in backups if b.name == name), None)
    if found is None:
        raise Refused(f"no backup named {name!r}; the newest are: {', '.join(b.name for b in backups[-5:])}")
    check_origin(manifest_of(found), project, stack)
    return found


def scratch_prefix(database: str) -> str:
    """A restore's scratch database is <prefix><UTC time, 14 digits>; the prefix leaves room in PostgreSQL's 63
    characters for the longer <name>_pre_restore_<time> the current data is kept under."""
    return f"{database[:36]}_restore_"


def pre_deploy_point(release: str, root: Path, project: str, stack: str) -> Path:
    """The restore point (or dump) the update that deployed `release` took before it changed anything."""
    taken = [b for b in complete_backups(root) if is_from(b, project, stack)
             and manifest_of(b).get("reason") == "pre-deploy" and manifest_of(b).get("release") == release]
    if not taken:
        releases = sorted({m.get("release") for m in map(manifest_of, complete_backups(root))
                           if m.get("reason") == "pre-deploy" and m.get("release")})
        raise Refused(f"no pre-deploy restore point of release {release!r} is kept (keepPreDeploy); releases with "
                      f"one: {', '.join(releases[-10:]) or 'none'}")
    return taken[-1]


def restore_prepare(name: str | None, from_s3: bool, source: Path, source_stack: str, verify_only: bool,
                    source_project: str | None = None, to_time: str | None = None,
                    before_release: str | None = None, volumes_only: bool = False) -> dict:
    """Verify, restore into a fresh database, check it; verify_only drops it again. Changes nothing else.
    source_stack/source_project: whose backup this restore takes (default this stack, this project).
    With continuous archiving: to_time, a restore-point manifest (by name or before_release), or no choice at all
    (the end of the archive) recover the archive instead of a dump. volumes_only: only say which backup set holds
    the app volumes (the database is not restored)."""
    database = db_name()
    project = source_project or env("WEBSTACK_PROJECT")
    own = source_stack == env("WEBSTACK_STACK") and project == env("WEBSTACK_PROJECT")
    local_archive = own and not from_s3 and pitr_enabled()
    if before_release and not (own and not from_s3):
        raise Refused("--before-release takes this stack's own pre-deploy restore point on its backups volume; "
                      "another stack's or a bucket's backup is taken by --name")
    if to_time and not (local_archive or from_s3):
        raise Refused("--to-time needs a WAL archive: this stack's own (set webstack:database.pitr.enabled true and "
                      "deploy) or one shipped to the bucket (--from-s3); until then, restore a backup by --name")
    backup, repo = None, None
    if before_release:
        backup = pre_deploy_point(before_release, source, project, source_stack)
    elif name is not None:
        backup = fetch(name, project, source_stack) if from_s3 else choose(source, name, project, source_stack)
    elif from_s3:   # a lost host: the shipped archive reaches closer to the loss than any dump
        repo = fetch_archive(project, source_stack)
        if repo is None and to_time:
            raise Refused(f"the bucket holds no WAL archive of stack {source_stack}, so --to-time cannot be "
                          "recovered; restore a dump by --name")
        if repo is None:
            backup = fetch(None, project, source_stack)
    elif not local_archive:
        backup = choose(source, None, project, source_stack)
    point = None
    if backup is not None:
        log(f"verifying the checksums of backup {backup.name.removeprefix('.incoming-')}")
        try:
            manifest = verify(backup)
        except Refused:
            if from_s3:   # a download that failed verification is not kept
                shutil.rmtree(backup, ignore_errors=True)
            raise
        if manifest.get("kind") == RESTORE_POINT:
            if not pitr_enabled():
                raise Refused(f"{manifest['name']} is a restore point in the WAL archive, and this stack has "
                              "database.pitr.enabled false now: turn it on again to recover it")
            point = manifest
    volume_set = backup
    if to_time:   # the volumes have no archive of their own: their newest copy taken by then
        volume_set = volume_set_before(recovery_datetime(to_time), source, project, source_stack)
    volumes = volumes_in(manifest_of(volume_set)) if volume_set is not None else []
    chosen = {"volumeSet": volume_set.name.removeprefix(".incoming-") if volumes else None, "volumes": volumes}
    if volumes_only:
        if repo is not None:
            shutil.rmtree(repo, ignore_errors=True)
        if backup is not None and from_s3:
            keep_download(backup)
        return {"backup": (backup or volume_set or Path("-")).name.removeprefix(".incoming-"), **chosen}
    for stale in BACKUPS.glob(f"{PITR_SCRATCH}*"):   # left by a restore that was interrupted
        shutil.rmtree(stale, ignore_errors=True)
    work = None
    if backup is None or point is not None:
        options, label = pitr_target(to_time, point, repo)
        if local_archive:
            # What the running database wrote up to now is in the archive before the recovery reads it (a time a
            # moment ago lies in a segment archive_timeout has not finished yet).
            log(f"archived up to WAL segment {flush_archive()}")
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        work = BACKUPS / f"{PITR_SCRATCH}{stamp}"
        work.mkdir(mode=0o700)
        dump_file = pitr_restore_dump(options, label, work, repo)
        described = {"backup": point["name"] if point else label, "size": dump_file.stat().st_size, "target": label}
    else:
        dump_file = backup / DUMP
        described = {"backup": manifest["name"], "size": manifest["size"]}
    try:
        scratch, counts = restore_into_scratch(dump_file, database)
    finally:
        for scratch_dir in (work, repo):
            if scratch_dir is not None:
                shutil.rmtree(scratch_dir, ignore_errors=True)
    if backup is not None and from_s3:
        keep_download(backup)
    if verify_only:
        psql(f"DROP DATABASE {quote_ident(scratch)}")
        log(f"verify mode: the scratch database {scratch} was checked and dropped; nothing else changed")
    return {**described, "scratch": scratch, "tables": counts, "verifyOnly": verify_only, **chosen}


def keep_download(backup: Path) -> None:
    """A backup downloaded from S3 (verified by now) joins the local ones, where a volume restore finds it."""
    final = BACKUPS / backup.name.removeprefix(".incoming-")   # a BACKUP_NAME, checked by fetch()
    if not final.exists():
        os.rename(backup, final)
    else:
        shutil.rmtree(backup)


def restore_into_scratch(dump_file: Path, database: str) -> tuple[str, dict[str, int]]:
    """Restores a dump into a fresh database <scratch_prefix><time> and counts its rows; returns both."""
    user = db_user()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S")
    scratch = f"{scratch_prefix(database)}{stamp}"
    entries = table_data_entries(dump_file)
    log(f"the dump holds {entries} tables; restoring into a fresh database {scratch}")
    # A scratch database of a restore that was interrupted before its switch: never switched, never needed (only
    # one restore job of a stack runs at a time: components/backup_job.restore_job_name).
    leftovers = quote_literal("^" + re.escape(scratch_prefix(database)) + "[0-9]{14}$")
    for left in psql(f"SELECT datname FROM pg_database WHERE datname ~ {leftovers}").split():
        log(f"dropping {left}, left by an interrupted restore")
        psql(f"DROP DATABASE {quote_ident(left)} WITH (FORCE)")
    psql(f"CREATE DATABASE {quote_ident(scratch)} OWNER {quote_ident(user)}")
    try:
        # As the stack's role, not the superuser: the dump is the app role's material (its functions run while the
        # data loads, e.g. in CHECK constraints), and every object ends up owned by that role (--no-owner).
        run(["pg_restore", "-h", SOCKET, "-U", user, "-d", scratch, "--no-owner", "--no-acl",
             "--exit-on-error", "--jobs=2", str(dump_file)], "pg_restore")
        counts = row_counts(scratch, user)
        if len(counts) < entries:
            raise Refused(f"the restored database has {len(counts)} tables, the backup's table of contents "
                          f"{entries}: the restore is incomplete; nothing was changed")
    except BaseException:
        psql(f"DROP DATABASE IF EXISTS {quote_ident(scratch)}")
        raise
    for table, count in sorted(counts.items()):
        log(f"  {table!r}: {count} rows")
    return scratch, counts


def switch(scratch: str) -> dict:
    """Makes `scratch` the stack's database; the current one is kept as <name>_pre_restore_<time>.

    The backends keep running, so a restore interrupted at any point leaves the app serving (the old data, or the
    new): new sessions are refused while the names change (a request then gets the app's 503), open ones are
    ended, both renames and the re-opening commit together, and the backends reconnect as after a database
    restart. The previous data stays closed to connections (ALTER DATABASE ... ALLOW_CONNECTIONS true to look)."""
    database = db_name()
    if not re.fullmatch(rf"{re.escape(scratch_prefix(database))}(\d{{14}})", scratch):
        raise Refused(f"{scratch!r} is not a restore database of {database}")
    stamp = scratch.rsplit("_", 1)[1]
    previous = f"{database[:36]}_pre_restore_{stamp}"
    if not database_exists(scratch):
        raise Refused(f"database {scratch} does not exist")
    had_current = database_exists(database)
    closing = [scratch, *([database] if had_current else [])]
    for name in closing:
        psql(f"ALTER DATABASE {quote_ident(name)} ALLOW_CONNECTIONS false")
    try:
        for attempt in range(1, 6):
            try:
                psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     f"WHERE datname IN ({quote_literal(database)}, {quote_literal(scratch)}) "
                     "AND pid <> pg_backend_pid()")
                statements = ([f"ALTER DATABASE {quote_ident(database)} RENAME TO {quote_ident(previous)}"]
                              if had_current else []) + [
                    f"ALTER DATABASE {quote_ident(scratch)} RENAME TO {quote_ident(database)}",
                    f"ALTER DATABASE {quote_ident(database)} ALLOW_CONNECTIONS true"]
                psql("; ".join(statements))   # one implicit transaction: all of it, or none
                break
            except Refused:
                if attempt == 5:
                    raise
                time.sleep(1)
    except Refused:
        if had_current:   # nothing switched: the current data opens again
            psql(f"ALTER DATABASE {quote_ident(database)} ALLOW_CONNECTIONS true")
        raise
    log(f"{database} is now the restored data" + (f"; the previous data is kept as {previous}" if had_current else ""))
    return {"database": database, "previous": previous if had_current else None}


# --- continuous archiving and point-in-time recovery (database.pitr) ---------------------------------------------
# pgBackRest keeps the archive in /backups/pgbackrest: base backups and every WAL segment the database's
# archive_command pushed. Its options are the PGBACKREST_* variables webstack sets (components/backup_job.py).
# A restore point before an update is a named point in the WAL (seconds, whatever the size of the data) recorded as
# a manifest of kind "restore-point"; a restore recovers the archive into a scratch data directory on this volume,
# starts a private server on it (no TCP, a socket in /tmp, archiving off), dumps the database from it and goes on
# as a dump's restore does: into a fresh database of the running cluster, checked, then switched.

PITR_SCRATCH = ".pitr-"
PITR_SOCKET = Path("/tmp/webstack-pitr")
RESTORE_POINT = "restore-point"
STANZA = "webstack"   # components/backup_job.PGBACKREST_STANZA
ARCHIVED_WITHIN_SECONDS = 120


def pitr_enabled() -> bool:
    return bool(os.environ.get("PGBACKREST_STANZA"))


def pgbackrest(*args: str, what: str | None = None) -> str:
    done = subprocess.run(["pgbackrest", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise Refused(f"pgbackrest {what or args[-1]} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    return done.stdout


def base_backups(repo: Path | None = None) -> list[dict]:
    """pgBackRest's base backups of the stanza, oldest first; [] when there is none, or no stanza yet."""
    done = subprocess.run(["pgbackrest", *repo_options(repo), "info", "--output=json"], capture_output=True, text=True)
    if done.returncode != 0:
        log(f"pgbackrest info: {done.stderr.strip()[-300:]}")
        return []
    stanzas = json.loads(done.stdout or "[]")
    return stanzas[0].get("backup", []) if stanzas else []


def archived(segment: str) -> bool:
    """Whether WAL segment `segment` (24 hex digits) is in the archive."""
    repo = Path(env("PGBACKREST_REPO1_PATH")) / "archive" / env("PGBACKREST_STANZA")
    return any(repo.glob(f"*/{segment[:16]}/{segment}-*"))


def wait_archived(segment: str) -> None:
    deadline = time.monotonic() + ARCHIVED_WITHIN_SECONDS
    while not archived(segment):
        if time.monotonic() > deadline:
            failed = psql("SELECT coalesce(last_failed_wal, '-') || ' at ' || coalesce(last_failed_time::text, '-') "
                          "FROM pg_stat_archiver")
            raise Refused(f"WAL segment {segment} is not in the archive {ARCHIVED_WITHIN_SECONDS}s after it was "
                          f"finished (last failed push: {failed}): archiving is broken or far behind, so no restore "
                          "point can be promised. See the database's log (python -m ops logs --stack STACK database)")
        time.sleep(0.5)


def archiver() -> dict:
    """How archiving is doing (pg_stat_archiver): seconds since the last segment was archived, the failures."""
    row = psql("SELECT json_build_object('lastArchivedWal', last_archived_wal, 'secondsSinceLastArchived', "
               "round(extract(epoch FROM now() - last_archived_time)), 'failed', failed_count, 'lastFailedWal', "
               "last_failed_wal, 'lastFailedAt', last_failed_time) FROM pg_stat_archiver")
    return json.loads(row)


def flush_archive() -> str:
    """Finishes the current WAL segment now, not at archive_timeout, and waits until the archive holds it: everything
    committed before this call is then recoverable. Returns the segment's name."""
    # pg_walfile_name() of the switch's end position names the segment just finished.
    segment = psql("SELECT pg_walfile_name(pg_switch_wal())")
    wait_archived(segment)
    return segment


def pitr_init() -> dict:
    """Creates the stanza (idempotent), checks that archive_command delivers, and takes the first full base
    backup when there is none: from then on every later point in time is recoverable."""
    Path(env("PGBACKREST_REPO1_PATH")).mkdir(mode=0o750, exist_ok=True)
    with Lock():
        pgbackrest("stanza-create")
        pgbackrest("check")   # switches to a new WAL segment and waits until it is in the archive
        backups = base_backups()
        if not backups:
            log("no base backup yet: taking the first full backup")
            pgbackrest("backup", "--type=full")
            backups = base_backups()
    log(f"continuous archiving works; {len(backups)} base backup(s), the newest {backups[-1]['label']}")
    return {"baseBackups": len(backups), "newest": backups[-1]["label"]}


def base_backup() -> dict:
    """A full base backup; pgBackRest then expires the base backups beyond keepFull and the WAL only they needed."""
    with Lock():
        log("taking a full base backup (pgBackRest)")
        pgbackrest("backup", "--type=full")
        backups = base_backups()
    newest = backups[-1]
    log(f"base backup {newest['label']}; {len(backups)} kept")
    return {"name": newest["label"], "baseBackups": len(backups)}


def restore_point(reason: str) -> dict:
    """A named restore point in the WAL, archived before this returns, recorded as a manifest of kind
    restore-point. Without a base backup yet (archiving was just turned on) a dump is taken instead."""
    if not base_backups():
        log("no base backup in the archive yet, so a restore point could not be recovered: taking a dump instead")
        return dump(reason)
    project, stack, database, user = env("WEBSTACK_PROJECT"), env("WEBSTACK_STACK"), db_name(), db_user()
    now = dt.datetime.now(dt.timezone.utc)
    name = f"{now:%Y%m%dT%H%M%SZ}-{reason}"
    point = f"webstack-{name}"
    with Lock():
        final = BACKUPS / name
        if final.exists():
            raise Refused(f"backup {name} exists already; wait a second and run again")
        lsn = psql(f"SELECT pg_create_restore_point({quote_literal(point)})")
        segment = flush_archive()
        manifest = {
            "format": 1, "name": name, "project": project, "stack": stack, "reason": reason, "kind": RESTORE_POINT,
            "release": env("WEBSTACK_RELEASE", ""), "created": now.isoformat(timespec="seconds"),
            "database": {"name": database, "user": user}, "postgresql": server_version(), "files": {},
            "sha256": "", "size": 0, "restorePoint": {"name": point, "lsn": lsn, "segment": segment}}
        partial = BACKUPS / f".partial-{name}"
        partial.mkdir(mode=0o700)
        try:
            # The app volumes have no archive of their own: each restore point carries their copy.
            manifest["files"] = file_entries(partial, archive_volumes(partial))
            manifest["size"] = sum(e["size"] for e in manifest["files"].values())
            seal(partial, final, manifest, signing_key())
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        log(f"restore point {point} at {lsn}, archived in segment {segment}")
        removed = prune(keep_counts())
    return {"name": name, "size": manifest["size"], "sha256": "", "removed": removed, "offsite": None,
            "restorePoint": point}


def recovery_time(value: str) -> str:
    """--to-time as PostgreSQL reads it unambiguously: a time without a zone is UTC."""
    return recovery_datetime(value).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def recovery_datetime(value: str) -> dt.datetime:
    """--to-time in UTC; refused when it is no time or in the future."""
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise Refused(f"--to-time {value!r} is not a time like '2026-12-03 10:15:00' (UTC) or "
                      "'2026-12-03T11:15:00+01:00'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    when = when.astimezone(dt.timezone.utc)
    if when > dt.datetime.now(dt.timezone.utc):
        raise Refused(f"--to-time {value!r} is in the future ({when:%Y-%m-%d %H:%M:%S} UTC)")
    return when


def base_backup_before(when: dt.datetime, backups: list[dict]) -> dict:
    """The newest base backup that finished before `when` (a recovery replays WAL forward from a backup)."""
    earlier = [b for b in backups if b["timestamp"]["stop"] < when.timestamp()]
    if not earlier:
        oldest = dt.datetime.fromtimestamp(backups[0]["timestamp"]["stop"], dt.timezone.utc) if backups else None
        raise Refused(f"no base backup finished before {when:%Y-%m-%d %H:%M:%S} UTC, so the archive cannot recover "
                      "to it" + (f"; the earliest recoverable time is {oldest:%Y-%m-%d %H:%M:%S} UTC" if oldest else
                                 "") + " (database.pitr.keepFull sets how far back it reaches)")
    return earlier[-1]


def pitr_target(to_time: str | None, point: dict | None, repo: Path | None = None) -> tuple[list[str], str]:
    """pgBackRest's restore options for the target, and how to name it."""
    backups = base_backups(repo)
    if not backups:
        raise Refused("the archive holds no base backup yet: deploy the stack with database.pitr.enabled first")
    if to_time is not None:
        target = recovery_time(to_time)
        base_backup_before(recovery_datetime(to_time), backups)
        return ["--type=time", f"--target={target}", "--target-action=promote"], f"the time {target[:19]} UTC"
    if point is not None:
        created = dt.datetime.fromisoformat(point["created"])
        label = base_backup_before(created, backups)["label"]
        return (["--type=name", f"--target={point['restorePoint']['name']}", "--target-action=promote",
                 f"--set={label}"], f"restore point {point['restorePoint']['name']}")
    return ["--type=default"], "the end of the archive"


def repo_options(repo: Path | None) -> list[str]:
    """pgBackRest's options naming a repository: this stack's (its PGBACKREST_* variables) when repo is None, else
    the one at `repo` (another stack's archive fetched from S3; this stack may not archive at all)."""
    if repo is None:
        return []
    return [f"--stanza={STANZA}", f"--repo1-path={repo}", "--lock-path=/tmp/pgbackrest", "--log-level-file=off",
            "--log-level-console=warn", "--log-level-stderr=warn"]


def recovered_database(query) -> str:
    """The application database in a recovered cluster: this stack's name, else the only one there is."""
    names = query("SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' "
                  f"AND datname !~ '_(pre_)?restore_' ORDER BY 1").split()
    if db_name() in names:
        return db_name()
    if len(names) == 1:
        return names[0]
    raise Refused(f"the recovered cluster holds the databases {', '.join(names) or '(none)'}; expected "
                  f"{db_name()} or exactly one")


def start_recovered_server(data: Path, repo: Path | None, server_log: Path) -> subprocess.Popen:
    """A private server on the recovered data directory: no TCP, its socket in /tmp, archiving off (it never
    writes into any archive), and every setting that runs a shell command fixed here, so a data directory from a
    bucket cannot run one (only pgBackRest's archive-get restores WAL)."""
    PITR_SOCKET.mkdir(mode=0o700, exist_ok=True)
    # pg1-path: archive-get checks that it runs in the cluster it names (not the stack's own data directory).
    restore = " ".join(["pgbackrest", *(repo_options(repo) or [f"--stanza={STANZA}"]), f"--pg1-path={data}",
                        "archive-get", "%f", '"%p"'])
    settings = {"listen_addresses": "", "unix_socket_directories": str(PITR_SOCKET), "archive_mode": "off",
                "archive_command": "", "restore_command": restore, "recovery_end_command": "",
                "archive_cleanup_command": "", "shared_preload_libraries": "", "ssl": "off",
                # hot_standby off: no connections until recovery ends (nor the primary's max_connections needed).
                "hot_standby": "off", "max_connections": "20", "shared_buffers": "64MB", "logging_collector": "off",
                # The commit time of the last transaction replayed, for the job's report.
                "track_commit_timestamp": "on"}
    argv = ["postgres", "-D", str(data)]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    with server_log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def wait_recovered(server: subprocess.Popen, server_log: Path, label: str) -> None:
    deadline = time.monotonic() + max(60, int(env("WEBSTACK_JOB_TIMEOUT", "3600")))
    while subprocess.run(["pg_isready", "-q", "-h", str(PITR_SOCKET)]).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            tail = server_log.read_text(errors="replace")[-1500:] if server_log.exists() else ""
            raise Refused(f"the recovery to {label} did not finish: {tail.strip()}")
        time.sleep(0.5)


def pitr_restore_dump(options: list[str], label: str, work: Path, repo: Path | None = None) -> Path:
    """Recovers the archive into work/data, starts a private server on it, dumps the application database to
    work/database.dump and stops the server; returns the dump."""
    data = work / "data"
    data.mkdir(mode=0o700)
    log(f"recovering the archive to {label} into a scratch data directory")
    # archive-mode=off: the recovered cluster never pushes into this stack's archive.
    pgbackrest("restore", *repo_options(repo), f"--pg1-path={data}", "--archive-mode=off", *options, what="restore")
    server_log = work / "server.log"
    server = start_recovered_server(data, repo, server_log)
    try:
        wait_recovered(server, server_log, label)

        def query(sql: str) -> str:
            return psql(sql, socket=str(PITR_SOCKET))

        if query("SELECT pg_is_in_recovery()") != "f":
            raise Refused(f"the recovered server is still in recovery: {label} was not reached")
        last = query("SELECT coalesce((pg_last_committed_xact()).timestamp::text, 'unknown')")
        log(f"recovered; the last transaction replayed committed at {last}")
        dump_file = work / DUMP
        run(["pg_dump", "-h", str(PITR_SOCKET), "-U", "postgres", "-d", recovered_database(query),
             "--format=custom", "--file", str(dump_file)], "pg_dump of the recovered database")
        return dump_file
    finally:
        server.send_signal(signal.SIGINT)   # a fast shutdown
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


# --- the archive offsite (database.pitr with database.offsite) ---------------------------------------------------
# The schedule container mirrors the pgBackRest repository to <prefix>/<project>/<stack>/pgbackrest/ every
# SHIP_SECONDS: new and changed files up (SSE, SHA-256 in the metadata), removed ones (expired by pgBackRest) deleted,
# then a signed index of every file and its SHA-256. The database container stays on its internal network: it
# archives to the volume only. A recovery from the bucket (a lost host) downloads only what the signed index names,
# each file checked, into a scratch repository on the new stack's volume. Recovery point after a host loss:
# archive_timeout + SHIP_SECONDS at most.

SHIP_SECONDS = 10
SHIPPED = ".shipped.json"       # in /backups: what the mirror holds (relative path -> size, mtime, sha256)
INDEX = "index.json"
INDEX_SIGNATURE = "index.hmac"
REPO_FILE = re.compile(r"(?:archive|backup)/webstack(?:/[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}){0,4}/?"
                       r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}\Z")


def mirror_prefix(config: dict, project: str, stack: str) -> str:
    return f"{s3_prefix(config, project, stack)}pgbackrest/"


def repo_files(repo: Path) -> dict[str, os.stat_result]:
    """The repository's files (not pgBackRest's temporary ones, renamed into place once complete), with their
    stat; a file that goes away while they are listed (renamed, expired) is left to the next pass."""
    files = {}
    for path in sorted(repo.rglob("*")):
        relative = str(path.relative_to(repo))
        if relative.endswith(".tmp") or not REPO_FILE.fullmatch(relative):
            continue
        try:
            if path.is_file() and not path.is_symlink():
                files[relative] = path.stat()
        except FileNotFoundError:
            continue
    return files


def ship_archive() -> int:
    """One pass of the mirror; returns how many files changed in it."""
    config, key = offsite(), signing_key()
    if key is None:
        raise Refused("the archive's offsite index is signed, and this job has no signing key")
    repo = Path(env("PGBACKREST_REPO1_PATH"))
    if not repo.is_dir():
        return 0
    client, bucket = s3_client(config), config["bucket"]
    prefix = mirror_prefix(config, env("WEBSTACK_PROJECT"), env("WEBSTACK_STACK"))
    state_path = BACKUPS / SHIPPED
    shipped = json.loads(state_path.read_text()) if state_path.is_file() else {}
    changed = 0
    files = repo_files(repo)
    for relative, stat in files.items():
        mark = [stat.st_size, stat.st_mtime_ns]
        if shipped.get(relative, [None, None, None])[:2] == mark:
            continue
        try:
            digest = sha256_of(repo / relative)
            client.upload_file(str(repo / relative), bucket, prefix + relative,
                               ExtraArgs={"ServerSideEncryption": "AES256", "Metadata": {"sha256": digest}})
        except FileNotFoundError:   # expired or replaced since it was listed: the next pass sees what is there
            continue
        shipped[relative] = [*mark, digest]
        changed += 1
    for relative in sorted(set(shipped) - set(files) - {r for r in shipped if (repo / r).exists()}):   # expired
        client.delete_object(Bucket=bucket, Key=prefix + relative)
        del shipped[relative]
        changed += 1
    if changed:
        index = (json.dumps({"project": env("WEBSTACK_PROJECT"), "stack": env("WEBSTACK_STACK"),
                             "files": {r: {"size": v[0], "sha256": v[2]} for r, v in sorted(shipped.items())}},
                            sort_keys=True) + "\n").encode()
        client.put_object(Bucket=bucket, Key=prefix + INDEX_SIGNATURE, Body=signature(index, key).encode(),
                          ServerSideEncryption="AES256")
        client.put_object(Bucket=bucket, Key=prefix + INDEX, Body=index, ServerSideEncryption="AES256")
        partial = state_path.with_name(SHIPPED + ".partial")
        partial.write_text(json.dumps(shipped))
        os.replace(partial, state_path)
    return changed


def fetch_archive(project: str, stack: str) -> Path | None:
    """Downloads another (or this) stack's mirrored archive into /backups/.incoming-pgbackrest-<stack>, each file
    checked against the index its signing key signed; returns the repository's path, None when the bucket holds
    no archive of that stack."""
    config, key = offsite(), signing_key()
    if not config:
        raise Refused("--from-s3 needs webstack:database.offsite (bucket, region, endpoint) on this stack")
    if key is None:
        raise Refused(f"--from-s3 needs the signing key of stack {stack} (the job gets it from webstack)")
    client, bucket = s3_client(config), config["bucket"]
    prefix = mirror_prefix(config, project, stack)
    index, signed = read_object(client, bucket, prefix + INDEX), read_object(client, bucket, prefix + INDEX_SIGNATURE)
    if index is None:
        return None
    if signed is None:
        raise Refused(f"the archive index in s3://{bucket}/{prefix} is not signed: refused, nothing was changed")
    if not hmac.compare_digest(signed.strip(), signature(index, key).encode()):
        raise Refused(f"the archive index in s3://{bucket}/{prefix} is not signed with stack {stack}'s key: refused, "
                      "nothing was changed")
    content = json.loads(index)
    if (content.get("project"), content.get("stack")) != (project, stack):
        raise Refused(f"the archive index in s3://{bucket}/{prefix} names stack {content.get('stack')!r} of project "
                      f"{content.get('project')!r}: refused")
    for relative in content["files"]:   # every name, before any file is written
        if not REPO_FILE.fullmatch(relative) or ".." in relative.split("/"):
            raise Refused(f"the archive index names {relative!r}, which is no pgBackRest file: refused")
    repo = BACKUPS / f".incoming-pgbackrest-{stack}"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(mode=0o700)
    log(f"downloading {len(content['files'])} archive files of stack {stack} from s3://{bucket}/{prefix}")
    for relative, entry in sorted(content["files"].items()):
        path = repo / relative
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            client.download_fileobj(bucket, prefix + relative, handle)
        if sha256_of(path) != entry["sha256"]:
            raise Refused(f"s3://{bucket}/{prefix}{relative} does not match its SHA-256 in the signed index: refused")
    return repo


# --- app volumes ------------------------------------------------------------------------------------------------
# A volume's copy in a backup set is volumes/<volume>.tar. Its restore runs as root with only CHOWN, DAC_OVERRIDE
# and FOWNER (components/backup_job.run_args, restore_volumes=True): it extracts into <volume>/.webstack-restore-<time>
# (only directories and regular files under <volume>/, each created new, owned by the app's uid), then swaps entry by
# entry: the current one moves to <volume>/.webstack-pre-restore-<time> (kept), the restored one takes its place.
# The backends keep running; each entry is the old or the new one at any moment, and a rerun finishes an
# interrupted swap.

VOLUME_STAGING = ".webstack-restore-"
VOLUME_KEPT = ".webstack-pre-restore-"
RESTORE_LEFTOVER = re.compile(r"[^/]+/\.webstack-(?:pre-)?restore-")   # <volume>/.webstack-...: never archived


def volumes_in(manifest: dict) -> list[str]:
    return sorted(f[len("volumes/"):-len(".tar")] for f in manifest.get("files", {}) if VOLUME_FILE.fullmatch(f))


def volume_set_before(when: dt.datetime, root: Path, project: str, stack: str) -> Path | None:
    """The newest backup set of this stack taken at or before `when` that holds app volumes."""
    sets = [b for b in complete_backups(root) if is_from(b, project, stack) and volumes_in(manifest_of(b))
            and dt.datetime.fromisoformat(manifest_of(b)["created"]) <= when]
    return sets[-1] if sets else None


def extract_volume(archive: Path, volume: str, staging: Path) -> int:
    """The archive's entries under <volume>/ into staging/<volume>; returns how many. Anything else (a link, a
    device, a name outside <volume>/) is refused: the archive is data, never a way to write elsewhere."""
    uid, gid = (int(part) for part in env("WEBSTACK_VOLUME_OWNER").split(":"))
    (staging / volume).mkdir(mode=0o700)
    count = 0
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not parts or parts[0] != volume or ".." in parts or member.name.startswith("/"):
                raise Refused(f"volumes/{volume}.tar holds {member.name!r}, outside {volume}/: refused, nothing of the "
                              "volume was changed")
            if not (member.isdir() or member.isfile()):
                raise Refused(f"volumes/{volume}.tar holds {member.name!r}, which is neither a file nor a directory "
                              "(links and devices are not restored): refused, nothing of the volume was changed")
            target = staging.joinpath(*parts)
            if member.isdir():
                target.mkdir(mode=0o700, exist_ok=len(parts) == 1)
            elif not target.parent.is_dir():
                raise Refused(f"volumes/{volume}.tar holds {member.name!r} before its directory: not an archive "
                              "webstack wrote; refused, nothing of the volume was changed")
            else:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(tar.extractfile(member), out, CHUNK)
            os.chown(target, uid, gid, follow_symlinks=False)
            os.chmod(target, member.mode & (0o2777 if member.isdir() else 0o777))
            count += 1
    return count


def swap_in(root: Path, restored: Path, kept: Path) -> None:
    kept.mkdir(mode=0o700, exist_ok=True)
    names = {p.name for p in root.iterdir() if not p.name.startswith(".webstack-")} | {p.name for p in restored.iterdir()}
    for name in sorted(names):
        if os.path.lexists(root / name):
            os.rename(root / name, kept / name)
        if os.path.lexists(restored / name):
            os.rename(restored / name, root / name)


def restore_volumes(name: str, volumes: list[str], source: Path, project: str, stack: str) -> dict:
    """Restores the named app volumes from backup set `name` (checksums verified first)."""
    if not BACKUP_NAME.fullmatch(name) or not (source / name / MANIFEST).is_file():
        raise Refused(f"no backup named {name!r} in {source}")
    manifest = verify(source / name)
    check_origin(manifest, project, stack)
    missing = [v for v in volumes if v not in volumes_in(manifest)]
    if missing:
        raise Refused(f"backup {name} holds no copy of app volume(s) {', '.join(missing)} (it has: "
                      f"{', '.join(volumes_in(manifest)) or 'none'})")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    restored = {}
    for volume in volumes:
        root = VOLUMES / volume
        if not root.is_dir():
            raise Refused(f"app volume {volume} is not mounted in the job (is it still in backend.volumes?)")
        for stale in root.glob(f"{VOLUME_STAGING}*"):   # an interrupted restore's extraction
            shutil.rmtree(stale)
        staging = root / f"{VOLUME_STAGING}{stamp}"
        staging.mkdir(mode=0o700)
        try:
            count = extract_volume(source / name / f"volumes/{volume}.tar", volume, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        swap_in(root, staging / volume, root / f"{VOLUME_KEPT}{stamp}")
        shutil.rmtree(staging)
        log(f"app volume {volume}: {count} entries restored from {name}; the previous ones are kept in "
            f"{VOLUME_KEPT}{stamp}/ inside it")
        restored[volume] = count
    return {"backup": name, "volumes": restored, "kept": f"{VOLUME_KEPT}{stamp}"}


# --- schedule -----------------------------------------------------------------------------------------------

def next_run(schedule: str, now: dt.datetime) -> dt.datetime:
    match = SCHEDULE.fullmatch(schedule)
    if not match:
        raise Refused(f"schedule {schedule!r}: expected 'daily HH:MM' (UTC) or 'every N' + m|h")
    if match["every"]:
        step = dt.timedelta(minutes=int(match["every"]) * (60 if match["unit"] == "h" else 1))
        return now + step
    at = now.replace(hour=int(match["hour"]), minute=int(match["minute"]), second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


def beat(status: str | None = None) -> None:
    HEARTBEAT.write_text(str(time.time()))
    if status is not None:
        LAST_RUN.write_text(status)


class SegmentClock:
    """Finishes the database's current WAL segment every WEBSTACK_ARCHIVE_TIMEOUT seconds when anything was written
    into it, so that it is archived (and shipped). archive_timeout is meant to do this, and is set; but measured on
    these machines, PostgreSQL 15 switched no segment in 50 s of continuous inserts with archive_timeout=10 (its
    checkpointer's timed wake-up), and the recovery point of a lost host must not depend on that."""

    def __init__(self):
        self.every = float(env("WEBSTACK_ARCHIVE_TIMEOUT", "30"))
        self.last, self.at = "0/0", 0.0

    def tick(self) -> None:
        if time.monotonic() - self.at < self.every:
            return
        self.at = time.monotonic()
        try:
            # The segment is finished only when WAL was written since the last switch here (idle: nothing to do).
            # pg_switch_wal() answers where the next segment starts: later writes are beyond it.
            self.last = psql(f"SELECT CASE WHEN pg_current_wal_lsn() > {quote_literal(self.last)}::pg_lsn "
                             "THEN pg_switch_wal() ELSE pg_current_wal_lsn() END")
        except Refused as exc:   # the database restarting, say: the next tick tries again
            log(f"could not finish the WAL segment: {exc}")


def schedule() -> None:
    # PID 1 gets no default signal handlers: without this, `docker stop` (every replacement of this container)
    # would wait out the whole grace period. A dump in progress stops with it; its temporary folder never
    # becomes a backup (only a complete one is renamed into place).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    plan = env("WEBSTACK_SCHEDULE")
    shipping = pitr_enabled() and offsite() is not None
    segments = SegmentClock() if pitr_enabled() else None
    beat("waiting")
    while True:
        due = next_run(plan, dt.datetime.now(dt.timezone.utc))
        log(f"next scheduled backup at {due:%Y-%m-%d %H:%M:%S} UTC ({plan})")
        while dt.datetime.now(dt.timezone.utc) < due:
            beat()
            if segments:
                segments.tick()
            if shipping:
                ship()
            pause = SHIP_SECONDS if segments else 15.0
            time.sleep(min(pause, max(0.5, (due - dt.datetime.now(dt.timezone.utc)).total_seconds())))
        try:
            # With continuous archiving the schedule takes base backups (the dumps' offsite copies stay, when set).
            outcome = base_backup() if pitr_enabled() else None
            if outcome is None or offsite():
                outcome = dump("scheduled")
            beat("ok " + outcome["name"])
        except Exception as exc:   # noqa: BLE001 - the loop must survive one failed run, and say why
            log(f"error: the scheduled backup failed: {exc}")
            beat(f"failed {exc}")


def ship() -> None:
    """One pass of the archive's mirror; a failure is logged and shown by the health check until a pass works."""
    try:
        changed = ship_archive()
        if changed:
            log(f"archive offsite: {changed} file(s) shipped or removed")
        SHIP_STATUS.write_text("ok")
    except Exception as exc:   # noqa: BLE001 - the loop must survive a failed pass (the network), and say why
        log(f"error: shipping the archive offsite failed: {exc}")
        SHIP_STATUS.write_text(f"failed {exc}")


def health() -> None:
    age = time.time() - float(HEARTBEAT.read_text())
    if age > 60:
        raise Refused(f"the schedule loop has not reported for {age:.0f}s")
    status = LAST_RUN.read_text()
    if status.startswith("failed"):
        raise Refused(f"the last scheduled backup {status}")
    if SHIP_STATUS.is_file() and SHIP_STATUS.read_text().startswith("failed"):
        raise Refused(f"shipping the archive offsite {SHIP_STATUS.read_text()}")


# --- entry point --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="webstack-backup")
    sub = parser.add_subparsers(dest="command", required=True)
    # Every command accepts the credentials on stdin: callers pass them whenever the stack has offsite set.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--credentials-stdin", action="store_true")
    d = sub.add_parser("dump", parents=[common])
    d.add_argument("--reason", default="manual")
    ls = sub.add_parser("list", parents=[common])
    ls.add_argument("--offsite", action="store_true")
    r = sub.add_parser("restore-prepare", parents=[common])
    r.add_argument("--name")
    r.add_argument("--from-s3", action="store_true")
    r.add_argument("--source", default=str(BACKUPS), help="another stack's backups, mounted read-only")
    r.add_argument("--source-stack", help="the stack whose backup this restore takes (default: this one)")
    r.add_argument("--source-project", help="that stack's project (default: this one)")
    r.add_argument("--verify-only", action="store_true")
    r.add_argument("--to-time", help="recover the archive to this time (database.pitr)")
    r.add_argument("--before-release", help="the restore point the update that deployed this release took")
    r.add_argument("--volumes-only", action="store_true")
    p = sub.add_parser("restore-point", parents=[common])
    p.add_argument("--reason", default="manual")
    sub.add_parser("pitr-init", parents=[common])
    sub.add_parser("base-backup", parents=[common])
    v = sub.add_parser("restore-volumes", parents=[common])
    v.add_argument("--name", required=True)
    v.add_argument("--volume", action="append", required=True)
    v.add_argument("--source", default=str(BACKUPS))
    v.add_argument("--source-stack")
    v.add_argument("--source-project")
    s = sub.add_parser("switch", parents=[common])
    s.add_argument("--scratch", required=True)
    sub.add_parser("schedule")
    sub.add_parser("health")
    args = parser.parse_args(argv)
    try:
        if getattr(args, "credentials_stdin", False):
            read_credentials_from_stdin()
        if args.command == "dump":
            result(dump(args.reason))
        elif args.command == "restore-point":
            result(restore_point(args.reason) if pitr_enabled() else dump(args.reason))
        elif args.command == "pitr-init":
            result(pitr_init())
        elif args.command == "base-backup":
            result(base_backup())
        elif args.command == "list":
            if args.offsite:
                result(list_offsite())
            else:
                result({"backups": [manifest_of(b) for b in complete_backups()],
                        **({"baseBackups": [{"name": b["label"], "stop": b["timestamp"]["stop"]} for b in base_backups()],
                            "archiver": archiver()} if pitr_enabled() else {})})
        elif args.command == "restore-prepare":
            result(restore_prepare(args.name, args.from_s3, Path(args.source),
                                   args.source_stack or env("WEBSTACK_STACK"), args.verify_only, args.source_project,
                                   args.to_time, args.before_release, args.volumes_only))
        elif args.command == "restore-volumes":
            result(restore_volumes(args.name, args.volume, Path(args.source),
                                   args.source_project or env("WEBSTACK_PROJECT"), args.source_stack or env("WEBSTACK_STACK")))
        elif args.command == "switch":
            result(switch(args.scratch))
        elif args.command == "schedule":
            schedule()
        elif args.command == "health":
            health()
        return 0
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:   # noqa: BLE001 - S3 and OS errors: one line, not a traceback in the deploy log
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
