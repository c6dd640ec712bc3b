"""Builds the images of containers/ on the target's own Docker engine: no registry is needed.

The backend and web images are tagged with the release, so every release's image stays on the engine and a
rollback needs no rebuild (`keep_locally`: deleting the resource leaves the image). The database, edge, backup and
ACME images are long-lived: they are tagged with a digest of what goes into them, so a new release does not
replace them. Each is a `docker.RemoteImage` with a `build`: the provider's Terraform resource, built by the
engine's classic builder (`use_legacy_builder`: no buildx, no registry, FROM a local base image).

Two triggers rebuild an image under the same tag: the digest of its context (changed files), and the ID of the
base image it is built on (label webstack.base). A long-lived image takes the ID of the weekly base-image refresh
(components/base_image.py), so a new base rebuilds it on the same `up` and its container, which runs the image's
ID, is replaced. A release's images take the ID their guard recorded when the release was first built: a release
is built once, and the next release is built on the new base (a warning says when the running release's images
are on another base than the long-lived ones).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_docker as docker

from . import rendering
from .base_image import BaseImage, base_image_id
from .remote_host import Command, RemoteHost
from .settings import Build, Frontend, Settings


def context_digest(context: Path, extra: dict[str, str] | None = None) -> str:
    """Digest of every file in a build context (names and contents) and of the build arguments."""
    sha = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        sha.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted((extra or {}).items()):
        sha.update(f"{key}={value}\0".encode())
    return sha.hexdigest()[:12]


RELEASE_ROLES = ("backend", "web")
LONG_LIVED_ROLES = ("db", "edge", "backup", "acme")


def release_roles(frontend: Frontend) -> tuple[str, ...]:
    """The images a release builds: a backend-only app (`frontend.enabled: false`) has no web image."""
    return RELEASE_ROLES if frontend.enabled else ("backend",)


class Images(pulumi.ComponentResource):
    """One docker.RemoteImage per service, built from containers/ (or the user's own contexts) FROM `baseImage`.

    A release's backend and web images are built once: a guard on the target refuses to build other code under
    a release name that already has an image there, and a release that `python -m ops rollback` pinned runs its
    recorded image IDs without building anything. Every image carries labels (stack, role, release, context
    digest, base image ID) that the guard, the pruning after a release and the rollback command read.
    """

    database: docker.RemoteImage
    edge: docker.RemoteImage
    acme: docker.RemoteImage | None
    backup: docker.RemoteImage
    backup_ref: str
    database_ref: str
    builds: dict[str, docker.RemoteImage]
    refs: dict[str, pulumi.Input[str]]
    # What a release's containers wait for from here: a rollback's check that its pinned images are still there.
    before_containers: list[pulumi.Resource]

    def __init__(self, name: str, settings: Settings, host: RemoteHost, base: BaseImage,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Images", name, None, opts)
        self._settings, self._host, self._base = settings, host, base
        containers = settings.projectDir / "containers"
        db_args = rendering.database_build_args(settings.database)
        db_tag = context_digest(containers / "db", db_args)
        self.database = self._image("db", containers / "db", "Dockerfile", db_args, tag=db_tag, base=base.image_id)
        self.database_ref = f"{settings.name_prefix}-db:{db_tag}"   # known before the build, for scripts
        self.edge = self._image("edge", containers / "edge", "Dockerfile", {},
                                tag=context_digest(containers / "edge"), base=base.image_id)
        # The backup job's image (components/backups.py): long-lived like db and edge.
        backup_tag = context_digest(containers / "backup")
        self.backup = self._image("backup", containers / "backup", "Dockerfile", {}, tag=backup_tag,
                                  base=base.image_id)
        self.backup_ref = f"{settings.name_prefix}-backup:{backup_tag}"
        self.builds = {"db": self.database, "edge": self.edge, "backup": self.backup}
        self.refs = {"db": self.database.name, "edge": self.edge.name}
        self.acme = None
        if settings.tls.mode == "acme":   # the ACME client, long-lived like the edge
            self.acme = self._image("acme", containers / "acme", "Dockerfile", {},
                                    tag=context_digest(containers / "acme"), base=base.image_id)
            self.builds["acme"] = self.acme
            self.refs["acme"] = self.acme.name
        pinned = settings.pinned_images
        roles = release_roles(settings.frontend)
        self.before_containers = []
        if pinned is not None:
            # It depends on nothing, so it is also the first command the engine meets: the command provider
            # starts beside the docker provider instead of after it (a rollback is that much faster).
            ids = [getattr(pinned, role) for role in roles]
            self.before_containers.append(host.script(
                f"{name}-pinned", rendering.render("host/image-pinned.sh.j2", release=pinned.release, ids=ids),
                triggers=ids, opts=pulumi.ResourceOptions(parent=self, depends_on=list(host.ready))))
        release_bases = []
        for role in roles:
            build = settings.backend if role == "backend" else settings.frontend
            if pinned is not None:
                self.refs[role] = getattr(pinned, role)      # exactly the images this release ran before
            else:
                self.builds[role], built_on = self._release_image(role, build)
                self.refs[role] = self.builds[role].name
                release_bases.append(built_on)
        if release_bases:
            pulumi.Output.all(base.image_id, *release_bases).apply(self._warn_of_an_older_base)
        self.register_outputs({role: ref for role, ref in self.refs.items()})

    def _release_image(self, role: str, build: Build) -> tuple[docker.RemoteImage, pulumi.Output[str]]:
        """The release's image, and the ID of the base it is built on (what its guard recorded)."""
        context = self._settings.context_path(build)
        args = {"BASE_IMAGE": self._settings.baseImage}
        tag = f"{self._settings.name_prefix}-{role}:{self._settings.release}"
        digest = context_digest(context, args)
        guard = self._host.script(
            f"{self._name}-{role}-guard",
            rendering.render("host/image-guard.sh.j2", tag=tag, digest=digest, role=role,
                             release=self._settings.release, base_image=self._settings.baseImage),
            # Not the base's ID: the guard runs once per release, so the base it records stays the release's.
            triggers=[tag, digest],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self._host.ready, self._base.refresh]))
        built_on = guard.stdout.apply(base_image_id)
        return self._image(role, context, build.dockerfile, {}, tag=self._settings.release, depends_on=[guard],
                           release=self._settings.release, digest=digest, base=built_on), built_on

    def _warn_of_an_older_base(self, ids: list[str]) -> None:
        """Which of two bases is newer is not known here (a host that provides its own base may have refreshed it
        since the weekly run): the warning says that they differ and what brings the release onto the current one."""
        current, *built_on = ids
        others = sorted({base for base in built_on if base != current})
        if others:
            pulumi.log.warn(
                f"release {self._settings.release}'s images were built on base image {', '.join(others)}, the "
                f"long-lived images on {current} ({self._settings.baseImage}, refreshed at the first up of each "
                "week): a release is built once, so its backend and web images get the current base, and its "
                "security updates, with the next release (a new commit, or pulumi config set webstack:release NAME)",
                self)

    def _image(self, role: str, context: Path, dockerfile: str, args: dict[str, str], tag: str, *,
               base: pulumi.Input[str], depends_on: list[pulumi.Resource] | None = None,
               release: str | None = None, digest: str | None = None) -> docker.RemoteImage:
        """digest: the context's, when the caller has it already (hashing a large context is not free).
        base: the ID of the base image it is built on: a trigger and a label, so a new base rebuilds it."""
        build_args = {"BASE_IMAGE": self._settings.baseImage, **args}
        digest = digest or context_digest(context, build_args)
        labels = {"webstack.stack": self._settings.stack, "webstack.role": role, "webstack.context": digest,
                  "webstack.base": base}
        if release:
            labels["webstack.release"] = release
        return docker.RemoteImage(
            f"{self._name}-{role}",
            name=f"{self._settings.name_prefix}-{role}:{tag}",
            build=docker.RemoteImageBuildArgs(
                # `labels` reach the classic builder, `label` buildx: both, so the image has them either way.
                context=str(context), dockerfile=dockerfile, build_args=build_args, labels=labels, label=labels,
                # The classic builder needs neither buildx nor a registry for FROM a local base image.
                use_legacy_builder=True),
            triggers={"context": digest, "base": base},
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []))

    def prune_after(self, gate: pulumi.Resource, after: Sequence[pulumi.Resource] = ()) -> Command:
        """Once this release's containers are healthy, remove release images beyond `images.keep`, never one that
        a container uses. It runs beside the edge switch, off a release's critical path: the new containers hold
        their images and the previous release's containers still run (the edge may switch back to them).

        It also removes the stack's long-lived images that a rebuild on a new base left untagged, once no container
        uses them: `after` are the containers that run the long-lived images (replaced before it runs)."""
        settings = self._settings
        return self._host.script(
            f"{self._name}-prune",
            rendering.render("host/image-prune.sh.j2", stack=settings.stack, keep=settings.images.keep,
                             roles=RELEASE_ROLES, long_lived=LONG_LIVED_ROLES),
            triggers=[settings.release, settings.images.keep, *self.refs.values(), self._base.image_id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gate, *after]))
