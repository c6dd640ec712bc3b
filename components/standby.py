"""Warm standby (`standby: N`): the containers of the previous N generations keep running, not served, so that a
rollback to one of them is only an edge switch (nothing to create, nothing to wait for, nothing to delete).

Which generations those are is the stack's own state, not its config: the program reads this stack's last outputs
(a StackReference to itself) and exports the new list as `generations`: {live, standby: [...]}, each a record of a
generation's containers and images. The live record is exported only once the edge switched to it, so a release
that failed never becomes a standby. A standby generation is declared again exactly as it runs (every input
ignored, components/release_options.py); a rollback to it declares the same containers as live, which match
them (same names, image IDs and config), so the engine only switches the edge.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pulumi

from .backend import Backend
from .settings import Settings
from .web import Web

RECORD_KEYS = ("release", "backend", "backendNames", "backendImage")


def live_record(settings: Settings, backend: Backend, web: Optional[Web],
                images: Mapping[str, pulumi.Input[str]]) -> pulumi.Output[dict]:
    return pulumi.Output.from_input({
        "release": settings.release, "backend": backend.generation, "backendNames": backend.names,
        "backendImage": images["backend"], "web": web.generation if web else None,
        "webName": web.container_name if web else None, "webImage": images["web"] if web else None})


def is_record(value: Any) -> bool:
    return (isinstance(value, dict) and all(isinstance(value.get(k), (str, list)) for k in RECORD_KEYS)
            and all(isinstance(n, str) for n in value["backendNames"]))


def choose(previous: Any, live: Mapping[str, Any], count: int) -> list[dict]:
    """The generations to keep warm: the previous live one, then the previous standby ones, newest first, without
    the live generation (a rollback to a standby generation makes it live) and without repeats."""
    if count <= 0 or not isinstance(previous, dict):
        return []
    kept: list[dict] = []
    for record in [previous.get("live"), *(previous.get("standby") or [])]:
        if not is_record(record):
            continue
        same = lambda other: other["backend"] == record["backend"] and other.get("web") == record.get("web")
        if same(live) or any(same(k) for k in kept):
            continue
        kept.append(record)
    return kept[:count]


class Standby(pulumi.ComponentResource):
    """Declares the kept generations' containers (as children of the backend and web components, where they were
    created) and `record`, what the stack exports as `generations`."""

    record: pulumi.Output[dict]

    def __init__(self, name: str, settings: Settings, backend: Backend, web: Optional[Web],
                 images: Mapping[str, pulumi.Input[str]], switched: pulumi.Resource,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("webstack:components:Standby", name, None, opts)
        live = {"backend": backend.generation, "web": web.generation if web else None}
        if settings.standby > 0:
            this_stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
            previous = pulumi.StackReference(f"{name}-previous", stack_name=this_stack,
                                             opts=pulumi.ResourceOptions(parent=self)).get_output("generations")
            kept = previous.apply(lambda value: self._keep_warm(choose(value, live, settings.standby),
                                                                backend, web))
        else:
            kept = pulumi.Output.from_input([])
        # After the switch: a release that failed before it is never recorded, so it never becomes a standby.
        current = pulumi.Output.all(live_record(settings, backend, web, images), switched.urn).apply(lambda v: v[0])
        self.record = pulumi.Output.all(current, kept).apply(lambda v: {"live": v[0], "standby": v[1]})
        self.register_outputs({})

    @staticmethod
    def _keep_warm(records: Sequence[dict], backend: Backend, web: Optional[Web]) -> list[dict]:
        declared: set[str] = {backend.generation, *([web.generation] if web else [])}
        for record in records:
            if record["backend"] not in declared:
                backend.keep_warm(record["backend"], record["backendNames"], record["backendImage"],
                                  record["release"])
                declared.add(record["backend"])
            if web is not None and record.get("web") and record["web"] not in declared and record.get("webName"):
                web.keep_warm(record["web"], record["webName"], record["webImage"], record["release"])
                declared.add(record["web"])
        return list(records)
