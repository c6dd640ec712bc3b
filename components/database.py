"""PostgreSQL: reachable only through the Unix socket on the socket volume, with peer authentication."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_docker as docker

from . import backup_job, contract
from .hardening import hardened, healthcheck
from .settings import Settings
from .socket_volume import SocketVolume


@dataclass(frozen=True)
class DatabaseArgs:
    settings: Settings
    image: docker.RemoteImage
    network: docker.Network
    socket: SocketVolume
    # Started only after these (the pre-deploy backup): a replaced container is deleted only then.
    after: Sequence[pulumi.Resource] = ()


class Database(pulumi.ComponentResource):
    """The data volume (protected and retained: it outlives every replacement and even `pulumi destroy`) and
    the PostgreSQL container: no published port, no TCP listener (`listen_addresses = ''`), peer auth only.

    pg_hba/pg_ident/postgresql.conf are rendered by components.rendering and baked into the image as build
    arguments, so the running container has nothing to write outside its volumes.
    """

    data_volume: docker.Volume
    container: docker.Container

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Database", name, None, opts)
        settings = args.settings
        self.data_volume = docker.Volume(
            f"{name}-data", name=backup_job.data_volume(settings),
            labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack)],
            # Replacing or deleting this volume would lose the data: both are refused/skipped.
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True))
        mounts = [docker.ContainerMountArgs(type="volume", source=self.data_volume.name, target=contract.PGDATA),
                  args.socket.mount("Database")]
        if settings.database.pitr.enabled:   # archive_command pushes each WAL segment into the backups volume's repository
            mounts.append(docker.ContainerMountArgs(type="volume", source=backup_job.backups_volume(settings),
                                                    target=backup_job.BACKUPS_DIR))
        envs = [f"WEBSTACK_DB_NAME={settings.database.name}", f"WEBSTACK_DB_USER={settings.database.user}",
                *(f"{k}={v}" for k, v in sorted(backup_job.pgbackrest_environment(settings).items()))]
        self.container = docker.Container(
            f"{name}-postgres",
            name=f"{settings.name_prefix}-db",
            # The image's ID, not its tag: an image rebuilt under the same tag (a new base image) replaces it.
            image=args.image.image_id,
            envs=envs,
            group_adds=[str(contract.DBSOCK_GID)],   # unix_socket_group: postgres must be a member to chgrp the socket
            mounts=mounts,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network.name, aliases=["db"])],
            healthcheck=healthcheck(["pg_isready", "-q", "-h", contract.SOCKET_DIR], start_period="30s"),
            # SIGINT is PostgreSQL's fast shutdown: clean (checkpointed) without waiting for clients to leave.
            stop_signal="SIGINT",
            # A longer wait: the first start runs initdb. A longer grace: a clean shutdown writes a checkpoint.
            **hardened(settings, "database", user=f"{contract.POSTGRES_UID}:{contract.POSTGRES_UID}",
                       memory_mb=settings.database.memoryMb, wait_timeout=180, grace_seconds=60,
                       cpus=settings.database.cpus),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({"containerName": self.container.name, "dataVolume": self.data_volume.name})
