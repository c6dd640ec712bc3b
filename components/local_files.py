"""Files and options the operator's `ssh` needs to reach an ssh target (ssh cannot take them as values).

One `SshAccess` describes how every operator-side tool reaches the host: the docker Provider (ssh://, through
docker/cli's connhelper), the preflight and the base-image refresh (local.Commands running the system ssh).
They all use the same option list, so the checks that the preflight passes are the checks the Provider makes.
The option list pins the host key: StrictHostKeyChecking=yes against a known_hosts file holding exactly the
pinned key, and no global known_hosts file that could add a second accepted key.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


def write_private(path: Path, content: str) -> Path:
    """Write content readable by the current user only; rewrite only when it differs."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if not path.exists() or path.read_text() != content:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    os.chmod(path, 0o600)   # ssh refuses a private key that others can read
    return path


def private_runtime_dir() -> Path:
    """A directory only this user can enter, outside any project: $XDG_RUNTIME_DIR (a per-user tmpfs, emptied at
    logout and reboot) or, without one, <tmp>/webstack-<uid>. Refuses one that another user owns or could
    swap (a symlink, group/other access): a shared /tmp is where such a directory could be planted."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "webstack" if runtime and Path(runtime).is_dir() else \
        Path(tempfile.gettempdir()) / f"webstack-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise PermissionError(f"{base} must be a directory owned by uid {os.getuid()} with mode 0700; remove it")
    return base


def key_path(project_dir: Path, stack: str) -> Path:
    """Where the deploy key of one stack of one project lives while it is needed: the same path on every run,
    so that the Provider's ssh options do not change between runs, and never inside the project."""
    project = hashlib.sha256(str(project_dir.resolve()).encode()).hexdigest()[:12]
    return private_runtime_dir() / f"{project}-{stack}" / "deploy_key"


def ssh_path_value(path: Path) -> str:
    """A path as an ssh `-o Key=value`: ssh expands %-tokens and splits unquoted values on spaces."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


@dataclass(frozen=True)
class SshAccess:
    """How the operator's machine reaches one host over ssh, with the host key pinned."""

    host: str
    port: int
    user: str
    known_hosts: Path
    identity: Optional[Path] = None      # None: the keys of the ssh-agent
    connect_timeout: int = 10

    @property
    def options(self) -> list[str]:
        """ssh options for every operator-side connection (the Provider's `ssh_opts` included)."""
        # -F /dev/null: no ~/.ssh/config (ForwardAgent, ProxyCommand, KnownHostsCommand, IdentityFile...) and no
        # /etc/ssh/ssh_config; ssh takes the last -F, so these options come after anything a caller puts first.
        options = ["-F", "/dev/null",
                   "-o", "StrictHostKeyChecking=yes",
                   "-o", f"UserKnownHostsFile={ssh_path_value(self.known_hosts)}",
                   "-o", "GlobalKnownHostsFile=/dev/null",    # no second source of accepted keys
                   "-o", "UpdateHostKeys=no",                 # never rewrite the pinned file
                   "-o", "BatchMode=yes",                     # never prompt: fail with a message
                   "-o", f"ConnectTimeout={self.connect_timeout}",
                   "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.identity is not None:
            options += ["-o", "IdentitiesOnly=yes", "-i", str(self.identity)]
        return options

    @property
    def docker_host(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def environment(self, **extra: str) -> dict[str, str]:
        """Parameters of the rendered operator-side scripts (templates/host/*.sh.j2), as environment variables.

        The options travel newline-separated so that the script can rebuild the exact argument list.
        """
        env = {"WEBSTACK_HOST": self.host, "WEBSTACK_PORT": str(self.port), "WEBSTACK_USER": self.user,
               "WEBSTACK_KNOWN_HOSTS": str(self.known_hosts),
               "WEBSTACK_IDENTITY": str(self.identity) if self.identity else "",
               "WEBSTACK_CONNECT_TIMEOUT": str(self.connect_timeout),
               "WEBSTACK_SSH_OPTS": "\n".join(self.options)}
        env.update(extra)
        return env
