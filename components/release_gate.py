"""The gate between a release's new containers and the edge switch: healthy, or a fast failure that says why.

The provider's own `wait` only knows "healthy before the timeout": a container that crashes at start keeps it
waiting the whole timeout, and its error carries no log. The gate watches the new generation's containers on
the target instead: it fails within seconds of an exit, a restart or an unhealthy status, with the health
check's output and the container's last log lines in the error, and removes the failed containers.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from . import rendering
from .hardening import HEALTH_INTERVAL_SECONDS, HEALTH_RETRIES, START_PERIOD_SECONDS
from .remote_host import Command, RemoteHost

LOG_LINES = 50
# A container is unhealthy at the latest after its start period and `retries` failed probes; the margin
# covers the engine's own scheduling.
TIMEOUT_SECONDS = START_PERIOD_SECONDS + HEALTH_INTERVAL_SECONDS * HEALTH_RETRIES + 10
# A probed container that has not answered once by then is unhealthy: the same budget as a HEALTHCHECK's.
PROBE_GRACE_SECONDS = START_PERIOD_SECONDS + HEALTH_INTERVAL_SECONDS * HEALTH_RETRIES


class ReleaseGate(pulumi.ComponentResource):
    check: Command

    def __init__(self, name: str, host: RemoteHost, generation: str, names: Sequence[str],
                 containers: Sequence[docker.Container], opts: pulumi.ResourceOptions | None = None, *,
                 probes: Mapping[str, str] | None = None, edge: docker.Container | None = None,
                 edge_name: pulumi.Input[str] = ""):
        """probes: container name -> URL that the gate fetches with the edge's curl (`docker exec EDGE`), over
        the app network: a container's health needs nothing in its own image. Containers without a probe must
        report healthy through their own HEALTHCHECK; a container with both must pass both."""
        super().__init__("webstack:components:ReleaseGate", name, None, opts)
        script = pulumi.Output.from_input(edge_name).apply(lambda edge: rendering.render(
            "host/release-gate.sh.j2", generation=generation, containers=list(names),
            timeout_seconds=TIMEOUT_SECONDS, log_lines=LOG_LINES, probes=dict(probes or {}), edge=edge,
            probe_grace_seconds=PROBE_GRACE_SECONDS))
        self.check = host.script(f"{name}-{generation}", script, triggers=[c.id for c in containers],
                                 opts=pulumi.ResourceOptions(parent=self, depends_on=[*containers,
                                                                                      *([edge] if edge else [])]))
        self.register_outputs({"generation": generation})
