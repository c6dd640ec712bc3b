"""Fresh Linux hosts for live tests: containers that look like a new Debian 12 server reached over SSH.

Each host is a container made from the offline base image with sshd as its main process, a `deploy` user with
passwordless sudo and a per-session authorized key, a generated host key (so the test knows the exact line to
pin), NO Docker, its own address on a user-defined network, and port 22. It runs with the nested-engine flags of
ENVIRONMENT.md (`--privileged` fails on these machines) and a fresh volume at /var/lib/docker, so that the
bootstrap can install docker.io and run an engine inside it. The operator side talks to it at its container IP.

Everything is named `wst-host-<run>-...` and removed at teardown (the sshd image is kept: it only depends on the
offline base image and Debian's packages, and rebuilding it costs every session ~10 s).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import pytest

from components.local_files import SshAccess
from components.remote_host import ssh_access
from components.settings import Settings, Target

BASE_IMAGE = "debian:bookworm-slim"
PREFIX = "wst-host-"

DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      openssh-server sudo iproute2 procps >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*
RUN useradd -m -s /bin/bash deploy && usermod -p '*' deploy \\
 && echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy && chmod 0440 /etc/sudoers.d/deploy \\
 && printf 'HostKey /etc/ssh/ssh_host_ed25519_key\\nLogLevel VERBOSE\\n' > /etc/ssh/sshd_config.d/test-host.conf
COPY host-init /usr/local/sbin/host-init
ENTRYPOINT ["/usr/local/sbin/host-init"]
"""

# Installs this session's keys (from /seed, mounted read-only), then becomes sshd. Debian's sshd defaults are
# kept (passwords and root with a key allowed), as on a fresh server: the bootstrap must warn about them.
HOST_INIT = """#!/bin/sh
set -eu
install -m 600 /seed/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
install -m 644 /seed/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 700 -o deploy -g deploy /home/deploy/.ssh
install -m 600 -o deploy -g deploy /seed/authorized_keys /home/deploy/.ssh/authorized_keys
if [ -f /seed/os-release ]; then rm -f /etc/os-release; cp /seed/os-release /etc/os-release; fi
if [ -f /seed/no-sudo ]; then rm -f /etc/sudoers.d/deploy; fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e
"""

# ENVIRONMENT.md: what lets an engine run inside a container on these machines.
NESTED_ENGINE_FLAGS = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
                       "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                       "--security-opt", "systempaths=unconfined", "--cgroupns", "host",
                       "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--device-cgroup-rule", "a *:* rwm"]

ALPINE_OS_RELEASE = ('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n'
                     'HOME_URL="https://alpinelinux.org/"\n')


def docker(*args: str, check: bool = True, timeout: float = 120, input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)[:300]} failed ({result.returncode}): "
                             f"{result.stderr.decode(errors='replace')[-2000:]}")
    return result


def image() -> str:
    """The sshd host image, built once (tagged with a digest of its definition) from the offline base image."""
    tag = f"{PREFIX}sshd:" + hashlib.sha256((DOCKERFILE + HOST_INIT).encode()).hexdigest()[:12]
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text, mode in (("Dockerfile", DOCKERFILE, 0o644), ("host-init", HOST_INIT, 0o755)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    result = subprocess.run(["docker", "build", "-q", "-t", tag, "-"], input=buffer.getvalue(), capture_output=True,
                            timeout=600, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if result.returncode != 0:
        raise AssertionError(f"building the test host image failed: {result.stderr.decode()[-2000:]}")
    return tag


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at path (private) and path.pub; returns the public line without its comment."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def fingerprint(key_file: Path) -> str:
    """ssh-keygen's SHA256 fingerprint of a key file (public or private)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(key_file)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


@dataclass(frozen=True)
class Keys:
    """This session's keys: the deploy key (authorized on every host), a key no host authorizes, and two host
    keys: the one hosts present, and one that no host has (a wrong pin)."""

    directory: Path
    deploy: Path
    stranger: Path
    host_private: Path
    host_public: str
    wrong_host_public: str

    @classmethod
    def generate(cls, directory: Path) -> "Keys":
        directory.mkdir(parents=True, exist_ok=True)
        keygen(directory / "deploy", "webstack-test-deploy")
        keygen(directory / "stranger", "webstack-test-stranger")
        host_public = keygen(directory / "ssh_host_ed25519_key", "webstack-test-host")
        wrong = keygen(directory / "wrong_host_key", "webstack-test-wrong-host")
        return cls(directory, directory / "deploy", directory / "stranger", directory / "ssh_host_ed25519_key",
                   host_public, wrong)


@dataclass
class TestHost:
    """One running host. `exec` (docker exec as root) is for the test's own inspection only."""

    __test__ = False   # not a test class, whatever pytest thinks of the name

    name: str
    ip: str
    keys: Keys
    port: int = 22
    user: str = "deploy"

    def exec(self, *command: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", self.name, *command], capture_output=True, text=True,
                              timeout=timeout, check=check)

    def sshd_log(self) -> str:
        result = docker("logs", self.name, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")

    def has_docker(self) -> bool:
        return self.exec("sh", "-c", "command -v docker || command -v dockerd").returncode == 0

    def settings(self, project_dir: Path, *, stack: str = "test", host_key: Optional[str] = None,
                 private_key: Optional[Path] = None, port: Optional[int] = None, host: Optional[str] = None,
                 connect_timeout: int = 5, base_image_source: str = "host") -> Settings:
        """Settings as a stack would hold them for this host (defaults: the right key and the deploy key)."""
        key_file = private_key or self.keys.deploy
        target = Target(kind="ssh", host=host or self.ip, port=port or self.port, user=self.user,
                        hostKey=host_key or self.keys.host_public, privateKey=key_file.read_text(),
                        connectTimeout=connect_timeout, baseImageSource=base_image_source)
        return Settings(stack=stack, project="webstack", projectDir=project_dir, release="test", target=target)

    def access(self, project_dir: Path, **settings: object) -> tuple[Settings, SshAccess]:
        """The program's own operator-side files and options for this host (components.remote_host.ssh_access)."""
        stack_settings = self.settings(project_dir, **settings)
        return stack_settings, ssh_access(stack_settings)


@dataclass
class Hosts:
    """Creates hosts on one user-defined network; `cleanup` removes everything it created."""

    keys: Keys
    seed_root: Path
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    containers: list[str] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)     # container -> its /var/lib/docker volume
    network: Optional[str] = None

    def name(self, suffix: str) -> str:
        return f"{PREFIX}{self.run}-{suffix}"

    def _network(self) -> str:
        if self.network is None:
            self.network = self.name("net")
            docker("network", "create", "--label", "wst-host=1", self.network)
        return self.network

    def create(self, suffix: str, *, os_release: Optional[str] = None, sudo: bool = True,
               engine: bool = True) -> TestHost:
        """A fresh host; `engine`: with the nested-engine flags and a fresh /var/lib/docker volume."""
        name = self.name(suffix)
        seed = self.seed_root / name
        seed.mkdir(parents=True)
        (seed / "ssh_host_ed25519_key").write_bytes(self.keys.host_private.read_bytes())
        (seed / "ssh_host_ed25519_key.pub").write_text(self.keys.host_public + "\n")
        (seed / "authorized_keys").write_text(self.keys.deploy.with_suffix(".pub").read_text())
        if os_release:
            (seed / "os-release").write_text(os_release)
        if not sudo:
            (seed / "no-sudo").write_text("")
        args = ["run", "-d", "--name", name, "--hostname", suffix, "--network", self._network(), "--init",
                "--label", "wst-host=1", "-v", f"{seed}:/seed:ro"]
        if engine:
            volume = self.name(f"{suffix}-docker")
            docker("volume", "create", "--label", "wst-host=1", volume)
            self.volumes[name] = volume
            args += NESTED_ENGINE_FLAGS + ["-v", f"{volume}:/var/lib/docker"]
        self.containers.append(name)
        docker(*args, image())
        ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    name).stdout.decode().strip()
        host = TestHost(name=name, ip=ip, keys=self.keys)
        wait_for_sshd(host)
        return host

    def remove(self, host: TestHost) -> None:
        docker("rm", "-f", "-v", host.name, check=False, timeout=180)
        self.containers.remove(host.name)
        volume = self.volumes.pop(host.name, None)
        if volume:
            docker("volume", "rm", "-f", volume, check=False)

    def cleanup(self) -> None:
        for name in reversed(self.containers):
            docker("rm", "-f", "-v", name, check=False, timeout=180)
        for volume in self.volumes.values():
            docker("volume", "rm", "-f", volume, check=False)
        if self.network:
            docker("network", "rm", self.network, check=False)
        self.containers, self.volumes, self.network = [], {}, None


def wait_for_sshd(host: TestHost, seconds: float = 30) -> None:
    """Until the host's sshd sends its banner (then ssh-keyscan and ssh work at once)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host.ip, host.port), timeout=2) as connection:
                if connection.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"sshd on {host.name} ({host.ip}) did not answer within {seconds} s:\n"
                                 f"{host.sshd_log()[-2000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def hosts(docker_engine, tmp_path_factory) -> Iterator[Hosts]:
    """Creates a module's test hosts; removes every one of them (and their network) at the end, pass or fail.

    Needs the docker_engine fixture (tests/live/conftest.py: skip with the reason, or fail when CI is set), the
    OpenSSH client tools and the offline base image, under the same rule.
    """
    missing = [tool for tool in ("ssh", "ssh-keygen", "ssh-keyscan") if shutil.which(tool) is None]
    if missing or docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        reason = (f"the OpenSSH client tools {missing} are missing" if missing else
                  f"the offline base image {BASE_IMAGE} is missing: run containers/base/build-base-image.sh")
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(reason)
        pytest.skip(reason)
    made = Hosts(Keys.generate(tmp_path_factory.mktemp("keys")), tmp_path_factory.mktemp("seed"))
    try:
        yield made
    finally:
        made.cleanup()
