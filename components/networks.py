"""The three networks: who may talk to whom is decided here."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from .settings import Settings


class Networks(pulumi.ComponentResource):
    """`data`: database and backend only. `app`: edge, backend and web. `public`: the edge, for its ports (and with
    tls.mode acme the ACME container, which needs a route out to the ACME server).

    `data` and `app` are internal (no route out of the host), so neither the database nor the release
    containers can reach the internet; the edge needs one non-internal network for published ports to work.
    """

    data: docker.Network
    app: docker.Network
    public: docker.Network
    egress: docker.Network | None = None

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Networks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = [docker.NetworkLabelArgs(label="webstack.stack", value=settings.stack)]
        prefix = settings.name_prefix
        self.data = docker.Network(f"{name}-data", name=f"{prefix}-data", internal=True, labels=labels, opts=child)
        self.app = docker.Network(f"{name}-app", name=f"{prefix}-app", internal=True, labels=labels, opts=child)
        self.public = docker.Network(f"{name}-public", name=f"{prefix}-public", internal=False, labels=labels,
                                     opts=child)
        if settings.backend.egress:
            # `backend.egress`: the backend's own way out (mail, payment, APIs). Only the backend and its release
            # command join it; the database stays on `data` alone.
            self.egress = docker.Network(f"{name}-egress", name=f"{prefix}-egress", internal=False, labels=labels,
                                         opts=child)
        self.register_outputs({"data": self.data.name, "app": self.app.name, "public": self.public.name})
