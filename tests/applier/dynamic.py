"""pulumi-python:dynamic:Resource: the program's own ResourceProvider, deserialised and called for real.

The provider travels in the `__provider` input, serialised by pulumi/dynamic/dynamic.py serialize_provider
(dill, base64). It is loaded the way the SDK's dynamic provider host does (pulumi/dynamic/__main__.py
get_provider: `_deserialize(dill.loads(b64decode(...)))`, then `configure` with the stack config); that module
cannot be imported because it starts a gRPC server at import. Check, diff, create, update, read and delete are
then called as the host calls them, including passing `__provider` through in the props.
"""

from __future__ import annotations

import base64
from typing import Optional

import dill
from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
from pulumi.runtime._serialization import _deserialize

from . import schema
from .docker_cli import Endpoint
from .handler import Ctx, Handler

PROVIDER_KEY = "__provider"


class DynamicHandler(Handler):
    fields = schema.FREE

    def __init__(self, config: dict, project: str):
        self.config, self.project = config, project
        self._cache: dict[str, ResourceProvider] = {}

    def provider(self, props: dict) -> ResourceProvider:
        blob = props[PROVIDER_KEY]
        if blob not in self._cache:
            provider = _deserialize(lambda: dill.loads(base64.b64decode(blob)))
            provider.configure(ConfigureRequest(config=Config(raw_config=self.config, project_name=self.project)))
            self._cache[blob] = provider
        return self._cache[blob]

    def check(self, ctx: Ctx) -> dict:
        olds = ctx.old["inputs"] if ctx.old else {}
        result = self.provider(ctx.inputs).check(olds, ctx.inputs)
        if result.failures:
            raise ValueError("; ".join(f"{f.property}: {f.reason}" for f in result.failures))
        return {**result.inputs, PROVIDER_KEY: ctx.inputs[PROVIDER_KEY]}

    def diff(self, ctx: Ctx, changed: set[str]) -> tuple[str, Optional[bool]]:
        result = self.provider(ctx.inputs).diff(ctx.old["id"], ctx.old["outputs"], ctx.inputs)
        if result.changes is None:   # DIFF_UNKNOWN: the engine compares old and new inputs itself
            return super().diff(ctx, changed)
        if not result.changes:
            return "same", None
        return ("replace" if result.replaces else "update"), result.delete_before_replace

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        result = self.provider(ctx.inputs).create(ctx.inputs)
        return result.id, {**(result.outs or {}), PROVIDER_KEY: ctx.inputs[PROVIDER_KEY]}

    def update(self, ctx: Ctx) -> dict:
        result = self.provider(ctx.inputs).update(ctx.old["id"], ctx.old["outputs"], ctx.inputs)
        return {**(result.outs or {}), PROVIDER_KEY: ctx.inputs[PROVIDER_KEY]}

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        self.provider(entry["outputs"]).delete(entry["id"], entry["outputs"])

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        provider = self.provider(entry["outputs"])
        if type(provider).read is ResourceProvider.read:
            return True   # no read implemented: the engine's refresh keeps the state as it is
        return bool(provider.read(entry["id"], entry["outputs"]).id)
