"""Continuous archiving (webstack:database.pitr): the step that makes point-in-time recovery available.

The database's archive_command pushes WAL with pgBackRest (templates/db/postgresql.conf.j2); this component runs,
whenever a database container is created, a job that creates the stanza (idempotent), checks that a finished WAL
segment reaches the archive, and takes the first full base backup when there is none. Later base backups come from
the backup schedule (components/backups.py), restore points from the pre-deploy step, restores from
`python -m ops restore --to-time/--before-release` (containers/backup/webstack_backup.py does the work).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from . import backup_job, rendering
from .remote_host import Command, RemoteHost
from .settings import Settings


@dataclass(frozen=True)
class ArchivingArgs:
    settings: Settings
    host: RemoteHost
    image_ref: str                # the backup image (name:tag), built before the database container
    database: docker.Container


def init_script(settings: Settings, image: str) -> str:
    job = f"{settings.name_prefix}-pitr-init"
    return rendering.render(
        "host/pitr-init.sh.j2", stack=settings.stack, job=job, backups_volume=backup_job.backups_volume(settings),
        timeout_seconds=settings.database.backups.timeoutSeconds,
        run_args=backup_job.run_args(settings, image, ["pitr-init"], name=job))


class Archiving(pulumi.ComponentResource):
    init: Command

    def __init__(self, name: str, args: ArchivingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Archiving", name, None, opts)
        settings = args.settings
        self.init = args.host.script(
            f"{name}-init", init_script(settings, args.image_ref),
            # A new database container (its ID) is checked again: a new image or setting may have broken archiving.
            triggers=[args.database.id, args.image_ref, settings.database.pitr.archiveTimeoutSeconds],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.database]))
        self.register_outputs({})
