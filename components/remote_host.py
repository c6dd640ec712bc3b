"""Where the stack runs: the local engine, or a Linux host reached over SSH with a pinned host key."""

from __future__ import annotations

import shlex
from typing import Optional, Sequence, Union

import pulumi
import pulumi_docker as docker
from pulumi_command import local, remote

from . import rendering
from .local_files import SshAccess, key_path, write_private
from .settings import Settings

MIN_DOCKER_VERSION = "20.10"
Command = Union[local.Command, remote.Command]


def ssh_access(settings: Settings) -> SshAccess:
    """The operator-side files for an ssh target, written 0600: the pinned known_hosts (public) in the project's
    .webstack/<stack>/, the private key in a private per-user directory outside the project (local_files.key_path).

    At preview nothing is written: the paths are the same as on `up`, so the Provider's options do not change.
    The key is not removed when the program exits: the engine still deletes replaced resources over ssh after
    that, and `pulumi refresh`/`destroy` use the Provider's options from the state without running the program.
    """
    target = settings.target
    assert target.host and target.hostKey   # guaranteed by settings validation
    write = not pulumi.runtime.is_dry_run()
    known_hosts = settings.projectDir / ".webstack" / settings.stack / "known_hosts"
    if write:
        write_private(known_hosts, rendering.render_known_hosts(target.host, target.port, target.hostKey))
    identity = None
    if target.privateKey:
        identity = key_path(settings.projectDir, settings.stack)
        if write:
            key = target.privateKey.get_secret_value()
            write_private(identity, key if key.endswith("\n") else key + "\n")
    return SshAccess(host=target.host, port=target.port, user=target.user, known_hosts=known_hosts,
                     identity=identity, connect_timeout=target.connectTimeout)


def preflight_script() -> str:
    """Runs on the operator's machine; parameters come from SshAccess.environment(WEBSTACK_MIN_DOCKER_VERSION=...)."""
    return rendering.render("host/preflight.sh.j2")


def bootstrap_command(settings: Settings) -> str:
    """The remote command line: `sh -c SCRIPT`, so the script runs under sh whatever the user's login shell,
    and nothing it starts can read the script itself from stdin."""
    return f"sh -c {shlex.quote(rendering.render_bootstrap(settings, MIN_DOCKER_VERSION))} webstack-bootstrap"


class RemoteHost(pulumi.ComponentResource):
    """Yields the docker Provider for the target, and runs commands there.

    For `kind: ssh`, in this order:
    1. `preflight` (local.Command on the operator's machine): the system ssh with the Provider's exact options
       (pinned known_hosts, StrictHostKeyChecking=yes); read-only checks; one message per kind of failure.
    2. `bootstrap` (remote.Command, `host_key` pinned): installs and starts Docker, idempotently.
    3. the docker Provider for ssh://user@host, ssh_opts = the same pinned options; it depends on `ready`.
    The base image reaches the host (or is read there) after `ready`, before any image builds
    (components/base_image.py).
    No option anywhere turns host key checks off. Remote commands get no previous output in their environment:
    sshd refuses such variables, and the provider would then put them in the remote command line (finding 14).
    The provider (tools/pulumi-toolchain/command) sends SSH keepalives, so a dropped connection fails the
    command within 45 s instead of hanging the update.
    """

    provider: docker.Provider
    connection: Optional[remote.ConnectionArgs] = None
    access: Optional[SshAccess] = None
    preflight: Optional[local.Command] = None
    bootstrap: Optional[remote.Command] = None
    ready: list[pulumi.Resource]      # what must be done before the first image builds on the target
    docker_host: str

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:RemoteHost", name, None, opts)
        self._name = name
        self.ready = []
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
        access = self.access = ssh_access(settings)
        private_key = target.privateKey.get_secret_value() if target.privateKey else None
        self.connection = remote.ConnectionArgs(
            host=target.host, port=target.port, user=target.user, host_key=target.hostKey,
            private_key=pulumi.Output.secret(private_key) if private_key else None,
            dial_error_limit=3, per_dial_timeout=target.connectTimeout)

        self.preflight = local.Command(
            f"{name}-preflight", create=preflight_script(),
            environment=access.environment(WEBSTACK_MIN_DOCKER_VERSION=MIN_DOCKER_VERSION),
            logging=local.Logging.STDOUT_AND_STDERR, opts=pulumi.ResourceOptions(parent=self))
        self.bootstrap = remote.Command(
            f"{name}-bootstrap", connection=self.connection, create=bootstrap_command(settings),
            add_previous_output_in_env=False,
            logging=remote.Logging.STDOUT_AND_STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.preflight]))
        self.ready = [self.bootstrap]

        self.docker_host = access.docker_host
        self.provider = docker.Provider(
            f"{name}-docker", host=self.docker_host, ssh_opts=access.options,
            # Docker may not be installed yet at preview; the bootstrap installs it before the first use.
            disable_docker_daemon_check=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.ready)))

    def run(self, name: str, *, create: str, stdin: pulumi.Input[str], triggers: Sequence[pulumi.Input],
            opts: pulumi.ResourceOptions) -> Command:
        """A command on the target: `docker ...` runs against the same engine the Provider uses."""
        if self.connection is None:
            return local.Command(name, create=f"docker -H {shlex.quote(self.docker_host)} {create}", stdin=stdin,
                                 triggers=list(triggers), logging=local.Logging.STDOUT_AND_STDERR, opts=opts)
        return remote.Command(name, connection=self.connection, create=f"docker {create}", stdin=stdin,
                              add_previous_output_in_env=False,
                              triggers=list(triggers), logging=remote.Logging.STDOUT_AND_STDERR, opts=opts)

    def script(self, name: str, script: pulumi.Input[str], *, triggers: Sequence[pulumi.Input],
               opts: pulumi.ResourceOptions, stdin: Optional[pulumi.Input[str]] = None) -> Command:
        """A shell script whose `docker` commands reach the target's engine (DOCKER_HOST locally, the host's own
        engine over SSH). It runs again when a trigger or its stdin changes. The script may be an Output (a
        value known once a resource exists, such as an image reference)."""
        if self.connection is None:
            return local.Command(name, create=script, environment={"DOCKER_HOST": self.docker_host}, stdin=stdin,
                                 triggers=list(triggers), logging=local.Logging.STDOUT_AND_STDERR, opts=opts)
        create = (f"sh -c {shlex.quote(script)} webstack" if isinstance(script, str)
                  else pulumi.Output.from_input(script).apply(lambda s: f"sh -c {shlex.quote(s)} webstack"))
        return remote.Command(name, connection=self.connection, create=create, add_previous_output_in_env=False,
                              stdin=stdin, triggers=list(triggers), logging=remote.Logging.STDOUT_AND_STDERR,
                              opts=opts)
