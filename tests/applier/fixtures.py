"""pytest fixtures for live tests that deploy through the applier (import them into a test module).

Live tests need a Docker engine: without one they skip with the reason, except in CI (env CI set), where a
missing engine is a failure, because CI must run every live test. Everything a test creates carries a
per-test prefix `wst-apl-<hex>` and is removed at teardown, passed or failed.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

BASE_IMAGE = "debian:bookworm-slim"


def _docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


def require_docker() -> None:
    """Skip (fail in CI) unless a Docker engine answers and has the offline base image."""
    info = _docker("info")
    problem = None
    if info.returncode != 0:
        problem = f"no Docker engine answers `docker info`: {info.stderr.strip()[:300]}"
    elif _docker("image", "inspect", BASE_IMAGE).returncode != 0:
        problem = f"base image {BASE_IMAGE} is missing: run containers/base/build-base-image.sh"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"live test cannot run in CI: {problem}")
        print(f"SKIPPED live test: {problem}")
        pytest.skip(problem)


def remove_by_prefix(prefix: str) -> None:
    """Remove containers, then networks, then volumes whose names start with prefix."""
    for kind, listing in (("container", ["ps", "-a"]), ("network", ["network", "ls"]), ("volume", ["volume", "ls"])):
        names = [n for n in _docker(*listing, "--format", "{{.Names}}" if kind == "container" else "{{.Name}}")
                 .stdout.split() if n.startswith(prefix)]
        if names:
            _docker(*({"container": ["rm", "-f", "-v"], "network": ["network", "rm"],
                       "volume": ["volume", "rm", "-f"]}[kind]), *names)


@pytest.fixture
def docker_engine() -> None:
    require_docker()


@pytest.fixture
def apl_prefix(docker_engine) -> Iterator[str]:
    """A fresh name prefix; whatever carries it is removed after the test."""
    prefix = f"wst-apl-{secrets.token_hex(3)}"
    yield prefix
    remove_by_prefix(prefix)


def write_program(directory: Path, project: str, main: str) -> Path:
    """A Pulumi project (Pulumi.yaml + __main__.py) in directory, for deploying through the applier."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(f"name: {project}\nruntime: python\n")
    (directory / "__main__.py").write_text(main)
    return directory


@pytest.fixture
def local_sshd(tmp_path: Path) -> Iterator[dict]:
    """A throwaway sshd on 127.0.0.1 (root login by key only) with its own host key; stopped afterwards.

    Yields host, port, hostKey (the public key line to pin), privateKey (contents) and keyPath.
    """
    if not Path("/usr/sbin/sshd").exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("/usr/sbin/sshd is not installed (openssh-server)")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "AcceptEnv WST_APL_*\nSubsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)   # sshd's privilege-separation directory
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host_key = " ".join((d / "host.pub").read_text().split()[:2])
    for _ in range(50):
        if subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True).stdout:
            break
        time.sleep(0.1)
    try:
        yield {"host": "127.0.0.1", "port": port, "hostKey": host_key,
               "privateKey": (d / "client").read_text(), "keyPath": str(d / "client")}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def show_figures(request, title: str, figures: dict[str, str]) -> None:
    """Print measured figures even when pytest captures output: they are the point of these runs."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for key, value in figures.items():
            print(f"[webstack {title} figures] {key}: {value}")


def container_names(outputs: dict) -> list[str]:
    """Every container the program's `containers` output names."""
    c = outputs["containers"]
    return [c["database"], c["edge"], c["web"], *c["backend"]]
