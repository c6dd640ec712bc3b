"""The bridge between Pulumi's mock runtime and the engine.

MockResourceArgs carries no resource options (and keeps secrets wrapped), so ApplyingMonitor (a MockMonitor) reads them from the
RegisterResourceRequest itself (protect, retainOnDelete, deleteBeforeReplace, dependencies, ...) and hands the
engine one Registration per resource. Options the engine does not honour fail the run instead of being dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.settings import get_project, get_stack

from .errors import Unsupported

if TYPE_CHECKING:
    from .engine import Engine


@dataclass
class Registration:
    """One RegisterResource request, reduced to what the engine needs."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict
    provider: str = ""                 # provider reference "urn::id", empty for the default provider
    parent: str = ""
    dependencies: list = field(default_factory=list)
    property_dependencies: dict = field(default_factory=dict)
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: Optional[bool] = None
    ignore_changes: list = field(default_factory=list)
    replace_on_changes: list = field(default_factory=list)
    unhonoured_options: list = field(default_factory=list)
    aliases: list = field(default_factory=list)   # earlier URNs of this resource (renames, type changes)


def _unhonoured_options(request) -> list[str]:
    timeouts = request.customTimeouts
    found = {"importId": request.importId,
             "customTimeouts": timeouts.create or timeouts.update or timeouts.delete,
             "deletedWith": request.deletedWith, "replaceWith": list(request.replace_with),
             "transforms": list(request.transforms),
             "hooks": any(getattr(request.hooks, f.name) for f in request.hooks.DESCRIPTOR.fields),
             "replacementTrigger": request.HasField("replacement_trigger")
             and request.replacement_trigger.WhichOneof("kind") not in (None, "null_value")}
    return [name for name, value in found.items() if value]


class ApplyingMonitor(MockMonitor):
    """A MockMonitor whose registrations are carried out for real by an Engine."""

    def __init__(self, engine: "Engine"):
        super().__init__(ApplyingMocks(self))
        self.engine = engine
        self._current = threading.local()   # each registration runs on its own executor thread

    def RegisterResource(self, request):
        self._current.request = request
        try:
            return super().RegisterResource(request)
        finally:
            self._current.request = None

    def registration(self, args: pulumi.runtime.MockResourceArgs) -> Registration:
        r = self._current.request
        return Registration(
            urn=self.make_urn(r.parent, r.type, r.name), type=args.typ, name=args.name, custom=bool(args.custom),
            inputs=rpc.deserialize_properties_unwrap_secrets(r.object)[0], provider=args.provider or "", parent=r.parent,
            dependencies=sorted(r.dependencies),
            property_dependencies={k: sorted(v.urns) for k, v in r.propertyDependencies.items()},
            protect=bool(r.protect), retain_on_delete=bool(r.retainOnDelete),
            delete_before_replace=r.deleteBeforeReplace if r.deleteBeforeReplaceDefined else None,
            ignore_changes=list(r.ignoreChanges), replace_on_changes=list(r.replaceOnChanges),
            unhonoured_options=_unhonoured_options(r), aliases=self.alias_urns(r))

    def alias_urns(self, r) -> list[str]:
        """URNs the resource may have had before: aliasURNs, and each alias spec's fields over the current ones
        (pulumi_docker's Image, for one, aliases its old type token docker:image:Image)."""
        urns = list(r.aliasURNs)
        for alias in r.aliases:
            if alias.HasField("spec"):
                spec = alias.spec
                parent = "" if spec.noParent else (spec.parentUrn or r.parent)
                type_and_name = self.make_urn(parent, spec.type or r.type, spec.name or r.name).split("::", 3)[2:]
                urns.append("::".join([f"urn:pulumi:{spec.stack or get_stack()}", spec.project or get_project(),
                                       *type_and_name]))
            elif alias.urn:
                urns.append(alias.urn)
        return urns

    def ReadResource(self, request):
        raise Unsupported(f"reading an existing resource ({request.type} {request.name}, a `get`) is not "
                          "supported by the test applier")


class ApplyingMocks(pulumi.runtime.Mocks):
    """Mocks whose new_resource creates, updates or keeps the real object and returns its real outputs."""

    def __init__(self, monitor: ApplyingMonitor):
        self.monitor = monitor

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        return self.monitor.engine.register(self.monitor.registration(args))

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise Unsupported(f"invoke {args.token} is not supported by the test applier")
