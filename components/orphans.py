"""Containers left behind by an interrupted update: removed by the next update, as part of the engine's own run.

When `pulumi up` dies (SIGKILL, a cancelled CI job, a dropped session) while the docker provider creates a
container, Docker may have the container while the state does not: the state only records a pending create.
The next `pulumi up` creates that resource again, under the same name, and Docker would refuse it ("the
container name is already in use") on every later update. So every container with a fixed name gets a
`before_create` hook: if a container of that name exists, it is one that no resource in the state owns (this
resource is being created, and no two resources share a name), so it is stopped gracefully and removed, and the
create goes on. The hook runs on `up` only (never in a preview), and leaves alone a container that carries
another stack's label (or none): that one is not webstack's to remove, and the create fails as Docker says.

Containers the engine names (the edge: components/edge.py) never collide; one that an interruption left is
retired by the next edge switch.
"""

from __future__ import annotations

import json
from typing import Callable, Optional

import pulumi

from .docker_cli import DockerCli, DockerCliError
from .settings import Settings

CONTAINER = "docker:index/container:Container"
GRACE_SECONDS = 30   # as the provider's destroy_grace_seconds (hardening.hardened): in-flight work finishes


class OrphanError(Exception):
    pass


def remove_orphan(cli: DockerCli, stack: str, name: str, log: Callable[[str], None]) -> bool:
    """Remove the container `name` if it exists and belongs to `stack`; True when one was removed."""
    try:
        found = json.loads(cli.docker("container", "inspect", name))
    except DockerCliError as exc:
        if "no such" in str(exc).lower():
            return False
        raise OrphanError(f"could not check for a container named {name} before creating it: {exc}") from None
    owner = (found[0]["Config"]["Labels"] or {}).get("webstack.stack")
    if owner != stack:
        raise OrphanError(
            f"a container named {name} already exists and is not stack {stack}'s (its webstack.stack label is "
            f"{owner or 'missing'}): webstack does not remove it. Rename or remove it (docker rm -f {name}), or "
            "give this stack another webstack:prefix, then run the update again.")
    log(f"removing container {name}: an interrupted update left it (the state has no record of it); "
        "it is created again now")
    cli.docker("stop", "-t", str(GRACE_SECONDS), name, timeout=GRACE_SECONDS + 30)
    cli.docker("rm", name)
    return True


def guard(settings: Settings) -> pulumi.ResourceHookBinding:
    """The before_create binding for the stack's named containers."""
    cli = DockerCli(settings)

    def before_create(args: pulumi.ResourceHookArgs) -> None:
        name = (args.new_inputs or {}).get("name")
        if name:
            remove_orphan(cli, settings.stack, name, lambda message: pulumi.log.warn(message))

    return pulumi.ResourceHookBinding(before_create=[pulumi.ResourceHook("webstack-remove-orphan", before_create)])


def attach(settings: Settings) -> None:
    """Bind the guard to every container declared from here on. Not under the unit tests' mocks: they have no
    callback server for hooks (tests/unit/test_orphans.py runs remove_orphan itself)."""
    if _mocked():
        return
    binding = guard(settings)

    def add_guard(args: pulumi.ResourceTransformationArgs) -> Optional[pulumi.ResourceTransformationResult]:
        if args.type_ != CONTAINER:
            return None
        return pulumi.ResourceTransformationResult(
            args.props, pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(hooks=binding)))

    pulumi.runtime.register_stack_transformation(add_guard)


def _mocked() -> bool:
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import SETTINGS
    return isinstance(SETTINGS.monitor, MockMonitor)
