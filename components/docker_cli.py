"""`docker` against a stack's engine, from the operator's machine: the docker CLI with the stack's DOCKER_HOST
(local), or the host's own docker over the system ssh with the same pinned options as the program
(components.remote_host.ssh_access). Used by `python -m ops` and by the program's own hooks (components/orphans.py).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from typing import Iterable

from .remote_host import ssh_access
from .settings import Settings


class DockerCliError(RuntimeError):
    pass


@dataclass
class DockerCli:
    settings: Settings
    error = DockerCliError   # what a failed command raises (ops: its own OpsError, printed without a traceback)

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
            raise self.error(f"`docker {' '.join(args[:2])}` on the target failed: {result.stderr.strip()[-500:]}")
        return result.stdout

    def containers(self) -> list[dict]:
        """`docker inspect` of every container of this stack (any state)."""
        ids = self.docker("ps", "-aq", "--filter", f"label=webstack.stack={self.settings.stack}").split()
        return json.loads(self.docker("inspect", *ids)) if ids else []

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
