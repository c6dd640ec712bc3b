"""Runs the docker CLI against one engine: the local one, or a provider's `host` (ssh:// included).

pulumi-docker reaches an ssh:// host through docker/cli's connhelper, which runs `ssh [sshOpts] ... docker
system dial-stdio`. The docker CLI does the same but has no way to pass extra ssh options, so the endpoint puts
a tiny `ssh` wrapper holding the provider's `sshOpts` first on PATH: the same ssh command line, same pinning.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

LOCAL_HOST = "unix:///var/run/docker.sock"


class DockerError(Exception):
    """A docker CLI call failed; the message carries the command and docker's own error text."""


@dataclass(frozen=True)
class Endpoint:
    """One Docker engine as a provider describes it (host + sshOpts)."""

    host: str = LOCAL_HOST
    ssh_opts: tuple[str, ...] = ()
    _wrapper_dir: list = field(default_factory=list, compare=False, hash=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, hash=False, repr=False)

    def env(self) -> dict[str, str]:
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_BUILDKIT="0")
        env.pop("DOCKER_CONTEXT", None)
        if self.ssh_opts:
            env["PATH"] = f"{self._ssh_wrapper()}:{env.get('PATH', '')}"
        return env

    def _ssh_wrapper(self) -> str:
        with self._lock:
            if not self._wrapper_dir:
                directory = tempfile.mkdtemp(prefix="wst-apl-ssh-")
                script = Path(directory) / "ssh"
                script.write_text("#!/bin/sh\nexec /usr/bin/ssh " + shlex.join(self.ssh_opts) + ' "$@"\n')
                script.chmod(0o700)
                self._wrapper_dir.append(directory)
            return self._wrapper_dir[0]

    def run(self, args: Sequence[str], *, input: Optional[bytes] = None, check: bool = True,
            timeout: float = 1200) -> subprocess.CompletedProcess:
        """Run `docker ARGS`; with check, a non-zero exit raises DockerError with docker's stderr."""
        proc = subprocess.run(["docker", *args], input=input, capture_output=True, env=self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip() or proc.stdout.decode(errors="replace").strip()
            raise DockerError(f"`docker {_short(args)}` failed: {err}")
        return proc

    def out(self, args: Sequence[str], **kwargs: Any) -> str:
        return self.run(args, **kwargs).stdout.decode().strip()

    def inspect(self, kind: str, ident: str) -> Optional[dict]:
        """`docker <kind> inspect` as a dict, or None when the object does not exist."""
        proc = self.run([kind, "inspect", ident], check=False)
        if proc.returncode != 0:
            if b"No such" in proc.stderr or b"not found" in proc.stderr:
                return None
            raise DockerError(f"`docker {kind} inspect {ident}` failed: {proc.stderr.decode().strip()}")
        data = json.loads(proc.stdout)
        return data[0] if data else None


def _short(args: Sequence[str]) -> str:
    text = shlex.join(args)
    return text if len(text) < 300 else text[:300] + "..."


def endpoint_for(provider_inputs: Optional[dict]) -> Endpoint:
    """The engine a resource lands on: its explicit provider's host, else the default provider (local engine)."""
    if not provider_inputs:
        return Endpoint(host=os.environ.get("DOCKER_HOST", LOCAL_HOST))
    ssh_opts = provider_inputs.get("sshOpts") or ()
    if isinstance(ssh_opts, str):   # provider inputs that are not strings reach the engine JSON-encoded
        ssh_opts = json.loads(ssh_opts)
    return Endpoint(host=provider_inputs.get("host") or os.environ.get("DOCKER_HOST", LOCAL_HOST),
                    ssh_opts=tuple(ssh_opts))
