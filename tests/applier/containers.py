"""docker:index/container:Container, carried out as terraform-provider-docker does it.

Mirrors kreuzwerker/terraform-provider-docker internal/provider/resource_docker_container_funcs.go
(resourceDockerContainerCreate / resourceDockerContainerRead / resourceDockerContainerUpdate /
resourceDockerContainerDelete):
- create: ContainerCreate, disconnect `bridge` and connect each networks_advanced entry, CopyToContainer the
  uploads at "/", ContainerStart; with `wait`, inspect every second until Health.Status is healthy, and after
  wait_timeout (default 60 s) fail with "container failed to be in healthy state". The ID is already set by
  then, so the unhealthy container is NOT removed: Pulumi keeps it in the state with init errors.
- read after create: a container that is not running although must_run is set is deleted and the create fails.
- update in place: restart, max_retry_count, cpu_shares, memory, cpu_set, memory_swap (ContainerUpdate).
- delete: ContainerStop with timeout destroy_grace_seconds (0 when unset), then ContainerRemove with
  Force=true and RemoveVolumes=remove_volumes (default true: anonymous volumes only).
"""

from __future__ import annotations

import time

from . import schema
from .container_args import _int, create_args, upload_tar
from .docker_cli import DockerError, Endpoint
from .handler import Ctx, Handler, PartialCreate, merged

_UPDATABLE = ("restart", "maxRetryCount", "cpuShares", "memory", "cpuSet", "memorySwap")


class ContainerHandler(Handler):
    fields = schema.CONTAINER
    autoname = True
    # ForceNew is false for these in the provider's schema; the rest replace the container.
    in_place = frozenset(_UPDATABLE + ("mustRun", "wait", "waitTimeout", "destroyGraceSeconds", "removeVolumes"))

    def delete_before_replace(self, inputs: dict) -> bool:
        return True   # pulumi-docker's resources.go: docker_container DeleteBeforeReplace: true

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        ep, i, name = ctx.endpoint, ctx.inputs, ctx.physical_name
        if ep.inspect("image", i["image"]) is None:
            raise DockerError(f"Unable to create container with image {i['image']}: no such image on {ep.host} "
                              "(and no registry to pull from)")
        cid = ep.out(create_args(i, name))
        outputs = merged(i, name=name)
        try:   # from here on the provider has set the ID: a failure leaves the container, with init errors
            self._connect_upload_start(ep, cid, i, ctx)
        except DockerError as exc:
            raise PartialCreate(cid, outputs, str(exc)) from None
        if i.get("start", True):
            if i.get("wait"):
                self._wait_healthy(ep, cid, i, outputs)
            self._must_be_running(ep, cid, i)
        return cid, self._read(ep, cid, outputs)

    def _connect_upload_start(self, ep: Endpoint, cid: str, i: dict, ctx: Ctx) -> None:
        if i.get("networksAdvanced"):
            proc = ep.run(["network", "disconnect", "bridge", cid], check=False)
            if proc.returncode != 0 and b"is not connected" not in proc.stderr:
                raise DockerError(f"Unable to disconnect the default network: {proc.stderr.decode().strip()}")
            for net in i["networksAdvanced"]:
                args = ["network", "connect"] + [a for al in net.get("aliases") or [] for a in ("--alias", al)]
                args += ["--ip", net["ipv4Address"]] if net.get("ipv4Address") else []
                args += ["--ip6", net["ipv6Address"]] if net.get("ipv6Address") else []
                ep.run(args + [net["name"], cid])
        if i.get("uploads"):
            try:
                ep.run(["cp", "-", f"{cid}:/"], input=upload_tar(i["uploads"], ctx.project_dir))
            except DockerError as exc:
                hint = (" -- the container has readOnly=true, and Docker refuses to copy into a read-only root "
                        "filesystem (the real provider's CopyToContainer fails the same way)") if i.get("readOnly") else ""
                raise DockerError(f"Unable to upload volume content: {exc}{hint}") from None
        if i.get("start", True):
            try:
                ep.run(["start", cid])
            except DockerError as exc:
                raise DockerError(f"Unable to start container: {exc}") from None

    def _wait_healthy(self, ep: Endpoint, cid: str, i: dict, outputs: dict) -> None:
        deadline = time.monotonic() + _int(i.get("waitTimeout", 60))
        state: dict = {}
        while time.monotonic() < deadline:
            state = (ep.inspect("container", cid) or {}).get("State", {})
            if (state.get("Health") or {}).get("Status") == "healthy":
                return
            time.sleep(1)
        health = state.get("Health")
        detail = ("the container has no health check (wait needs one)" if not health else
                  f"last health status {health.get('Status')!r}, last probe output: "
                  f"{((health.get('Log') or [{}])[-1].get('Output') or '').strip()[:300]!r}")
        raise PartialCreate(cid, self._read(ep, cid, outputs),
                            f"container failed to be in healthy state ({outputs['name']}: {detail}; the container "
                            "is left in place, as the provider does)")

    def _must_be_running(self, ep: Endpoint, cid: str, i: dict) -> None:
        state = (ep.inspect("container", cid) or {}).get("State", {})
        if not state.get("Running") and i.get("mustRun", True):
            self._remove(ep, cid, i)
            raise DockerError(f"container exited immediately (exit code {state.get('ExitCode')}; "
                              f"error {state.get('Error')!r}); it was deleted, as the provider does")

    def _read(self, ep: Endpoint, cid: str, outputs: dict) -> dict:
        info = ep.inspect("container", cid) or {}
        nets = ((info.get("NetworkSettings") or {}).get("Networks") or {})
        outputs["networkDatas"] = [{"networkName": n, "ipAddress": d.get("IPAddress"),
                                    "ipPrefixLength": d.get("IPPrefixLen"), "gateway": d.get("Gateway"),
                                    "macAddress": d.get("MacAddress")} for n, d in sorted(nets.items())]
        if info and not info["State"].get("Running"):
            outputs["exitCode"] = info["State"].get("ExitCode")
        return outputs

    def update(self, ctx: Ctx) -> dict:
        old, new = ctx.old["inputs"], ctx.inputs
        if any(old.get(k) != new.get(k) for k in _UPDATABLE):
            args = ["update", "--restart", new.get("restart") or "no"]
            if new.get("restart") == "on-failure" and new.get("maxRetryCount"):
                args[-1] += f":{_int(new['maxRetryCount'])}"
            if new.get("memory"):
                args += ["--memory", f"{_int(new['memory'])}m"]
            if new.get("memorySwap"):
                args += ["--memory-swap", f"{_int(new['memorySwap'])}m" if _int(new["memorySwap"]) > 0 else "-1"]
            if new.get("cpuShares") is not None:
                args += ["--cpu-shares", str(_int(new["cpuShares"]))]
            if new.get("cpuSet"):
                args += ["--cpuset-cpus", new["cpuSet"]]
            ctx.endpoint.run(args + [ctx.old["id"]])
        return merged(new, name=ctx.old["outputs"]["name"], networkDatas=ctx.old["outputs"].get("networkDatas"))

    def resume(self, ctx: Ctx) -> dict:
        outputs = merged(ctx.inputs, name=ctx.old["outputs"]["name"])
        if not self.exists(ctx.old, ctx.endpoint):   # the provider's Read deletes it and fails the step
            self._remove(ctx.endpoint, ctx.old["id"], ctx.inputs)
            raise DockerError("container failed to be in running state (left from an earlier failed create; "
                              "it was deleted, the next run creates it anew)")
        if ctx.inputs.get("wait"):
            self._wait_healthy(ctx.endpoint, ctx.old["id"], ctx.inputs, outputs)
        return self._read(ctx.endpoint, ctx.old["id"], outputs)

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        self._remove(endpoint, entry["id"], entry["inputs"])

    def _remove(self, ep: Endpoint, cid: str, i: dict) -> None:
        grace = _int(i.get("destroyGraceSeconds") or 0)
        proc = ep.run(["stop", "-t", str(grace), cid], check=False, timeout=grace + 120)
        if proc.returncode != 0 and b"No such container" not in proc.stderr:
            raise DockerError(f"Error stopping container {cid}: {proc.stderr.decode().strip()}")
        args = ["rm", "-f"] + (["-v"] if i.get("removeVolumes", True) else [])
        proc = ep.run(args + [cid], check=False)
        if proc.returncode != 0 and b"No such container" not in proc.stderr and b"already in progress" not in proc.stderr:
            raise DockerError(f"Error deleting container {cid}: {proc.stderr.decode().strip()}")

    def clear_leftovers(self, entry: dict, endpoint: Endpoint) -> None:
        self._remove(endpoint, entry["id"], entry["inputs"])   # a stopped container still holds its name

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        info = endpoint.inspect("container", entry["id"])
        if info is None:
            return False
        # pulumi-docker 5: "A stopped container shows a diff through must_run and is restarted".
        return bool(info["State"].get("Running")) or not entry["inputs"].get("mustRun", True)
