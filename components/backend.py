"""The backend API: the containers of the current generation (one release and one configuration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_docker as docker

from . import contract, rendering
from .app_secrets import AppSecrets
from .app_volumes import AppVolumes
from .images import context_digest
from .hardening import hardened
from .networks import Networks
from .settings import Settings
from .socket_volume import SocketVolume


@dataclass(frozen=True)
class BackendArgs:
    settings: Settings
    image: pulumi.Input[str]   # the image reference: a release's tag, or the ID a rollback pinned
    networks: Networks
    socket: SocketVolume
    database: docker.Container   # started first: a component's depends_on does not reach its children
    secrets: AppSecrets
    volumes: AppVolumes
    # Done before any container of this generation starts: the release command (release_command.py).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def generation(settings: Settings) -> str:
    """`<release>-<digest of the container spec and build context>`: any change to what shapes the containers,
    code included, is a new generation.

    pulumi-docker replaces a container delete-first, which would drop requests. A new generation is a new
    Pulumi resource instead: it is created (and healthy) before the edge switches to it, and the old one is
    deleted only at the end of a successful update. Secret values are not part of the digest (it is in every
    container name): a changed secret takes effect with the next release.
    """
    pinned = settings.pinned_images
    code = pinned.backend if pinned else context_digest(settings.context_path(settings.backend))
    spec = (settings.backend.spec(), settings.database.name, settings.database.user, code)
    return f"{settings.release}-{rendering.keyed_digest(settings.generation_key, spec)}"


def probe_url(settings: Settings, container: str) -> str:
    """Where the release gate asks a backend container for its health, from inside the edge."""
    return f"http://{container}:{settings.backend.port}{settings.backend.healthPath}"


class Backend(pulumi.ComponentResource):
    """`replicas` API containers: uid 1001, read-only, no capabilities, no published port, the socket mounted.

    The component lives as long as the stack; its containers are named after the generation, so each
    generation's containers are new resources beside the previous ones. No health check runs inside the image
    (it may hold no shell, curl or Python): the release gate probes `healthPath` from the edge, and an image's
    own HEALTHCHECK, if it has one, still applies.
    """

    containers: list[docker.Container]
    names: list[str]
    generation: str
    app_volumes: list[str]   # Docker names of the app's volumes (backups include them)

    def __init__(self, name: str, args: BackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Backend", name, None, opts)
        settings, backend = args.settings, args.settings.backend
        self.generation = generation(settings)
        self.app_volumes = list(args.volumes.names)
        networks = [args.networks.data, args.networks.app]
        if args.networks.egress is not None:
            networks.append(args.networks.egress)
        self.names = [f"{settings.name_prefix}-backend-{self.generation}-{i}" for i in range(1, backend.replicas + 1)]
        self.containers = [
            docker.Container(
                f"{name}-{self.generation}-{i}", name=container_name, image=args.image, envs=args.secrets.envs(),
                group_adds=[str(contract.DBSOCK_GID)],   # the socket directory's group: grants the connection
                mounts=[args.socket.mount("Backend"), *args.volumes.mounts()],
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=n.name) for n in networks],
                **hardened(settings, "backend", user=f"{contract.BACKEND_UID}:{contract.BACKEND_UID}",
                           memory_mb=backend.memoryMb, release=settings.release, wait=False, cpus=backend.cpus),
                # A secret's new value alone is no new generation (see `generation`): it waits for the next
                # release instead of replacing these containers delete-first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.database, *args.volumes.owner,
                                                                     *args.depends_on],
                                            ignore_changes=["envs"]))
            for i, container_name in enumerate(self.names, start=1)]
        self.register_outputs({"generation": self.generation, "containerNames": self.names,
                               "appVolumes": self.app_volumes})
