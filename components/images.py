"""Builds the four images of containers/ on the target's own Docker engine: no registry is needed.

The backend and web images are tagged with the release, so every release's image stays on the engine and a
rollback needs no rebuild (`keep_locally`: deleting the resource leaves the image). The database and edge images
are long-lived: they are tagged with a digest of what goes into them, so a new release does not replace them.
Each is a `docker.RemoteImage` with a `build`: the provider's Terraform resource, built by the engine's classic
builder (`use_legacy_builder`: no buildx, no registry, FROM a local base image). The digest of the context is
a trigger, so changed files rebuild the image even under the same tag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pulumi
import pulumi_docker as docker

from . import rendering
from .settings import Build, Settings


def context_digest(context: Path, extra: dict[str, str] | None = None) -> str:
    """Digest of every file in a build context (names and contents) and of the build arguments."""
    sha = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        sha.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted((extra or {}).items()):
        sha.update(f"{key}={value}\0".encode())
    return sha.hexdigest()[:12]


class Images(pulumi.ComponentResource):
    """One docker.RemoteImage per service, built from containers/ (or the user's own contexts) FROM `baseImage`."""

    database: docker.RemoteImage
    backend: docker.RemoteImage
    web: docker.RemoteImage
    edge: docker.RemoteImage

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Images", name, None, opts)
        self._settings = settings
        containers = settings.projectDir / "containers"
        db_args = rendering.database_build_args(settings.database)
        self.database = self._image("db", containers / "db", "Dockerfile", db_args,
                                    tag=context_digest(containers / "db", db_args))
        self.edge = self._image("edge", containers / "edge", "Dockerfile", {},
                                tag=context_digest(containers / "edge"))
        self.backend = self._build("backend", settings.backend)
        self.web = self._build("web", settings.frontend)
        self.register_outputs({role: image.name for role, image in self.by_role().items()})

    def by_role(self) -> dict[str, docker.RemoteImage]:
        return {"db": self.database, "edge": self.edge, "backend": self.backend, "web": self.web}

    def _build(self, role: str, build: Build) -> docker.RemoteImage:
        context = self._settings.context_path(build)
        return self._image(role, context, build.dockerfile, {}, tag=self._settings.release)

    def _image(self, role: str, context: Path, dockerfile: str, args: dict[str, str], tag: str) -> docker.RemoteImage:
        build_args = {"BASE_IMAGE": self._settings.baseImage, **args}
        return docker.RemoteImage(
            f"{self._name}-{role}",
            name=f"{self._settings.name_prefix}-{role}:{tag}",
            build=docker.RemoteImageBuildArgs(
                context=str(context), dockerfile=dockerfile, build_args=build_args,
                # The classic builder needs neither buildx nor a registry for FROM a local base image.
                use_legacy_builder=True),
            triggers={"context": context_digest(context, build_args)},
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self))
