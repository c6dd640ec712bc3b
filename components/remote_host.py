"""Where the stack runs: the local engine, or a Linux host reached over SSH with a pinned host key."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import pulumi
import pulumi_docker as docker
from pulumi_command import local, remote

from . import rendering
from .local_files import write_private
from .settings import Settings

MIN_DOCKER_VERSION = "20.10"
Command = Union[local.Command, remote.Command]


class RemoteHost(pulumi.ComponentResource):
    """Yields the docker Provider for the target, and runs commands there.

    For `kind: ssh` it first runs a read-only preflight and an idempotent bootstrap over SSH (pulumi-command,
    `host_key` pinned), then configures the docker Provider for ssh://user@host with a known_hosts file that
    holds exactly the pinned key and StrictHostKeyChecking=yes. No option anywhere turns host key checks off.
    """

    provider: docker.Provider
    connection: Optional[remote.ConnectionArgs] = None
    preflight: Optional[remote.Command] = None
    bootstrap: Optional[remote.Command] = None
    docker_host: str

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:RemoteHost", name, None, opts)
        self._name = name
        target = settings.target
        if target.kind == "local":
            self.docker_host = target.dockerHost
            self.provider = docker.Provider(f"{name}-docker", host=self.docker_host,
                                            opts=pulumi.ResourceOptions(parent=self))
        else:
            self._prepare_over_ssh(name, settings)
        self.register_outputs({"dockerHost": self.docker_host, "kind": target.kind})

    def _prepare_over_ssh(self, name: str, settings: Settings) -> None:
        target = settings.target
        assert target.host and target.hostKey   # guaranteed by settings validation
        private_key = target.privateKey.get_secret_value() if target.privateKey else None
        self.connection = remote.ConnectionArgs(
            host=target.host, port=target.port, user=target.user, host_key=target.hostKey,
            private_key=pulumi.Output.secret(private_key) if private_key else None,
            dial_error_limit=3, per_dial_timeout=10)
        child = pulumi.ResourceOptions(parent=self)
        self.preflight = remote.Command(f"{name}-preflight", connection=self.connection,
                                        create=rendering.render("host/preflight.sh.j2"),
                                        triggers=[target.host, target.port, target.hostKey], opts=child)
        script = rendering.render_bootstrap(settings, MIN_DOCKER_VERSION)
        self.bootstrap = remote.Command(
            f"{name}-bootstrap", connection=self.connection, create=script,
            triggers=[rendering.digest(script, length=16)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.preflight]))

        state_dir = settings.projectDir / ".webstack" / settings.stack
        known_hosts = write_private(state_dir / "known_hosts",
                                    rendering.render_known_hosts(target.host, target.port, target.hostKey))
        ssh_opts = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                    "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if private_key:
            ssh_opts += ["-o", "IdentitiesOnly=yes", "-i", str(write_private(state_dir / "deploy_key", private_key))]
        self.docker_host = f"ssh://{target.user}@{target.host}:{target.port}"
        self.provider = docker.Provider(
            f"{name}-docker", host=self.docker_host, ssh_opts=ssh_opts,
            # Docker may not be installed yet at preview; the bootstrap installs it before the first use.
            disable_docker_daemon_check=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.bootstrap]))

    def run(self, name: str, *, create: str, stdin: pulumi.Input[str], triggers: Sequence[pulumi.Input],
            opts: pulumi.ResourceOptions) -> Command:
        """A command on the target: `docker ...` runs against the same engine the Provider uses."""
        if self.connection is None:
            return local.Command(name, create=f"docker -H {self.docker_host} {create}", stdin=stdin,
                                 triggers=list(triggers), logging=local.Logging.STDOUT_AND_STDERR, opts=opts)
        return remote.Command(name, connection=self.connection, create=f"docker {create}", stdin=stdin,
                              triggers=list(triggers), logging=remote.Logging.STDOUT_AND_STDERR, opts=opts)
