"""The volume that carries PostgreSQL's Unix socket: the only way to reach the database."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from . import contract
from .settings import Settings


class SocketVolume(pulumi.ComponentResource):
    """A named volume mounted at the socket directory of the database, the backend and the backup job, and nowhere
    else.

    Holding the socket (mode 0770, group dbsock) is what grants access, so `mount` refuses any other consumer.
    """

    CONSUMERS = ("Database", "Backend", "Backups")
    volume: docker.Volume

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:SocketVolume", name, None, opts)
        self.volume = docker.Volume(
            f"{name}-volume", name=f"{settings.name_prefix}-pgsocket",
            labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack)],
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"name": self.volume.name})

    def mount(self, consumer: str) -> docker.ContainerMountArgs:
        if consumer not in self.CONSUMERS:
            raise ValueError(f"{consumer} may not mount the database socket (only {', '.join(self.CONSUMERS)})")
        return docker.ContainerMountArgs(type="volume", source=self.volume.name, target=contract.SOCKET_DIR)
