"""tls.mode acme: the stack's ACME container (Debian's lego) gets, publishes and renews the edge's certificate,
for the domain and the edge's other names (edge.aliases, edge.redirects).

The container runs on the target next to the edge, so renewal needs no operator: it renews at 2/3 of the
certificate's lifetime and publishes the new pair in its volume, which the edge mounts read-only and reloads
from (containers/edge/certs.sh). `pulumi up` asks for the first certificate once the edge serves the HTTP-01
challenge path, so an update that cannot get one fails with the domain and the ACME server's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_docker as docker

from . import contract, rendering
from .hardening import hardened, healthcheck
from .remote_host import Command, RemoteHost
from .settings import Settings

# A private ACME server on the target host itself (a test CA such as pebble, or step-ca) is reached under this
# name, Docker's name for the host: only then does the container get it, as the host's gateway address.
HOST_ALIAS = "host.docker.internal"


@dataclass(frozen=True)
class AcmeArgs:
    settings: Settings
    image: docker.RemoteImage
    public_network: docker.Network    # the one network with a route out: the ACME server is on the internet


def extra_names(settings: Settings) -> list[str]:
    """The names beside the domain that the edge serves with the certificate (edge.aliases, edge.redirects)."""
    return [name for name in settings.served_names if name != settings.domain]


class Acme(pulumi.ComponentResource):
    """The volume (account key, certificates, challenge webroot) and the long-lived lego container."""

    volume: docker.Volume
    container: docker.Container

    def __init__(self, name: str, args: AcmeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Acme", name, None, opts)
        settings = args.settings
        tls = settings.tls
        self.container_name = f"{settings.name_prefix}-acme"
        self.volume = docker.Volume(
            f"{name}-data", name=f"{settings.name_prefix}-acme",
            labels=[docker.VolumeLabelArgs(label="webstack.stack", value=settings.stack)],
            # The account key and certificates outlive the stack (like the backups): a redeploy reuses them
            # instead of issuing again, which public CAs rate-limit (Let's Encrypt: 5 per domain set a week).
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True))
        env = {"ACME_DOMAIN": settings.domain, "ACME_EMAIL": tls.acmeEmail or "", "ACME_SERVER": tls.acmeServer}
        if extra_names(settings):   # edge.aliases and edge.redirects: the same certificate answers them
            env["ACME_EXTRA_DOMAINS"] = " ".join(extra_names(settings))
        if tls.acmeServerCa:
            env["ACME_CA_PEM"] = tls.acmeServerCa.strip()
        hosts = []
        if urlsplit(tls.acmeServer).hostname == HOST_ALIAS:
            hosts.append(docker.ContainerHostArgs(host=HOST_ALIAS, ip="host-gateway"))
        self.container = docker.Container(
            # The image's ID: a rebuild under the same tag (a new base image) replaces the container.
            f"{name}-lego", name=self.container_name, image=args.image.image_id,
            envs=[f"{key}={value}" for key, value in sorted(env.items())], hosts=hosts,
            mounts=[docker.ContainerMountArgs(type="volume", source=self.volume.name, target=contract.ACME_DIR)],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.public_network.name)],
            healthcheck=healthcheck([contract.ACME_COMMAND, "health"]),
            **hardened(settings, "acme", user=f"{contract.ACME_UID}:{contract.NGINX_UID}", memory_mb=128),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"containerName": self.container.name})

    def mount_in_edge(self) -> docker.ContainerMountArgs:
        """The edge reads the published certificate and the challenge files; it writes nothing there."""
        return docker.ContainerMountArgs(type="volume", source=self.volume.name, target=contract.ACME_DIR,
                                         read_only=True)

    def issue_after(self, switch: pulumi.Resource, host: RemoteHost, settings: Settings,
                    edge: pulumi.Input[str]) -> Command:
        """The first certificate, once the edge (container name `edge`) serves the challenge path; then the edge
        reloads with it."""
        names = " ".join(settings.served_names)
        script = pulumi.Output.from_input(edge).apply(lambda edge_name: rendering.render(
            "host/acme-issue.sh.j2", acme=self.container_name, edge=edge_name, acme_command=contract.ACME_COMMAND,
            certs_command=contract.EDGE_CERTS_COMMAND, domain=settings.domain, names=names,
            server=settings.tls.acmeServer))
        return host.script(f"{self._name}-issue", script,
                           triggers=[self.container.id, names, settings.tls.acmeServer],
                           opts=pulumi.ResourceOptions(parent=self, depends_on=[switch]))
