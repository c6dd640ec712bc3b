"""`python -m ops backup --stack NAME [--list [--offsite]]`: back up the stack's database now, or list backups.

The work runs on the target in a one-off backup job (components.backup_job: pg_dump through the socket with
peer auth, SHA-256 manifest, retention, the offsite copy when webstack:database.offsite is set); its progress is
shown as it goes. `job` is shared with `python -m ops restore`.
"""

from __future__ import annotations

import argparse
import json
import secrets as secrets_module
import subprocess
import sys
import time
from typing import Optional, Sequence

from pulumi import automation as auto

from components import backup_job
from components.settings import Settings
from ops import stack as stacks
from ops.errors import OpsError
from ops.target import Target, settings_of


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("backup", help="back up the database now (or --list the backups)")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--list", action="store_true", help="list the backups on the target and exit")
    parser.add_argument("--offsite", action="store_true", help="with --list: the backups in the S3 bucket")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def backups_output(stack: auto.Stack) -> dict:
    """The program's `backups` output (the job image, the backups volume, the app volumes) and the stack's key
    for offsite manifests (`signingKey`, None on a stack deployed before webstack signed them)."""
    outputs = stack.outputs()
    if "backups" not in outputs:
        raise OpsError(f"stack {stack.name} has no backups yet: deploy it first (pulumi up --stack {stack.name})")
    key = outputs.get("backupSigningKey")
    return {**outputs["backups"].value, "signingKey": key.value if key else None}


def job(target: Target, backups: dict, command: Sequence[str], *, source_stack: Optional[str] = None,
        signing_key: Optional[str] = None, name: Optional[str] = None, restore_volumes: bool = False) -> dict:
    """Runs `webstack-backup COMMAND` on the target; its progress passes through to stderr; returns its RESULT.
    signing_key: another stack's key (a restore of that stack's offsite backup); default this stack's.
    Past database.backups.timeoutSeconds the job's container is removed and the command fails.
    name: the job container's (default: one of its own); a job of that name still running is refused.
    restore_volumes: the job writes the app volumes (backup_job.run_args)."""
    settings: Settings = target.settings
    timeout = settings.database.backups.timeoutSeconds
    if name is None:
        name = f"{settings.name_prefix}-backup-job-{secrets_module.token_hex(4)}"
    else:
        running = target.command(["inspect", "-f", "{{.State.Running}} {{.State.StartedAt}}", name])
        state = subprocess.run(running, capture_output=True, text=True).stdout.split()
        if state[:1] == ["true"]:
            raise OpsError(f"{name} has been running since {state[1][:19]}Z (an earlier run, maybe interrupted): "
                           f"it finishes by itself; wait for it (docker wait {name}), then run this again")
    key = signing_key or backups.get("signingKey")
    if settings.database.offsite is not None and not key:
        raise OpsError(f"stack {settings.stack} has no backupSigningKey output yet, and offsite backups are signed "
                       f"with it: deploy the stack with this version of webstack first (pulumi up --stack {settings.stack})")
    secrets = backup_job.job_secrets(settings, key)
    args = backup_job.run_args(settings, backups["image"],
                               [*command, *(["--credentials-stdin"] if secrets else [])],
                               volumes=backups.get("appVolumes", []), credentials_on_stdin=bool(secrets),
                               source_stack=source_stack, name=name, restore_volumes=restore_volumes)
    process = subprocess.Popen(target.command(args), stdin=subprocess.PIPE if secrets else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(json.dumps(secrets) if secrets else None, timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        target.docker("rm", "-f", name)   # the client's end does not stop the job
        raise OpsError(f"the backup job `{' '.join(command[:1])}` did not finish within {timeout} s "
                       "(database.backups.timeoutSeconds), so it was stopped; nothing was switched") from None
    results = [line[len("RESULT "):] for line in out.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not results:
        raise OpsError(f"the backup job on the target failed (exit code {process.returncode}); its message is above")
    return json.loads(results[-1])


def legacy_note(found: dict) -> str:
    """Backups still under the layout before offsite keys named the project: restorable, never pruned."""
    names = found["legacy"]
    return (f"note: {len(names)} backup(s) under the old layout {found['legacyPrefix']} (before offsite keys named "
            f"the project; newest {names[-1]}): `restore --from-s3 --name NAME` still finds them, retention no longer "
            "removes them. See README \"Backups\" (offsite layout) to move or remove them.")


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def run(args: argparse.Namespace) -> int:
    stack = stacks.select(args.stack)
    target = Target(settings_of(stack))
    backups = backups_output(stack)
    if args.list:
        if args.offsite and target.settings.database.offsite is None:
            raise OpsError("webstack:database.offsite is not set on this stack: there are no offsite backups")
        found = job(target, backups, ["list", *(["--offsite"] if args.offsite else [])])
        rows = found["offsite" if args.offsite else "backups"]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            where = f"offsite (s3://{target.settings.database.offsite.bucket}/{found['prefix']})" if args.offsite \
                else f"on the target (volume {backups['volume']})"
            print(f"{len(rows)} backup(s) of stack {args.stack} {where}, oldest first:")
            for m in rows:
                what = (f"restore point {m['restorePoint']['lsn']:>14}" if m.get("kind") == "restore-point"
                        else f"{megabytes(m['size']):>10}  sha256 {m['sha256'][:12]}")
                print(f"  {m['name']:<34} {m['reason']:<11} release {m['release'] or '-':<12} "
                      f"{what}  PostgreSQL {m['postgresql']}")
            base = found.get("baseBackups")
            if base is not None and not args.offsite:
                oldest = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(base[0]["stop"])) if base else None
                print(f"continuous archiving: {len(base)} base backup(s)" +
                      (f"; --to-time reaches back to {oldest} UTC" if oldest else "; none yet"))
        if found.get("legacy"):
            print(legacy_note(found), file=sys.stderr)
        return 0
    started = time.monotonic()
    print(f"backing up stack {args.stack} (database {target.settings.database.name}) on its "
          f"{target.settings.target.kind} target", flush=True)
    done = job(target, backups, ["dump", "--reason", "manual"])
    if args.json:
        print(json.dumps(done, indent=2))
        return 0
    print(f"backup {done['name']}: {megabytes(done['size'])}, sha256 {done['sha256']}, "
          f"{time.monotonic() - started:.1f}s" + (f"; removed {', '.join(done['removed'])}" if done["removed"] else ""))
    if done.get("offsite"):
        print(f"offsite copy verified: s3://{done['offsite']['bucket']}/{done['offsite']['prefix']}")
    return 0
