"""Backups of the database (and app volumes): a volume on the target, a backup before every update that could
change the data, and a schedule that runs on the target itself.

The work is done by containers/backup's `webstack-backup` (pg_dump through the socket with peer auth, SHA-256
manifests, retention, offsite copies); components.backup_job says how a job container runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from . import backup_job, contract, rendering
from .hardening import hardened, healthcheck
from .remote_host import Command, RemoteHost
from .settings import Settings
from .socket_volume import SocketVolume


@dataclass(frozen=True)
class BackupsArgs:
    settings: Settings
    image: docker.RemoteImage
    image_ref: str            # the image's name:tag, known before it is built (the job's script names it)
    host: RemoteHost
    socket: SocketVolume
    # What makes an update a risk to the data, besides a new database container: the backend generation (its
    # containers migrate at start) and anything else a component declares (e.g. a release command).
    triggers: Sequence[pulumi.Input] = ()
    # Named app volumes included in every backup (mounted read-only into the job).
    volumes: Sequence[str] = field(default_factory=tuple)
    # The database image this update runs (name:tag): a rollback (pinned images) that keeps it takes no backup.
    database_image: str = ""
    # Its ID, once built: the database container runs the ID, so a new one (a new base image under the same tag)
    # replaces the container, and the backup runs first.
    database_image_id: pulumi.Input[str] = ""


SIGNING_KEY_LENGTH = 48


def pre_deploy_script(settings: Settings, image: str, *, database_image: str, volumes: Sequence[str] = ()) -> str:
    """The pre-deploy backup (templates/host/backup-pre-deploy.sh.j2) for the job image `image`; an offsite job
    reads its credentials on stdin (backup-pre-deploy-secrets.sh.j2 wraps it)."""
    database = settings.database
    offsite = database.offsite is not None
    # With continuous archiving, a named restore point in the WAL (seconds, whatever the size of the data); the job
    # takes a dump instead while the archive holds no base backup yet.
    command = ["restore-point" if database.pitr.enabled else "dump", "--reason", "pre-deploy"] + (
        ["--credentials-stdin"] if offsite else [])
    job = backup_job.pre_deploy_job_name(settings)
    return rendering.render(
        "host/backup-pre-deploy.sh.j2", stack=settings.stack, db_container=backup_job.database_container(settings),
        db_name=database.name, db_user=database.user, backups_volume=backup_job.backups_volume(settings),
        rollback=settings.pinned_images is not None, release=settings.release, db_image=database_image,
        job=job, timeout_seconds=database.backups.timeoutSeconds, restore_job=backup_job.restore_job_name(settings),
        run_args=backup_job.run_args(settings, image, command, volumes=volumes, credentials_on_stdin=offsite,
                                     name=job))


class Backups(pulumi.ComponentResource):
    """The backups volume, the pre-deploy backup, the schedule, and the stack's key that signs offsite manifests
    (a restore from S3 accepts only backups signed with it; `python -m ops` reads it from the stack's output
    backupSigningKey). The key is made whether or not offsite is on, so that turning offsite off and on again
    keeps the backups already in the bucket restorable."""

    volume: docker.Volume
    signing_key: random.RandomPassword
    pre_deploy: Command
    schedule: Optional[docker.Container] = None

    def __init__(self, name: str, args: BackupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("webstack:components:Backups", name, None, opts)
        settings = args.settings
        self.volume = docker.Volume(
            f"{name}-volume", name=backup_job.backups_volume(settings),
            labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack)],
            # The backups outlive the stack: `pulumi destroy` leaves them (remove the volume by hand).
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        self.signing_key = random.RandomPassword(f"{name}-signing-key", length=SIGNING_KEY_LENGTH, special=False,
                                                 opts=pulumi.ResourceOptions(parent=self))
        self.pre_deploy = self._pre_deploy(name, args)
        self._name, self._args = name, args
        self.register_outputs({"volume": self.volume.name, "signingKey": self.signing_key.result})

    def start_schedule(self, database: docker.Container) -> Optional[docker.Container]:
        """The scheduled backups' container, once the database runs (with database.pitr its base backups read the
        data volume, which the database component creates); None with backupSchedule off."""
        if self._args.settings.database.backupSchedule != "off":
            self.schedule = self._schedule(self._name, self._args,
                                           backup_job.offsite_credentials(self._args.settings), database)
        return self.schedule

    def _pre_deploy(self, name: str, args: BackupsArgs) -> Command:
        settings = args.settings
        database = settings.database
        offsite = database.offsite is not None

        image = args.image_ref
        body = pre_deploy_script(settings, image, database_image=args.database_image, volumes=args.volumes)
        # The job's secrets travel in the (secret) script, not in a secret stdin: see backup-pre-deploy-secrets.sh.j2.
        script: pulumi.Input[str] = body
        if offsite:
            script = pulumi.Output.secret(self.signing_key.result.apply(lambda key: rendering.render(
                "host/backup-pre-deploy-secrets.sh.j2", body=body,
                secrets_json=json.dumps(backup_job.job_secrets(settings, key), sort_keys=True))))
        return args.host.script(
            f"{name}-pre-deploy", script,
            # Whatever replaces the database container runs it again: its image and every setting of it
            # (issue 21: a change of database.memoryMb or of containers/db alone replaced it with no backup).
            triggers=[image, args.database_image, args.database_image_id, database.name, database.user,
                      database.memoryMb, f"cpus={database.cpus}", f"pitr={database.pitr.enabled}", *args.triggers],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.image, self.volume]))

    def _schedule(self, name: str, args: BackupsArgs, credentials: Optional[dict],
                  database: docker.Container) -> docker.Container:
        settings = args.settings
        # No release in it: the container lives across releases (a release replacing it would wait for it to
        # stop and turn healthy again); its scheduled backups record no release.
        envs = [f"{k}={v}" for k, v in sorted(backup_job.environment(settings, args.volumes).items())
                if k != "WEBSTACK_RELEASE"]
        if settings.database.offsite is not None:   # only this container needs them: it uploads on its own
            keys = [f"AWS_ACCESS_KEY_ID={credentials['accessKeyId']}",
                    f"AWS_SECRET_ACCESS_KEY={credentials['secretAccessKey']}"] if credentials else []
            plain = envs
            envs = pulumi.Output.secret(self.signing_key.result.apply(
                lambda key: [*plain, *keys, f"WEBSTACK_SIGNING_KEY={key}"]))
        mounts = [args.socket.mount("Backups"),
                  docker.ContainerMountArgs(type="volume", source=self.volume.name, target=backup_job.BACKUPS_DIR)]
        mounts += [docker.ContainerMountArgs(type="volume", source=v, target=f"{backup_job.VOLUMES_DIR}/{v}",
                                             read_only=True) for v in args.volumes]
        if settings.database.pitr.enabled:   # its base backups read the data files
            mounts.append(docker.ContainerMountArgs(type="volume", source=backup_job.data_volume(settings),
                                                    target=contract.PGDATA, read_only=True))
        return docker.Container(
            # The image's ID: a rebuild under the same tag (a new base image) replaces the container.
            f"{name}-schedule", name=f"{settings.name_prefix}-backup", image=args.image.image_id, envs=envs,
            command=["schedule"], group_adds=[str(contract.DBSOCK_GID)], mounts=mounts,
            network_mode=backup_job.network(settings),
            healthcheck=healthcheck(["/usr/local/bin/webstack-backup", "health"]),
            **hardened(settings, "backup", user=f"{contract.POSTGRES_UID}:{contract.POSTGRES_UID}",
                       memory_mb=backup_job.MEMORY_MB),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pre_deploy, database]))
