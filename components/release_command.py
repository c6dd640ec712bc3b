"""`backend.releaseCommand`: once per release, before any of the release's backends starts (e.g. migrations).

It runs in a one-off container of the new image, with the backend's uid and groups, socket, app volumes,
networks and environment (secrets included), through a script on the target (templates/host/release-command.sh.j2).
A failure fails the update within seconds of the command's exit, with its last output lines; the new
generation's backends never start, so the running release keeps serving. Each generation is a new resource:
a new release runs the command again, a no-change `up` does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import base64

import pulumi

from . import contract, rendering
from .app_secrets import AppSecrets
from .app_volumes import AppVolumes
from .hardening import NPROC_LIMIT
from .networks import Networks
from .pids_limits import PIDS_LIMIT   # the same cap as the long-lived containers, given to `docker create`
from .remote_host import Command, RemoteHost
from .settings import Settings
from .socket_volume import SocketVolume

LOG_LINES = 50


@dataclass(frozen=True)
class ReleaseCommandArgs:
    settings: Settings
    host: RemoteHost
    image: pulumi.Input[str]
    generation: str
    networks: Networks
    socket: SocketVolume
    secrets: AppSecrets
    volumes: AppVolumes
    # What must be done first: the database, and (issue 11) a backup taken before the release changes data.
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def env_lines(env: dict[str, str]) -> str:
    """`NAME=base64(value)` lines for the script's stdin, so that any value (newlines included) survives."""
    return "".join(f"{k}={base64.b64encode(v.encode()).decode()}\n" for k, v in env.items())


class ReleaseCommand(pulumi.ComponentResource):
    run: Command   # done when the command succeeded: what the backends depend on

    def __init__(self, name: str, args: ReleaseCommandArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:ReleaseCommand", name, None, opts)
        settings = args.settings
        networks = [args.networks.data.name, args.networks.app.name]
        if args.networks.egress is not None:
            networks.append(args.networks.egress.name)
        socket = f"type=volume,src={settings.name_prefix}-pgsocket,dst={contract.SOCKET_DIR}"
        body = pulumi.Output.all(image=args.image, networks=networks).apply(lambda v: rendering.render(
            "host/release-command.sh.j2", generation=args.generation, command=settings.backend.releaseCommand,
            container=f"{settings.name_prefix}-release-{args.generation}", image=v["image"],
            networks=v["networks"], mounts=[socket, *args.volumes.mount_flags()],
            user=f"{contract.BACKEND_UID}:{contract.BACKEND_UID}", group=str(contract.DBSOCK_GID),
            memory_mb=settings.backend.memoryMb, nproc=NPROC_LIMIT, pids=PIDS_LIMIT, stack=settings.stack,
            release=settings.release, log_lines=LOG_LINES, timeout_seconds=settings.backend.releaseTimeoutSeconds,
            cpus=settings.backend.cpus))
        # The environment is part of the script (a secret Output), not its stdin: see release-command-env.sh.j2.
        script = pulumi.Output.all(body=body, env=args.secrets.environment()).apply(lambda v: rendering.render(
            "host/release-command-env.sh.j2", body=v["body"], env_lines=env_lines(v["env"])))
        self.run = args.host.script(
            f"{name}-{args.generation}", script, triggers=[args.generation, args.image],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.socket.volume, *args.volumes.owner,
                                                                 *args.depends_on]))
        self.register_outputs({"generation": args.generation})
