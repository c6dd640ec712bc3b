"""One generation of the static frontend, released the same way as the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_docker as docker

from . import contract, rendering
from .images import context_digest
from .hardening import hardened, healthcheck
from .settings import Settings


@dataclass(frozen=True)
class WebArgs:
    settings: Settings
    image: pulumi.Input[str]   # the image reference: a release's tag, or the ID a rollback pinned
    app_network: docker.Network
    # Done before the release's containers start (the pre-deploy backup): a failed backup leaves nothing of the
    # release behind. It also puts the old generation's container into the same round of deletes as the old
    # backends' at the end of the next release, instead of a round after them.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def generation(settings: Settings) -> str:
    """`<release>-<digest>`: a new release, frontend setting or code change is a new resource, as for the backend."""
    pinned = settings.pinned_images
    code = pinned.web if pinned else context_digest(settings.context_path(settings.frontend))
    spec = (settings.frontend.model_dump(), code)
    return f"{settings.release}-{rendering.keyed_digest(settings.generation_key, spec)}"


class Web(pulumi.ComponentResource):
    """nginx serving the built assets as uid 101 on an unprivileged port; reachable only from the edge."""

    container: docker.Container
    container_name: str
    generation: str
    probe_url: str

    def __init__(self, name: str, args: WebArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Web", name, None, opts)
        settings = args.settings
        self.generation = generation(settings)
        self.container_name = f"{settings.name_prefix}-web-{self.generation}"
        # Where the release gate asks for its health from inside the edge (its own check is slower to start).
        self.probe_url = f"http://{self.container_name}:{contract.WEB_PORT}/healthz"
        self.container = docker.Container(
            f"{name}-{self.generation}-nginx", name=self.container_name, image=args.image,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.app_network.name)],
            healthcheck=healthcheck(["curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{contract.WEB_PORT}/healthz"]),
            **hardened(settings, "web", user=f"{contract.NGINX_UID}:{contract.NGINX_UID}", memory_mb=64,
                       release=settings.release, wait=False, cpus=settings.frontend.cpus),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)))
        self.register_outputs({"generation": self.generation, "containerName": self.container_name})
