"""The backend API: the containers of the current generation (one release and one configuration)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from . import contract, rendering
from .images import context_digest
from .hardening import hardened, healthcheck
from .settings import Settings
from .socket_volume import SocketVolume


@dataclass(frozen=True)
class BackendArgs:
    settings: Settings
    image: pulumi.Input[str]   # the image reference: a release's tag, or the ID a rollback pinned
    data_network: docker.Network
    app_network: docker.Network
    socket: SocketVolume
    database: docker.Container   # started first: a component's depends_on does not reach its children


def generation(settings: Settings) -> str:
    """`<release>-<digest of the container spec and build context>`: any change to what shapes the containers,
    code included, is a new generation.

    pulumi-docker replaces a container delete-first, which would drop requests. A new generation is a new
    Pulumi resource instead: it is created (and healthy) before the edge switches to it, and the old one is
    deleted only at the end of a successful update.
    """
    pinned = settings.pinned_images
    code = pinned.backend if pinned else context_digest(settings.context_path(settings.backend))
    spec = (settings.backend.model_dump(), settings.database.name, settings.database.user, code)
    return f"{settings.release}-{rendering.digest(spec)}"


class Backend(pulumi.ComponentResource):
    """`replicas` API containers: uid 1001, read-only, no capabilities, no published port, the socket mounted.

    The component lives as long as the stack; its containers are named after the generation, so each
    generation's containers are new resources beside the previous ones.
    """

    containers: list[docker.Container]
    names: list[str]
    generation: str

    def __init__(self, name: str, args: BackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Backend", name, None, opts)
        settings, backend = args.settings, args.settings.backend
        self.generation = generation(settings)
        envs = [f"PORT={backend.port}", f"PGHOST={contract.SOCKET_DIR}", f"PGDATABASE={settings.database.name}",
                f"PGUSER={settings.database.user}"] + [f"{k}={v}" for k, v in sorted(backend.env.items())]
        if "backend" in settings.secretKeys:   # env set with --secret: no plaintext in the plan or the state
            envs = pulumi.Output.secret(envs)
        self.names = [f"{settings.name_prefix}-backend-{self.generation}-{i}" for i in range(1, backend.replicas + 1)]
        self.containers = [
            docker.Container(
                f"{name}-{self.generation}-{i}", name=container_name, image=args.image, envs=envs,
                group_adds=[str(contract.DBSOCK_GID)],   # the socket directory's group: grants the connection
                mounts=[args.socket.mount("Backend")],
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.data_network.name),
                                   docker.ContainerNetworksAdvancedArgs(name=args.app_network.name)],
                healthcheck=healthcheck(["python3", "-c", probe(backend.port, backend.healthPath)]),
                **hardened(settings, "backend", user=f"{contract.BACKEND_UID}:{contract.BACKEND_UID}",
                           memory_mb=backend.memoryMb, release=settings.release, wait=False),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.database]))
            for i, container_name in enumerate(self.names, start=1)]
        self.register_outputs({"generation": self.generation, "containerNames": self.names})


def probe(port: int, path: str) -> str:
    """A health probe in the image's own Python: no curl in the backend image."""
    return f"import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=2)"
