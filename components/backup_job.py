"""How a backup job runs on the target: names, the `docker run` of a one-off job, its environment and network.

Pure functions of the settings, shared by the program (the pre-deploy backup, the schedule) and the operator
commands (`python -m ops backup/restore`), so that every job is the same hardened container: the backup image
as uid 999 (the database's `postgres` role by peer auth over the socket volume), read-only, no capabilities.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from . import contract
from .settings import Settings, is_loopback_endpoint

BACKUPS_DIR = "/backups"
VOLUMES_DIR = "/volumes"
SOURCE_DIR = "/source"
MEMORY_MB = 512
PIDS_LIMIT = 256


def backups_volume(settings: Settings, stack: Optional[str] = None) -> str:
    return f"webstack-{stack or settings.stack}-backups"


def data_volume(settings: Settings) -> str:
    """The database's data volume: read-only in the jobs of a stack with continuous archiving (a base backup
    copies its files)."""
    return f"{settings.name_prefix}-pgdata"


def socket_volume(settings: Settings) -> str:
    return f"{settings.name_prefix}-pgsocket"


def database_container(settings: Settings) -> str:
    return f"{settings.name_prefix}-db"


def network(settings: Settings) -> str:
    """No network at all without offsite copies. An endpoint on loopback is a server on the target itself, which
    only the host's own network namespace reaches (127.0.0.1 in a bridged container is the container; the bridge
    gateway reaches only services listening on it, and an S3 server on loopback does not), so that job shares the
    host's network; any other endpoint goes through Docker's default bridge. Such an endpoint is plain http only
    on loopback (settings refuse http:// elsewhere)."""
    offsite = settings.database.offsite
    if offsite is None:
        return "none"
    return "host" if is_loopback_endpoint(offsite.endpoint) else "bridge"


def environment(settings: Settings, volumes: Sequence[str] = ()) -> dict[str, str]:
    """The job's settings (no secret among them): containers/backup/webstack_backup.py reads these."""
    database = settings.database
    offsite = database.offsite
    return {
        "WEBSTACK_PROJECT": settings.project, "WEBSTACK_STACK": settings.stack, "WEBSTACK_DB_NAME": database.name,
        "WEBSTACK_DB_USER": database.user, "WEBSTACK_RELEASE": settings.release,
        "WEBSTACK_KEEP_SCHEDULED": str(database.backups.keepScheduled),
        "WEBSTACK_KEEP_PRE_DEPLOY": str(database.backups.keepPreDeploy),
        "WEBSTACK_SCHEDULE": database.backupSchedule, "WEBSTACK_VOLUMES": " ".join(volumes),
        "WEBSTACK_JOB_TIMEOUT": str(database.backups.timeoutSeconds),
        "WEBSTACK_OFFSITE": json.dumps({"bucket": offsite.bucket, "prefix": offsite.prefix, "region": offsite.region,
                                        "endpoint": offsite.endpoint}, sort_keys=True) if offsite else "",
        **pgbackrest_environment(settings),
        **({"PGBACKREST_REPO1_RETENTION_FULL": str(database.pitr.keepFull),
            "WEBSTACK_ARCHIVE_TIMEOUT": str(database.pitr.archiveTimeoutSeconds)} if database.pitr.enabled else {}),
    }


PGBACKREST_REPO = f"{BACKUPS_DIR}/pgbackrest"
PGBACKREST_STANZA = "webstack"


def pgbackrest_environment(settings: Settings) -> dict[str, str]:
    """pgBackRest's options as its PGBACKREST_* variables, the same in the database container (archive_command's
    archive-push) and in the jobs (base backups, restores): nothing to render into a file or mount. None of them is a
    secret. Empty without database.pitr. The retention is the jobs' alone (environment()): changing it does not
    replace the database container."""
    pitr = settings.database.pitr
    if not pitr.enabled:
        return {}
    return {
        "PGBACKREST_STANZA": PGBACKREST_STANZA, "PGBACKREST_REPO1_PATH": PGBACKREST_REPO,
        "PGBACKREST_PG1_PATH": contract.PGDATA, "PGBACKREST_PG1_SOCKET_PATH": contract.SOCKET_DIR,
        # The root filesystems are read-only: locks on the /tmp tmpfs, logs to stderr only (Docker rotates them).
        "PGBACKREST_LOCK_PATH": "/tmp/pgbackrest", "PGBACKREST_LOG_LEVEL_FILE": "off",
        "PGBACKREST_LOG_LEVEL_CONSOLE": "warn", "PGBACKREST_LOG_LEVEL_STDERR": "warn",
        # A base backup asks for an immediate checkpoint instead of waiting for the next one.
        "PGBACKREST_START_FAST": "y",
    }


def offsite_credentials(settings: Settings) -> Optional[dict[str, str]]:
    """S3 credentials for the job: the stack's secrets only; None without them (the job then uses boto3's own
    chain on the target, e.g. an instance role). Nothing comes from the operator's environment: the keys of a
    laptop or of CI would otherwise end up in the target's containers (issue 19, finding 4)."""
    offsite = settings.database.offsite
    if offsite is None or offsite.accessKeyId is None or offsite.secretAccessKey is None:
        return None
    return {"accessKeyId": offsite.accessKeyId.get_secret_value(),
            "secretAccessKey": offsite.secretAccessKey.get_secret_value()}


def job_secrets(settings: Settings, signing_key: Optional[str]) -> Optional[dict[str, str]]:
    """What a job reads as JSON on stdin (--credentials-stdin): the S3 credentials and the stack's signing key
    for offsite manifests; None without offsite (the job then needs no secret)."""
    if settings.database.offsite is None:
        return None
    if not signing_key:
        raise ValueError("an offsite job needs the stack's signing key")
    return {**(offsite_credentials(settings) or {}), "signingKey": signing_key}


def pre_deploy_job_name(settings: Settings) -> str:
    return f"{settings.name_prefix}-backup-pre-deploy"


def restore_job_name(settings: Settings) -> str:
    """One name for every restore job of a stack: Docker refuses a second one while one runs, and the pre-deploy
    backup refuses an update while one runs (a restore and an update never overlap on one stack)."""
    return f"{settings.name_prefix}-restore-job"


def run_args(settings: Settings, image: str, command: Sequence[str], *, volumes: Sequence[str] = (),
             credentials_on_stdin: bool = False, source_stack: Optional[str] = None,
             name: Optional[str] = None, restore_volumes: bool = False) -> list[str]:
    """`docker run` arguments of a one-off job (`docker` itself excluded). credentials_on_stdin: the job reads
    its S3 credentials as JSON from stdin (`-i`), so they are in no argument, environment or log.
    source_stack: another stack's backups volume, mounted read-only at /source (a restore from it).
    name: the job container's name, so that a job past its timeout can be removed (its `docker run` client
    stopping does not stop it).
    restore_volumes: the job writes the app volumes (`restore-volumes`): as root with only the capabilities that
    creating files owned by the app's uid needs, the volumes mounted writable; every other job reads them."""
    user = ["--user", "0:0", "--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "DAC_OVERRIDE",
            "--cap-add", "FOWNER", "-e", f"WEBSTACK_VOLUME_OWNER={contract.BACKEND_UID}:{contract.DBSOCK_GID}"] \
        if restore_volumes else ["--user", f"{contract.POSTGRES_UID}:{contract.POSTGRES_UID}", "--cap-drop", "ALL"]
    args = ["run", "--rm", *(["--name", name] if name else []), *user,
            "--group-add", str(contract.DBSOCK_GID), "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m",
            "--security-opt", "no-new-privileges:true", "--memory", f"{MEMORY_MB}m",
            "--memory-swap", f"{MEMORY_MB}m", "--pids-limit", str(PIDS_LIMIT), "--network", network(settings),
            "--label", f"webstack.stack={settings.stack}", "--label", "webstack.role=backup-job",
            "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
            # nocopy: a job started while the database is stopped (its socket gone, the volume empty) must never copy
            # the image's directory over the volume (the socket's group is the backends' way in).
            "-v", f"{socket_volume(settings)}:{contract.SOCKET_DIR}:nocopy",
            "-v", f"{backups_volume(settings)}:{BACKUPS_DIR}"]
    if settings.database.pitr.enabled:   # a base backup reads the data files
        args += ["-v", f"{data_volume(settings)}:{contract.PGDATA}:ro"]
    for volume in volumes:
        args += ["-v", f"{volume}:{VOLUMES_DIR}/{volume}{'' if restore_volumes else ':ro'}"]
    if source_stack:
        args += ["-v", f"{backups_volume(settings, source_stack)}:{SOURCE_DIR}:ro"]
    for key, value in sorted(environment(settings, volumes).items()):
        args += ["-e", f"{key}={value}"]
    if credentials_on_stdin:
        args.append("-i")
    return [*args, image, *command]
