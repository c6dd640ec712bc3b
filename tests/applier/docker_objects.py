"""Volumes, networks, images and the docker provider resource itself, carried out with the docker CLI.

Replacement rules follow the Pulumi bridge: a Volume or Network whose `name` is declared is replaced
delete-first (nameRequiresDeleteBeforeReplace); an autonamed one is created anew first. Image delete is a no-op
in pulumi-docker (old releases' images stay for rollback); RemoteImage removes its image unless keepLocally.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

from . import schema
from .docker_cli import DockerError, Endpoint
from .errors import Unsupported
from .handler import Ctx, Handler, merged


def _retry_busy(ep: Endpoint, args: list[str], busy: bytes, seconds: float = 30) -> None:
    """Remove an object, retrying while Docker says it is still in use (its users are being removed)."""
    deadline = time.monotonic() + seconds
    while True:
        proc = ep.run(args, check=False)
        if proc.returncode == 0 or b"No such" in proc.stderr or b"not found" in proc.stderr:
            return
        if busy not in proc.stderr or time.monotonic() > deadline:
            raise DockerError(f"`docker {' '.join(args)}` failed: {proc.stderr.decode().strip()}")
        time.sleep(1)


def _labels(inputs: dict) -> list[str]:
    return [a for item in inputs.get("labels") or [] for a in ("--label", f"{item['label']}={item['value']}")]


class VolumeHandler(Handler):
    fields = schema.VOLUME
    autoname = True

    def delete_before_replace(self, inputs: dict) -> bool:
        return "name" in inputs

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        i = ctx.inputs
        args = ["volume", "create"] + (["--driver", i["driver"]] if i.get("driver") else []) + _labels(i)
        args += [a for k, v in (i.get("driverOpts") or {}).items() for a in ("--opt", f"{k}={v}")]
        name = ctx.endpoint.out(args + [ctx.physical_name])   # an existing volume of that name is reused
        info = ctx.endpoint.inspect("volume", name)
        return name, merged(i, name=name, driver=info["Driver"], mountpoint=info["Mountpoint"])

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        _retry_busy(endpoint, ["volume", "rm", "-f", entry["id"]], b"in use")

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        return endpoint.inspect("volume", entry["id"]) is not None


class NetworkHandler(Handler):
    fields = schema.NETWORK
    autoname = True

    def delete_before_replace(self, inputs: dict) -> bool:
        return "name" in inputs

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        i = ctx.inputs
        args = ["network", "create"] + (["--driver", i["driver"]] if i.get("driver") else []) + _labels(i)
        args += [flag for key, flag in (("internal", "--internal"), ("attachable", "--attachable"),
                                        ("ipv6", "--ipv6")) if i.get(key)]
        args += [a for k, v in (i.get("options") or {}).items() for a in ("-o", f"{k}={v}")]
        for cfg in i.get("ipamConfigs") or []:
            for key, flag in (("subnet", "--subnet"), ("gateway", "--gateway"), ("ipRange", "--ip-range")):
                args += [flag, cfg[key]] if cfg.get(key) else []
        nid = ctx.endpoint.out(args + [ctx.physical_name])
        info = ctx.endpoint.inspect("network", nid)
        return nid, merged(i, name=ctx.physical_name, driver=info["Driver"], scope=info["Scope"])

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        _retry_busy(endpoint, ["network", "rm", entry["id"]], b"active endpoints")

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        return endpoint.inspect("network", entry["id"]) is not None


def _dockerfile(project_dir: Path, build: dict) -> Path:
    context = project_dir / build.get("context", ".")
    path = project_dir / build["dockerfile"] if build.get("dockerfile") else context / "Dockerfile"
    if not path.is_file():
        raise DockerError(f"Dockerfile {path} does not exist (build.dockerfile is relative to the program's "
                          f"directory, default <context>/Dockerfile)")
    return path


class ImageHandler(Handler):
    fields = schema.IMAGE

    def fingerprint(self, ctx: Ctx) -> dict:
        """pulumi-docker rebuilds when the build context's contents change, not only its inputs."""
        build = ctx.inputs.get("build") or {}
        context = ctx.project_dir / build.get("context", ".")
        digest = hashlib.sha256(_dockerfile(ctx.project_dir, build).read_bytes())
        for root, dirs, files in sorted(os.walk(context)):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                digest.update(str(path.relative_to(context)).encode() + b"\0" + path.read_bytes())
        return {"contextDigest": digest.hexdigest()}

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        i, build = ctx.inputs, ctx.inputs.get("build") or {}
        if not i.get("skipPush"):
            raise Unsupported("docker:index/image:Image: pushing is not possible here (no registry): skipPush "
                              "must be true")
        if build.get("builderVersion") == "BuilderBuildKit":
            raise Unsupported("docker:index/image:Image: build.builderVersion BuilderBuildKit needs buildx, "
                              "which this machine lacks")
        args = ["build", "-t", i["imageName"], "-f", str(_dockerfile(ctx.project_dir, build))]
        args += ["--target", build["target"]] if build.get("target") else []
        args += ["--network", build["network"]] if build.get("network") else []
        args += [a for h in build.get("addHosts") or [] for a in ("--add-host", h)]
        args += [a for k, v in (build.get("args") or {}).items() for a in ("--build-arg", f"{k}={v}")]
        ctx.endpoint.run(args + [str(ctx.project_dir / build.get("context", "."))])
        image_id = ctx.endpoint.out(["image", "inspect", "-f", "{{.Id}}", i["imageName"]])
        return image_id, merged(i, imageName=i["imageName"], repoDigest=image_id, baseImageName=i["imageName"],
                                context=build.get("context", "."), dockerfile=build.get("dockerfile", ""))

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        return endpoint.inspect("image", entry["outputs"]["repoDigest"]) is not None


class RemoteImageHandler(Handler):
    fields = schema.REMOTE_IMAGE
    in_place = frozenset({"keepLocally", "forceRemove"})

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        info = ctx.endpoint.inspect("image", ctx.inputs["name"])
        if info is None:
            raise DockerError(f"image {ctx.inputs['name']} is not on {ctx.endpoint.host} and cannot be pulled "
                              "(no registry)")
        digest = (info.get("RepoDigests") or [""])[0]
        return info["Id"] + ctx.inputs["name"], merged(ctx.inputs, imageId=info["Id"], repoDigest=digest)

    def update(self, ctx: Ctx) -> dict:
        return merged(ctx.inputs, imageId=ctx.old["outputs"]["imageId"], repoDigest=ctx.old["outputs"]["repoDigest"])

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        if not entry["inputs"].get("keepLocally"):
            endpoint.run(["rmi"] + (["-f"] if entry["inputs"].get("forceRemove") else []) + [entry["inputs"]["name"]])

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        return endpoint.inspect("image", entry["outputs"]["imageId"]) is not None


class DockerProviderHandler(Handler):
    """pulumi:providers:docker: records host/sshOpts and, like the provider, pings the daemon when configured."""

    fields = schema.PROVIDER
    in_place = frozenset(schema.PROVIDER)

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        self._ping(ctx)
        return str(uuid.uuid4()), dict(ctx.inputs)

    def update(self, ctx: Ctx) -> dict:
        self._ping(ctx)
        return dict(ctx.inputs)

    def _ping(self, ctx: Ctx) -> None:
        # Provider inputs that are not strings arrive JSON-encoded: the flag is "true"/"false" here.
        if str(ctx.inputs.get("disableDockerDaemonCheck", "false")).lower() != "true":
            ctx.endpoint.run(["version", "--format", "{{.Server.Version}}"], timeout=60)
