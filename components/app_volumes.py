"""The app's named volumes (`backend.volumes`): uploads and other files that must outlive every release."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from . import contract, rendering
from .remote_host import Command, RemoteHost
from .settings import Settings


class AppVolumes(pulumi.ComponentResource):
    """One `webstack-<stack>-vol-<name>` volume per entry, protected and retained like the database's data
    volume (a replacement or `pulumi destroy` never loses the files), and owned by the backend's uid once when
    created (a fresh volume is root's, and the backend runs without capabilities).

    `names` lists the Docker volume names, for backups.
    """

    volumes: dict[str, docker.Volume]
    owner: list[Command]
    names: list[str]

    def __init__(self, name: str, settings: Settings, host: RemoteHost, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:AppVolumes", name, None, opts)
        self._paths = dict(settings.backend.volumes)
        self.volumes, self.owner, self.names = {}, [], []
        for volume_name in sorted(self._paths):
            docker_name = f"{settings.name_prefix}-vol-{volume_name}"
            volume = docker.Volume(
                f"{name}-{volume_name}", name=docker_name,
                labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack),
                        docker.VolumeLabelArgs(label="webstack.role", value="app-volume")],
                opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True))
            script = rendering.render("host/volume-owner.sh.j2", volume=docker_name, image=settings.baseImage,
                                      uid=contract.BACKEND_UID, gid=contract.DBSOCK_GID,
                                      stack=settings.stack)
            # Runs once per volume (its trigger is the volume's id): later releases find the files as they were.
            self.owner.append(host.script(f"{name}-{volume_name}-owner", script, triggers=[volume.id],
                                          opts=pulumi.ResourceOptions(parent=self, depends_on=[volume])))
            self.volumes[volume_name] = volume
            self.names.append(docker_name)
        self.register_outputs({"names": self.names})

    def mounts(self) -> list[docker.ContainerMountArgs]:
        return [docker.ContainerMountArgs(type="volume", source=self.volumes[n].name, target=self._paths[n])
                for n in sorted(self._paths)]

    def mount_flags(self) -> list[str]:
        """The same mounts as `docker create --mount` values (for one-off containers)."""
        return [f"type=volume,src={self.names[i]},dst={self._paths[n]}" for i, n in enumerate(sorted(self._paths))]
