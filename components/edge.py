"""The public path: a holder of the published ports, and the nginx edge serving in its network namespace,
switched between releases by reload and replaced beside itself without a gap."""

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


# The holder only keeps the network namespace and the published ports open; it runs `sleep`.
HOLDER_MEMORY_MB = 16
HOLDER_CPUS = 0.1
# SO_REUSEPORT spreads new connections over every edge's listeners. When an old edge closes its listeners, the
# kernel moves the connections still waiting in their accept queues to a listener that stays (Linux >= 5.14; on
# older kernels those few are reset), so a graceful stop of the old edge drops none.
HOLDER_SYSCTLS = {"net.ipv4.tcp_migrate_req": "1"}
# nginx keeps each request body in the edge's /tmp (a tmpfs, which counts in its memory) until the backend takes
# it, so that a slow upload never holds a backend worker: /tmp holds three bodies of edge.maxBodyMb at once, and
# the memory limit grows with it. The defaults are the edge's before that setting.
EDGE_TMP_MB = 64
EDGE_NGINX_MB = 64
BODIES_IN_TMP = 3


def edge_tmp_mb(settings: Settings) -> int:
    return max(EDGE_TMP_MB, BODIES_IN_TMP * settings.edge.maxBodyMb)


class Edge(pulumi.ComponentResource):
    """The public path: a holder of the published ports, and the nginx edge that serves in its network namespace.

    The holder (`<prefix>-edge-ports`) owns the ports and the networks and never changes with an edge upgrade (its
    image is ignored after creation). Each edge joins its network namespace and listens with `reuseport`, so a
    replaced edge is created beside the serving one (a new name each time, from the engine's autonaming), checked
    healthy through its own socket, switched to this release, and only then the old one gets its graceful stop
    (edge-switch.sh.j2): some listener is on the published ports at every instant.

    `route_to` writes the release's nginx site (and certificates) into the edge's config volume and reloads nginx,
    after the release's containers are healthy; `nginx -t` runs first inside the edge, so a bad configuration fails
    the update and the old one keeps serving.
    """

    config_volume: docker.Volume
    holder: docker.Container
    container: docker.Container
    switch: Command | None = None

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Edge", name, None, opts)
        self._args = args
        settings = args.settings
        # `-site`: a volume started from an image whose bootstrap site already listens with reuseport (an edge
        # that bound the ports without it would keep every later edge off them).
        self.config_volume = docker.Volume(
            f"{name}-config", name=f"{settings.name_prefix}-edge-site",
            labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack)],
            opts=pulumi.ResourceOptions(parent=self))
        self.holder = self._holder(name, settings)
        mounts = [docker.ContainerMountArgs(type="volume", source=self.config_volume.name,
                                            target=contract.EDGE_CONFIG_DIR)]
        if args.acme is not None:
            mounts.append(args.acme.mount_in_edge())
        self.container = docker.Container(
            # No name: the engine names each new edge `<prefix>-edge-<random>`, so a replacement never collides
            # with the edge it replaces, nor with one left by an interrupted update.
            # The image's ID: a rebuild under the same tag (a new base image) replaces the edge, gaplessly.
            f"{settings.name_prefix}-edge", image=args.image.image_id, mounts=mounts,
            # The id, as Docker reports it back: a name here would read as a change on every update.
            network_mode=self.holder.id.apply(lambda holder_id: f"container:{holder_id}"),
            healthcheck=healthcheck(["curl", "-fsS", "-o", "/dev/null", "--unix-socket", contract.EDGE_HTTP_SOCKET,
                                     f"http://localhost{contract.EDGE_HEALTH_PATH}"]),
            **hardened(settings, "edge", user=f"{contract.NGINX_UID}:{contract.NGINX_UID}",
                       memory_mb=EDGE_NGINX_MB + edge_tmp_mb(settings),
                       tmpfs={"/tmp": f"rw,noexec,nosuid,size={edge_tmp_mb(settings)}m"}),
            # After the ACME container: it fills its fresh volume (owners, the first certificate) before the
            # edge mounts it read-only. Created before the old edge is deleted (the provider's default for
            # containers is delete first).
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False,
                                        depends_on=[args.acme.container] if args.acme else []))
        self.register_outputs({"containerName": self.container.name, "holderName": self.holder.name})

    def _holder(self, name: str, settings: Settings) -> docker.Container:
        # CIS 5.8 waiver: the edge may publish ports below 1024 (80/443 in prod); inside it binds 8080/8443 as
        # uid 101, so it needs no capability for that.
        ports = [docker.ContainerPortArgs(internal=contract.EDGE_HTTP_PORT, external=settings.httpPort,
                                          ip=settings.publishAddress)]
        if settings.tls_enabled:
            ports.append(docker.ContainerPortArgs(internal=contract.EDGE_HTTPS_PORT, external=settings.httpsPort,
                                                  ip=settings.publishAddress))
        return docker.Container(
            f"{name}-ports", name=f"{settings.name_prefix}-edge-ports", image=self._args.image.name,
            command=["sleep", "infinity"], ports=ports, sysctls=HOLDER_SYSCTLS,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=self._args.public_network.name),
                               docker.ContainerNetworksAdvancedArgs(name=self._args.app_network.name)],
            # Nothing to check: it serves nothing. The edges in its namespace have the health checks.
            healthcheck=docker.ContainerHealthcheckArgs(tests=["NONE"]),
            **hardened(settings, "edge-ports", user="65534:65534", memory_mb=HOLDER_MEMORY_MB, cpus=HOLDER_CPUS,
                       wait=False, grace_seconds=1),
            # The edge image only gives it `sleep`: a new edge image must not replace it (that would close the
            # ports). Changing the ports or the networks does replace it, with a short gap. The health check reads
            # back with the image's timings beside NONE: not a change. The alias: it takes over the single edge
            # container of earlier versions, which is deleted first (it holds the ports).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["image", "healthcheck"],
                                        aliases=[pulumi.Alias(name=f"{name}-nginx")]))

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
        inside = rendering.render_edge_switch(settings, generation)
        script = self.container.name.apply(lambda edge: rendering.render(
            "host/edge-switch.sh.j2", generation=generation, edge=edge, stack=settings.stack,
            name_prefix=settings.name_prefix, containers=[*backend.names, *web_names], inside=inside))
        self.switch = self._args.host.script(
            f"{self._name}-switch", script, stdin=bundle,
            # A replaced edge container starts from its volume; re-apply anyway so it always has this release.
            triggers=[self.container.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gate.check, self.container]))
        return self.switch
