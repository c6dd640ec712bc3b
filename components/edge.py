"""The long-lived nginx edge: owns the published ports and is switched between releases by reload."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from . import contract, rendering
from .acme import Acme
from .backend import Backend
from .certificates import Certificates
from .hardening import hardened, healthcheck
from .release_gate import ReleaseGate

from .remote_host import Command, RemoteHost
from .settings import Settings
from .web import Web


@dataclass(frozen=True)
class EdgeArgs:
    settings: Settings
    image: docker.RemoteImage
    app_network: docker.Network
    public_network: docker.Network
    host: RemoteHost
    acme: Acme | None = None   # tls.mode acme: the edge mounts its volume and starts after it


class Edge(pulumi.ComponentResource):
    """The edge container never changes with a release. `route_to` writes the release's nginx site (and
    certificates) into the edge's config volume and reloads nginx, after the release's containers are healthy;
    `nginx -t` runs first inside the edge, so a bad configuration fails the update and the old one keeps serving.
    """

    config_volume: docker.Volume
    container: docker.Container
    switch: Command | None = None

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Edge", name, None, opts)
        self._args = args
        settings = args.settings
        self.config_volume = docker.Volume(
            f"{name}-config", name=f"{settings.name_prefix}-edge-config",
            labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack)],
            opts=pulumi.ResourceOptions(parent=self))
        # CIS 5.8 waiver: the edge may publish ports below 1024 (80/443 in prod); inside it binds 8080/8443 as
        # uid 101, so it needs no capability for that.
        ports = [docker.ContainerPortArgs(internal=contract.EDGE_HTTP_PORT, external=settings.httpPort,
                                          ip=settings.publishAddress)]
        if settings.tls_enabled:
            ports.append(docker.ContainerPortArgs(internal=contract.EDGE_HTTPS_PORT, external=settings.httpsPort,
                                                  ip=settings.publishAddress))
        mounts = [docker.ContainerMountArgs(type="volume", source=self.config_volume.name,
                                            target=contract.EDGE_CONFIG_DIR)]
        if args.acme is not None:
            mounts.append(args.acme.mount_in_edge())
        self.container = docker.Container(
            f"{name}-nginx", name=f"{settings.name_prefix}-edge", image=args.image.name, ports=ports,
            mounts=mounts,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.public_network.name),
                               docker.ContainerNetworksAdvancedArgs(name=args.app_network.name)],
            healthcheck=healthcheck(["curl", "-fsS", "-o", "/dev/null",
                                     f"http://127.0.0.1:{contract.EDGE_HTTP_PORT}{contract.EDGE_HEALTH_PATH}"]),
            **hardened(settings, "edge", user=f"{contract.NGINX_UID}:{contract.NGINX_UID}", memory_mb=128),
            # After the ACME container: it fills its fresh volume (owners, the first certificate) before the
            # edge mounts it read-only.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.acme.container] if args.acme else []))
        self.register_outputs({"containerName": self.container.name})

    def route_to(self, backend: Backend, web: Web | None, certificates: Certificates, gate: ReleaseGate) -> Command:
        """Point the edge at this release; runs only once the release gate found its containers healthy.
        web is None for a backend-only app (`frontend.enabled: false`)."""
        settings = self._args.settings
        web_names = [web.container_name] if web else []
        sites = {"site.conf": rendering.render_edge_site(settings, backend.names, web_names),
                 "canary.site": rendering.render_edge_site(settings, backend.names, web_names, canary=True)}
        if certificates.present:
            bundle = pulumi.Output.secret(pulumi.Output.all(certificates.certificate_pem, certificates.private_key_pem)
                                          .apply(lambda pems: rendering.edge_bundle(
                                              {**sites, "tls/fullchain.pem": pems[0], "tls/privkey.pem": pems[1]})))
        else:
            bundle = pulumi.Output.from_input(rendering.edge_bundle(sites))
        generation = f"{backend.generation}-{web.generation if web else 'noweb'}"
        script = rendering.render(
            "host/edge-switch.sh.j2", generation=generation, edge=f"{settings.name_prefix}-edge",
            containers=[*backend.names, *web_names], inside=rendering.render_edge_switch(settings, generation))
        self.switch = self._args.host.script(
            f"{self._name}-switch", script, stdin=bundle,
            # A replaced edge container starts from its volume; re-apply anyway so it always has this release.
            triggers=[self.container.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gate.check, self.container]))
        return self.switch
