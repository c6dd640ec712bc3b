"""How an operator command reaches a stack's Docker engine: the stack's own settings, the same pinned SSH
options as the program (components.remote_host.ssh_access), and the docker CLI (locally) or the host's docker
(over ssh). Nothing here changes the stack: it only runs `docker` commands the operator asked for."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from typing import Iterable

from pulumi import automation as auto

from components.remote_host import ssh_access
from components.settings import Settings
from components.settings_loader import ConfigError, NAMESPACE, load_settings
from ops.errors import OpsError
from ops.stack import PROJECT_DIR


def settings_of(stack: auto.Stack) -> Settings:
    """The stack's settings, from its config as the engine stores it (secrets decrypted in memory only)."""
    config = stack.get_all_config()
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix):]: v.value for k, v in config.items() if k.startswith(prefix)}
    secrets = {k[len(prefix):] for k, v in config.items() if k.startswith(prefix) and v.secret}
    try:
        return load_settings(values, secrets, stack.name, PROJECT_DIR)
    except ConfigError as exc:
        raise OpsError(str(exc)) from None


def running(containers: list[dict], role: str) -> list[dict]:
    """The running containers of `role` among `docker inspect` results, by name."""
    return sorted((c for c in containers if (c["Config"]["Labels"] or {}).get("webstack.role") == role
                   and c["State"]["Running"]), key=lambda c: c["Name"])


@dataclass
class Target:
    settings: Settings

    def command(self, docker_args: Iterable[str], tty: bool = False) -> list[str]:
        """`docker ARGS` against the target's engine (tty: an interactive terminal over ssh too)."""
        args = list(docker_args)
        if self.settings.target.kind == "local":
            return ["docker", "-H", self.settings.target.dockerHost, *args]
        return self._ssh(shlex.join(["docker", *args]), tty)

    def shell(self, script: str) -> list[str]:
        """`sh -c SCRIPT` where `docker` reaches the target's engine (here with DOCKER_HOST, or on the host)."""
        if self.settings.target.kind == "local":
            return ["env", f"DOCKER_HOST={self.settings.target.dockerHost}", "sh", "-c", script, "webstack"]
        return self._ssh(shlex.join(["sh", "-c", script, "webstack"]), False)

    def _ssh(self, remote_command: str, tty: bool) -> list[str]:
        access = ssh_access(self.settings)
        return ["ssh", *access.options, *(["-t"] if tty else []), "-p", str(access.port),
                f"{access.user}@{access.host}", "--", remote_command]

    def docker(self, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(self.command(args), capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise OpsError(f"`docker {' '.join(args[:2])}` on the target failed: {result.stderr.strip()[-500:]}")
        return result.stdout

    def containers(self) -> list[dict]:
        """`docker inspect` of every container of this stack (any state)."""
        ids = self.docker("ps", "-aq", "--filter", f"label=webstack.stack={self.settings.stack}").split()
        return json.loads(self.docker("inspect", *ids)) if ids else []

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
