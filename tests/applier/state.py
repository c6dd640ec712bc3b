"""The applier's state file: one JSON document per stack, keyed by URN, like a Pulumi checkpoint.

Written after every step, so a run that fails half way leaves exactly what it created (Pulumi's behaviour) and
the next run converges from there. `pendingDeletes` holds resources replaced create-before-delete, deleted
at the end of the next successful run, as the engine's pending-replacement deletes are.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

import pulumi


def _encode(value: Any) -> Any:
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return {"__asset": type(value).__name__, **{k: v for k, v in vars(value).items() if isinstance(v, str)}}
    raise TypeError(f"cannot store {type(value).__name__} in the applier's state")


def canonical(value: Any) -> Any:
    """The JSON form of inputs or outputs: what is stored and what diffs compare."""
    return json.loads(json.dumps(value, default=_encode, sort_keys=True))


class State:
    """Thread-safe access to <state_dir>/<stack>.json."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.RLock()
        data = json.loads(path.read_text()) if path.exists() else {}
        self.resources: dict[str, dict] = data.get("resources", {})
        self.pending_deletes: list[dict] = data.get("pendingDeletes", [])

    def save(self) -> None:
        with self.lock:
            text = json.dumps({"resources": self.resources, "pendingDeletes": self.pending_deletes},
                              default=_encode, indent=1, sort_keys=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)

    def put(self, entry: dict) -> None:
        with self.lock:
            self.resources[entry["urn"]] = canonical(entry)
            self.save()

    def adopt(self, urn: str, aliases: list[str]) -> Optional[dict]:
        """The entry of `urn`, moving it from an alias URN first, as the engine does for renamed resources."""
        with self.lock:
            for alias in aliases:
                if urn not in self.resources and alias in self.resources:
                    self.resources[urn] = {**self.resources.pop(alias), "urn": urn}
            return self.resources.get(urn)

    def drop(self, entry: dict) -> None:
        """Forget a deleted resource: a pending replacement delete, or the current entry of its URN."""
        with self.lock:
            before = len(self.pending_deletes)
            self.pending_deletes = [e for e in self.pending_deletes if e is not entry]
            if len(self.pending_deletes) == before and self.resources.get(entry["urn"], {}).get("id") == entry["id"]:
                self.resources.pop(entry["urn"])
            self.save()


def depends_on(entry: dict) -> set[str]:
    """Every URN the entry needs to exist: dependencies, property dependencies, parent and provider."""
    urns = set(entry.get("dependencies") or [])
    for deps in (entry.get("propertyDependencies") or {}).values():
        urns.update(deps)
    urns.update(u for u in (entry.get("parent"), entry.get("provider")) if u)
    return urns


def delete_order(entries: Iterable[dict]) -> list[dict]:
    """Entries ordered so that each is deleted before anything it depends on (reverse dependency order)."""
    entries = list(entries)
    by_urn: dict[str, list[dict]] = {}
    for e in entries:
        by_urn.setdefault(e["urn"], []).append(e)
    dependents = {id(e): 0 for e in entries}   # how many entries still to delete depend on e
    for e in entries:
        for urn in depends_on(e):
            for dep in by_urn.get(urn, []):
                dependents[id(dep)] += 1
    ordered, ready = [], [e for e in reversed(entries) if dependents[id(e)] == 0]
    while ready:
        e = ready.pop(0)
        ordered.append(e)
        for urn in depends_on(e):
            for dep in by_urn.get(urn, []):
                dependents[id(dep)] -= 1
                if dependents[id(dep)] == 0:
                    ready.append(dep)
    if len(ordered) != len(entries):
        raise RuntimeError("dependency cycle among resources to delete")
    return ordered


def property_dependents(state: State, urn: str, skip: set[str]) -> list[dict]:
    """What must go before `urn` is replaced delete-first, in delete order.

    Pulumi takes down dependents whose diff, with the replaced resource's outputs unknown, needs a
    replacement. For the types here nearly every input forces one, so every transitive property dependent
    that is not yet registered in this run (`skip`) is included.
    """
    with state.lock:
        victims: dict[str, dict] = {}
        frontier = [urn]
        while frontier:
            target = frontier.pop()
            for e in state.resources.values():
                deps = {u for us in (e.get("propertyDependencies") or {}).values() for u in us}
                if target in deps and e["urn"] not in skip and e["urn"] not in victims:
                    victims[e["urn"]] = e
                    frontier.append(e["urn"])
    return delete_order(victims.values())
