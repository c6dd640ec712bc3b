"""The end of a run: deletes of what is no longer declared (after success only), and destroy.

Both refuse protected resources the way Pulumi does, before deleting anything, and skip the provider's delete
for retainOnDelete resources (the object outlives the stack; only the state forgets it).
"""

from __future__ import annotations

from .engine import Engine
from .errors import ApplyFailed
from .state import delete_order, depends_on


def _protect_message(urns: list[str]) -> str:
    return "; ".join(f"resource {u} cannot be deleted because it is protected. To unprotect the resource, either "
                     "remove the `protect` flag from the resource in your Pulumi program and run `pulumi up` or "
                     "use the command: `pulumi state unprotect`" for u in urns)


def _delete_all(engine: Engine, entries: list[dict]) -> None:
    for entry in delete_order(entries):
        try:
            engine.delete(entry)
        except Exception as exc:  # noqa: BLE001 - reported as the run's failure, state keeps the rest
            raise ApplyFailed(f"{entry['urn']}: deleting failed: {exc}", engine.ops) from exc
        engine.record("delete", entry["urn"])


def finish(engine: Engine) -> None:
    """Delete replaced (create-before-delete) resources and everything this run did not declare."""
    if engine.failures:
        raise ApplyFailed("\n".join(engine.failures), engine.ops)
    state = engine.state
    undeclared = [e for urn, e in state.resources.items() if urn not in engine.seen]
    protected = [e["urn"] for e in undeclared if e.get("protect")]
    if protected:
        raise ApplyFailed(_protect_message(protected), engine.ops)
    _delete_all(engine, list(state.pending_deletes) + undeclared)


def destroy(engine: Engine, exclude_protected: bool = False) -> None:
    """Delete every resource in reverse dependency order (`pulumi destroy [--exclude-protected]`)."""
    state = engine.state
    entries = list(state.pending_deletes) + list(state.resources.values())
    protected = [e["urn"] for e in entries if e.get("protect")]
    if protected and not exclude_protected:
        raise ApplyFailed(_protect_message(protected), engine.ops)
    keep, frontier = set(), list(protected)
    while frontier:   # a kept resource keeps what it depends on (its provider, parents, dependencies)
        urn = frontier.pop()
        if urn not in keep:
            keep.add(urn)
            frontier.extend(depends_on(state.resources.get(urn, {})))
    _delete_all(engine, [e for e in entries if e["urn"] not in keep])
