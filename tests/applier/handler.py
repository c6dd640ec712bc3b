"""What every resource type's handler provides, and the context a step runs in.

The engine (engine.py) decides create/update/replace/delete the way Pulumi's step generator does; a handler
only knows how its provider carries each step out and which input changes it can apply in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .docker_cli import Endpoint


@dataclass
class Ctx:
    """One step of one resource: its identity, declared inputs and where it lands."""

    urn: str
    name: str
    type: str
    inputs: dict
    endpoint: Endpoint
    project_dir: Path
    config: dict = field(default_factory=dict)
    old: Optional[dict] = None      # the state entry being updated or replaced, if any
    physical_name: Optional[str] = None   # the declared name, or the autoname the engine chose


class PartialCreate(Exception):
    """The object exists but its create did not finish (e.g. a container that never turned healthy).

    Pulumi keeps such a resource in the state with `initErrors` (the provider had already set its ID); the
    engine records it the same way and retries the initialisation on the next run.
    """

    def __init__(self, id_: str, outputs: dict, message: str):
        super().__init__(message)
        self.id, self.outputs, self.message = id_, outputs, message


class Handler:
    """Defaults: every change replaces (ForceNew), create-before-delete, deletes are no-ops, objects exist."""

    fields: dict = {}
    in_place: frozenset = frozenset()
    autoname = False

    def check(self, ctx: Ctx) -> dict:
        """The provider's Check: the inputs to diff and create with (default: as declared)."""
        return ctx.inputs

    def diff(self, ctx: Ctx, changed: set[str]) -> tuple[str, Optional[bool]]:
        """("same" | "update" | "replace", delete-before-replace or None for the type's default)."""
        if not changed:
            return "same", None
        return ("update" if changed <= self.in_place else "replace"), None

    def delete_before_replace(self, inputs: dict) -> bool:
        return False

    def fingerprint(self, ctx: Ctx) -> dict:
        """Extra values compared like inputs (e.g. a digest of an image's build context)."""
        return {}

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        raise NotImplementedError

    def update(self, ctx: Ctx) -> dict:
        raise NotImplementedError(f"{ctx.type} has no in-place update")

    def resume(self, ctx: Ctx) -> dict:
        """Finish a create that ended in PartialCreate on an earlier run; default: create was complete."""
        return ctx.old["outputs"]

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        return None

    def exists(self, entry: dict, endpoint: Endpoint) -> bool:
        return True

    def clear_leftovers(self, entry: dict, endpoint: Endpoint) -> None:
        """After refresh found drift: remove what remains of the object before it is created again."""


def merged(inputs: dict, **computed: Any) -> dict:
    """Outputs as Pulumi stores them: the inputs plus what the provider computed."""
    out = dict(inputs)
    out.update(computed)
    return out
