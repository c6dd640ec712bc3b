"""`python -m ops restore --stack NAME [--name BACKUP | --latest | --to-time TIME | --before-release RELEASE]
[--from-s3] [--from-stack [PROJECT/]OTHER] [--verify]`

Restores a backup: its checksums are verified first (a corrupted backup is refused before anything changes),
it is restored into a fresh database and checked (`pg_restore --list`, a row count per table), then the fresh
database takes the stack's database name in one transaction (new sessions refused meanwhile, open ones ended),
the previous one is kept as <name>_pre_restore_<time>, and the backends, which keep running, reconnect. So an
interrupted restore leaves the app serving, old data or new, and a rerun finishes it.
With continuous archiving (database.pitr), --to-time, --before-release (its restore point) and the default (the end
of the archive) recover the WAL archive into a scratch data directory and dump the database from a private server
on it; from there the same steps follow.
--verify is a restore drill: the fresh database is checked and dropped; nothing else changes.
A backup's manifest names its project and stack: the job refuses one that is not of the stack it expects (this one,
or the one --from-stack names).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from components.settings import STACK
from components import backup_job
from ops import stack as stacks
from ops.backup import backups_output, job
from ops.errors import OpsError
from ops.target import Target, running, settings_of

HEALTHY_WITHIN_SECONDS = 120
def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("restore", help="restore a backup (checksum verified, then switched while the backends "
                                            "keep running), or --verify it into a scratch database")
    parser.add_argument("--stack", required=True)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--name", help="the backup's name, as `python -m ops backup --list` shows it")
    which.add_argument("--latest", action="store_true",
                       help="the newest restore point (the default): with database.pitr the end of the WAL archive, "
                            "else the newest backup")
    which.add_argument("--to-time", metavar="TIME",
                       help="with database.pitr: the data as it was at TIME ('2026-12-03 10:15:00' is UTC, or give "
                            "an offset: '2026-12-03T11:15:00+01:00'), recovered from the WAL archive")
    which.add_argument("--before-release", metavar="RELEASE",
                       help="the data as it was just before the update that deployed RELEASE (its pre-deploy "
                            "restore point or backup)")
    parser.add_argument("--from-s3", action="store_true", help="take the backup from webstack:database.offsite")
    parser.add_argument("--from-stack", metavar="[PROJECT/]OTHER",
                        help="take another stack's backup (its backups volume on the same target, or with "
                             "--from-s3 its offsite prefix): how data moves to a new stack. PROJECT/OTHER: a stack "
                             "of another Pulumi project (with --signing-key-file for --from-s3)")
    parser.add_argument("--signing-key-file", metavar="FILE",
                        help="with --from-s3 --from-stack OTHER: OTHER's backup signing key, when OTHER is not in "
                             "this backend (another backend, or its state is gone): `pulumi stack output "
                             "backupSigningKey --show-secrets --stack OTHER > FILE` where its state is")
    parser.add_argument("--only", action="append", metavar="database|VOLUME",
                        help="restore only the database, or only the app volume VOLUME (repeatable); default: the "
                             "database and every app volume the backup set holds")
    parser.add_argument("--verify", action="store_true",
                        help="restore drill: restore into a scratch database, check it, drop it; change nothing")
    parser.set_defaults(func=run)


def running_backends(target: Target) -> list[str]:
    return [c["Name"].lstrip("/") for c in running(target.containers(), "backend")]


def wait_healthy(target: Target, names: list[str]) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_SECONDS
    while True:
        # An image without HEALTHCHECK has no .State.Health (optional per docs/own-app.md): running is its best.
        states = target.docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}"
                               "no-healthcheck-{{.State.Status}}{{end}}", *names).split()
        if all(state in ("healthy", "no-healthcheck-running") for state in states):
            return
        if time.monotonic() > deadline:
            raise OpsError(f"the backends are not healthy {HEALTHY_WITHIN_SECONDS}s after the restore "
                           f"({dict(zip(names, states))}): see python -m ops logs backend")
        time.sleep(1)


def source_of(from_stack: str, project: str) -> tuple[str, str]:
    """(project, stack) of --from-stack [PROJECT/]STACK; the project defaults to this one."""
    parts = from_stack.split("/")
    if len(parts) > 2 or not all(STACK.fullmatch(part) for part in parts):
        raise OpsError(f"--from-stack {from_stack!r}: expected STACK or PROJECT/STACK (letters, digits, '.', '_', '-')")
    return (project, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def source_command(args: argparse.Namespace, project: str) -> list[str]:
    """The job's arguments that say whose backup to take: another stack's (and project's) with --from-stack, where
    from (its backups volume, mounted at /source, or its offsite prefix with --from-s3)."""
    if not args.from_stack:
        return ["--from-s3"] if args.from_s3 else []
    source_project, source_stack = source_of(args.from_stack, project)
    where = ["--from-s3"] if args.from_s3 else ["--source", "/source"]
    return [*where, "--source-stack", source_stack,
            *(["--source-project", source_project] if source_project != project else [])]


def source_signing_key(args: argparse.Namespace, project: str) -> str:
    """Another stack's offsite backups are signed with that stack's key: from --signing-key-file, else from that
    stack's outputs in this backend (a stack of this project only)."""
    if args.signing_key_file:
        try:
            key = Path(args.signing_key_file).read_text().strip()
        except OSError as exc:
            raise OpsError(f"--signing-key-file: cannot read {args.signing_key_file}: {exc.strerror}") from None
        if not key:
            raise OpsError(f"--signing-key-file: {args.signing_key_file} is empty")
        return key
    source_project, source_stack = source_of(args.from_stack, project)
    fix = (f"where its state is, `pulumi stack output backupSigningKey --show-secrets --stack {source_stack} > FILE`, "
           "then add --signing-key-file FILE")
    if source_project != project:
        raise OpsError(f"stack {source_stack} is of project {source_project}, whose stacks this project's commands do "
                       f"not open, and its offsite backups are signed with its key: {fix}")
    try:
        key = backups_output(stacks.select(source_stack))["signingKey"]
    except OpsError as exc:
        raise OpsError(f"{exc}. Stack {source_stack}'s offsite backups are signed with its key: {fix}") from None
    if not key:
        raise OpsError(f"stack {source_stack} has no backupSigningKey output: it signed no offsite backup")
    return key


def what_to_restore(args: argparse.Namespace, pitr: bool) -> str:
    if args.name:
        return f"backup {args.name}"
    if args.to_time:
        return f"the data as of {args.to_time}"
    if args.before_release:
        return f"the data from before release {args.before_release}"
    return "the end of the WAL archive" if pitr and not (args.from_s3 or args.from_stack) else "the latest backup"


def run(args: argparse.Namespace) -> int:
    stack = stacks.select(args.stack)
    target = Target(settings_of(stack))
    backups = backups_output(stack)
    database = target.settings.database.name
    only = chosen_parts(args, backups.get("appVolumes", []))
    command = ["restore-prepare", *(["--name", args.name] if args.name else []),
               *(["--to-time", args.to_time] if args.to_time else []),
               *(["--before-release", args.before_release] if args.before_release else []),
               *source_command(args, target.settings.project)]
    if args.verify:
        command.append("--verify-only")
    if "database" not in only:
        command.append("--volumes-only")
    started = time.monotonic()
    source = f" of stack {args.from_stack}" if args.from_stack else ""
    print(f"restoring {what_to_restore(args, target.settings.database.pitr.enabled)}{source}"
          f"{' from S3' if args.from_s3 else ''} into stack {args.stack} ({'verify mode' if args.verify else 'database ' + database})",
          flush=True)
    signing_key = source_signing_key(args, target.settings.project) if args.from_s3 and args.from_stack else None
    # Another stack's backups volume on this target is mounted read-only at /source (volumes are named by stack).
    volume_of = source_of(args.from_stack, target.settings.project)[1] if args.from_stack and not args.from_s3 else None
    exclusive = backup_job.restore_job_name(target.settings)
    prepared = job(target, backups, command, source_stack=volume_of, signing_key=signing_key, name=exclusive)
    if "database" in only:
        rows = sum(prepared["tables"].values())
        print(f"{'' if 'target' in prepared else 'backup '}{prepared['backup']} verified and restored into "
              f"{prepared['scratch']}: {len(prepared['tables'])} tables, {rows} rows, "
              f"{time.monotonic() - started:.1f}s", flush=True)
    if args.verify:
        print("verify mode: the scratch database was dropped; the stack's data is unchanged")
        return 0
    switched = {}
    if "database" in only:
        # The backends keep running (containers/backup's switch): interrupted anywhere, the app keeps serving.
        print(f"switching database {database} to the restored data (the backends keep serving)", flush=True)
        switched = job(target, backups, ["switch", "--scratch", prepared["scratch"]], name=exclusive)
        backends = running_backends(target)
        if backends:
            wait_healthy(target, backends)
            print(f"the backends ({', '.join(backends)}) serve the restored data", flush=True)
        print(f"restored backup {prepared['backup']} into database {database} in {time.monotonic() - started:.1f}s")
    restore_app_volumes(args, target, backups, prepared, only, volume_of, exclusive)
    if switched.get("previous"):
        print(f"the previous data is kept as database {switched['previous']}; once you no longer need it: "
              f"docker exec {target.settings.name_prefix}-db dropdb -h /var/run/postgresql {switched['previous']}")
    return 0


def chosen_parts(args: argparse.Namespace, app_volumes: list[str]) -> set[str]:
    """What --only names (checked against the stack's app volumes), default everything."""
    if not args.only:
        return {"database", *app_volumes}
    unknown = [part for part in args.only if part != "database" and part not in app_volumes]
    if unknown:
        raise OpsError(f"--only {unknown[0]}: neither 'database' nor an app volume of this stack "
                       f"({', '.join(app_volumes) or 'it has none'})")
    return set(args.only)


def restore_app_volumes(args: argparse.Namespace, target: Target, backups: dict, prepared: dict, only: set[str],
                        source_stack: str | None, exclusive: str) -> None:
    wanted = sorted(v for v in only if v != "database")
    if not wanted:
        return
    have = prepared.get("volumes") or []
    missing = [v for v in wanted if v not in have]
    if missing and (args.only or not have):
        where = f"backup set {prepared['volumeSet']}" if prepared.get("volumeSet") else "this restore's target"
        message = f"{where} holds no copy of app volume(s) {', '.join(missing)}"
        if args.only:
            raise OpsError(message + "; nothing of them was changed")
        print(f"note: {message}: they were left as they are", flush=True)
    wanted = [v for v in wanted if v in have]
    if not wanted:
        return
    source = ["--source", "/source", "--source-stack", source_stack] if source_stack else []
    restored = job(target, backups, ["restore-volumes", "--name", prepared["volumeSet"], *source,
                                     *(part for v in wanted for part in ("--volume", v))],
                   source_stack=source_stack, name=exclusive, restore_volumes=True)
    for volume, count in sorted(restored["volumes"].items()):
        print(f"app volume {volume}: {count} entries restored from {restored['backup']}; the previous ones are in "
              f"{restored['kept']}/ inside the volume", flush=True)
