"""Helpers shared by the live tests: a Docker engine or a clear skip (a failure in CI), cleanup by name
prefix, and the figures each scenario measures, printed even when pytest captures output."""

from __future__ import annotations

import contextlib
import os
import subprocess
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
    """Remove containers, then networks, then volumes whose names start with prefix, then images whose
    repository does (a release name is built once: a test stack starts without its earlier runs' images)."""
    for kind, listing in (("container", ["ps", "-a"]), ("network", ["network", "ls"]), ("volume", ["volume", "ls"])):
        names = [n for n in _docker(*listing, "--format", "{{.Names}}" if kind == "container" else "{{.Name}}")
                 .stdout.split() if n.startswith(prefix)]
        if names:
            _docker(*({"container": ["rm", "-f", "-v"], "network": ["network", "rm"],
                       "volume": ["volume", "rm", "-f"]}[kind]), *names)
    images = [n for n in _docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
              if n.startswith(prefix)]
    if images:
        _docker("image", "rm", "-f", *images)


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


@contextlib.contextmanager
def moto_s3(port: int) -> Iterator[str]:
    """A moto S3 server on 127.0.0.1:port for the length of the block; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
