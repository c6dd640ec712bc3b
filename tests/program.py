"""Runs the real program (__main__.py) under Pulumi's mocks and records every registration.

Unit tests assert on what the program declares: inputs as the engine would receive them (camelCase keys),
resource options (protect, retainOnDelete, dependencies) and which inputs were secret.
"""

from __future__ import annotations

import runpy
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import SETTINGS, set_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import self_signed
from tests.stack_config import PROJECT_DIR, load_stack_config


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    inputs: dict
    secret_inputs: dict
    parent: str
    provider: str
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    custom: bool
    delete_before_replace: bool | None = None   # None: the provider decides (docker containers: delete first)
    ignore_changes: list[str] = field(default_factory=list)


@dataclass
class ProgramRun:
    resources: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, token: str) -> list[Registration]:
        return [r for r in self.resources if r.type == token]

    def named(self, name: str) -> Registration:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]

    def containers(self) -> dict[str, Registration]:
        """Containers by their role label."""
        result = {}
        for reg in self.of_type("docker:index/container:Container"):
            labels = {item["label"]: item["value"] for item in reg.inputs.get("labels", [])}
            result.setdefault(labels["webstack.role"], []).append(reg)
        return result

    def children_of(self, parent: Registration) -> list[Registration]:
        return [r for r in self.resources if r.parent == parent.urn]


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            plain, _ = rpc.deserialize_properties_unwrap_secrets(request.object)
            with self._lock:
                self.registrations.append(Registration(
                    urn=response.urn, type=request.type, name=request.name, inputs=plain,
                    secret_inputs=rpc.deserialize_properties(request.object), parent=request.parent,
                    provider=request.provider, protect=request.protect, retain_on_delete=request.retainOnDelete,
                    dependencies=list(request.dependencies), custom=request.custom,
                    delete_before_replace=(request.deleteBeforeReplace if request.deleteBeforeReplaceDefined
                                           else None),
                    ignore_changes=list(request.ignoreChanges)))
        return response


AUTONAME_SUFFIX = "a1b2c3d"
# What the base image's ID is under the mocks: the last line the base-image refresh prints (components/base_image.py),
# and what each release image's guard prints (the base the release is built on).
BASE_IMAGE_ID = "sha256:" + "ba5e" * 16
PRINTS_THE_BASE_IMAGE_ID = ("base-image-refresh", "-guard")
COMMANDS = ("command:local:Command", "command:remote:Command")


class ProgramMocks(pulumi.runtime.Mocks):
    """Returns what the real providers would add to the state: names, image ids, generated certificates, and the
    base image's ID on the stdout of the commands that print it (`base_ids`: another ID per name suffix)."""

    def __init__(self, base_ids: Mapping[str, str] | None = None):
        self.base_ids = {suffix: BASE_IMAGE_ID for suffix in PRINTS_THE_BASE_IMAGE_ID} | dict(base_ids or {})

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = "sha256:" + "0" * 64
        elif args.typ == "pulumi-python:dynamic:Resource" and "domain" in state:
            state["certPem"], state["keyPem"] = self_signed.generate(state["domain"])
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = "r" * int(args.inputs["length"])   # numbers arrive as floats
        elif args.typ in ("docker:index/volume:Volume", "docker:index/network:Network"):
            state.setdefault("name", args.name)
        elif args.typ == "docker:index/container:Container":
            state.setdefault("name", f"{args.name}-{AUTONAME_SUFFIX}")   # the engine's autonaming: a random suffix
        elif args.typ in COMMANDS and args.name.endswith(PRINTS_THE_BASE_IMAGE_ID):
            base_id = next(i for suffix, i in self.base_ids.items() if args.name.endswith(suffix))
            state["stdout"] = f"ok: the base image\n{base_id}\n"    # as the real scripts: progress, then the ID
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def run_program(stack: str, overrides: Mapping[str, Any] | None = None,
                secret_overrides: Mapping[str, Any] | None = None, project: str = "webstack",
                base_ids: Mapping[str, str] | None = None) -> ProgramRun:
    """Run __main__.py for `stack` of `project` (what pulumi.get_project() answers); exceptions from the program
    (ConfigError included) propagate. base_ids: see ProgramMocks."""
    config, secret_keys = load_stack_config(stack, overrides, secret_overrides)
    mocks = ProgramMocks(base_ids)
    monitor = RecordingMonitor(mocks)
    set_root_resource(None)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")))
    return ProgramRun(resources=list(monitor.registrations), outputs=resolve_exports())


def resolve_exports() -> dict[str, Any]:
    root = pulumi.runtime.settings.get_root_resource()
    exports = getattr(root, "outputs", {}) or {}
    return {key: _sync_await(pulumi.Output.from_input(value).future()) for key, value in exports.items()}
