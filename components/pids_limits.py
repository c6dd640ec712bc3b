"""A PIDs cgroup limit on every container the stack runs (CIS Docker Benchmark 5.29).

pulumi-docker 5.x's Container has no pids input (its schema has pidMode and ulimits only), and the engine has
no daemon-wide default (moby#43056). The nproc ulimit of hardening.py is no substitute: it counts the processes
of a uid across every container of the host. So the limit is set with `docker update --pids-limit` on the
containers' ids as soon as they exist, beside the release gate (not before it: it adds nothing to a release's
critical path); a replaced container has a new id, which runs the update again. `docker update` keeps the limit
across restarts of the container and of the engine.
"""

from __future__ import annotations

import shlex
from typing import Sequence

import pulumi
import pulumi_docker as docker

from .remote_host import Command, RemoteHost

# Far above what the reference app and PostgreSQL (a process per connection) use; a fork bomb stops here.
PIDS_LIMIT = 1024


def update_script(container_ids: Sequence[str], limit: int = PIDS_LIMIT) -> str:
    return f"docker update --pids-limit {limit} {' '.join(shlex.quote(i) for i in container_ids)} >/dev/null\n"


class PidsLimits(pulumi.ComponentResource):
    update: Command

    def __init__(self, name: str, host: RemoteHost, containers: Sequence[docker.Container],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:PidsLimits", name, None, opts)
        ids = [c.id for c in containers]
        script = pulumi.Output.all(*ids).apply(lambda values: update_script(values))
        self.update = host.script(f"{name}-update", script, triggers=ids,
                                  opts=pulumi.ResourceOptions(parent=self, depends_on=list(containers)))
        self.register_outputs({"limit": PIDS_LIMIT})
