"""Shared fixtures of the live tests: a Docker engine, the four webstack images, and named test resources.

Everything a test creates is named `wst-img-<run>-<name>` (<run> is random per session, so two sessions on one
engine do not collide) and removed at teardown, whether the tests passed or not.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.rendering import database_build_args
from components.settings import Database

PROJECT_DIR = Path(__file__).resolve().parents[2]
IMAGES = ("db", "backend", "web", "edge")
BASE_IMAGE = "debian:bookworm-slim"
# The legacy builder prints "---> Using cache" per step, which test_images reads; this engine has no BuildKit.
BUILD_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live: needs a real Docker engine; skipped with a reason outside CI")


def docker(*args: str, check: bool = True, input: str | None = None, timeout: float = 120,
           env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the docker CLI; on failure the error names the command and shows its output."""
    result = subprocess.run(["docker", *args], input=input, capture_output=True, text=True, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)[:300]} failed ({result.returncode}):\n"
                             f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result


def image_tag(name: str) -> str:
    return f"webstack-test-{name}:test"


def build_args(name: str) -> list[str]:
    if name != "db":
        return []
    return [arg for key, value in database_build_args(Database()).items() for arg in ("--build-arg", f"{key}={value}")]


def build_image(name: str, tag: str, context: Path) -> tuple[str, float]:
    """docker build; returns (output, seconds)."""
    started = time.monotonic()
    result = docker("build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", *build_args(name), "-t", tag, str(context),
                    timeout=900, env=BUILD_ENV)
    return result.stdout + result.stderr, time.monotonic() - started


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine that answers; in CI its absence fails the run instead of skipping it."""
    try:
        answer = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
        reason = answer.stderr.strip().splitlines()[-1:] if answer.returncode else None
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = [str(exc)]
    if reason is not None:
        message = f"no Docker engine answers: start dockerd ({' '.join(reason)})"
        if os.environ.get("CI"):
            pytest.fail(message)
        print(message)
        pytest.skip(message)


@dataclass
class BuiltImages:
    tags: dict[str, str]
    outputs: dict[str, str]
    seconds: dict[str, float]


@pytest.fixture(scope="session")
def webstack_images(docker_engine) -> BuiltImages:
    """The four images, built once per session from containers/ (tags webstack-test-<name>:test)."""
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"the offline base image {BASE_IMAGE} is missing: run containers/base/build-base-image.sh")
    built = BuiltImages({}, {}, {})
    for name in IMAGES:
        tag = image_tag(name)
        built.outputs[name], built.seconds[name] = build_image(name, tag, PROJECT_DIR / "containers" / name)
        built.tags[name] = tag
    return built


@dataclass
class Resources:
    """Names and tracks the containers, volumes, networks and extra image tags a test run creates."""

    run: str = field(default_factory=lambda: secrets.token_hex(3))
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def name(self, suffix: str) -> str:
        return f"wst-img-{self.run}-{suffix}"

    def container(self, suffix: str) -> str:
        name = self.name(suffix)
        self.containers.append(name)
        return name

    def volume(self, suffix: str) -> str:
        name = self.name(suffix)
        self.volumes.append(name)
        docker("volume", "create", name)
        return name

    def network(self, suffix: str) -> str:
        name = self.name(suffix)
        self.networks.append(name)
        docker("network", "create", name)
        return name

    def cleanup(self) -> None:
        # Containers first (they hold volumes and networks); -v also drops their anonymous volumes.
        for name in reversed(self.containers):
            docker("rm", "-f", "-v", name, check=False)
        for name in self.volumes:
            docker("volume", "rm", "-f", name, check=False)
        for name in self.networks:
            docker("network", "rm", name, check=False)
        for tag in self.images:
            docker("image", "rm", tag, check=False)


@pytest.fixture(scope="session")
def wst_resources(docker_engine):
    resources = Resources()
    try:
        yield resources
    finally:
        resources.cleanup()
