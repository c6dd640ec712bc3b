"""Decides and carries out each registered resource's step, the way Pulumi's step generator would.

same (no step; with refresh, a vanished or stopped object is "drift" and is created again), update (the
provider's in-place update), replace (delete-first when the provider or the resource option says so, else
create first and delete the old one at the end), create. After the first failure no further step starts, as
the engine stops issuing steps; deletes of undeclared resources happen in finish (teardown.py) only after a
fully successful run.
"""

from __future__ import annotations

import secrets
import threading
import traceback
from pathlib import Path
from typing import Optional

from .commands import CommandFailed
from .docker_cli import DockerError, Endpoint, endpoint_for
from .errors import ResourceError, Unsupported
from .handler import Ctx, Handler, PartialCreate
from .handlers import handlers_for_run
from .registration import Registration
from .schema import check_fields
from .state import State, canonical, property_dependents

_EXPECTED = (CommandFailed, DockerError, Unsupported, ValueError, PartialCreate)   # no traceback needed


class Engine:
    """One run (up or destroy) against one State."""

    def __init__(self, state: State, project_dir: Path, project: str, config: dict, refresh: bool):
        self.state, self.project_dir, self.config, self.refresh = state, project_dir, config, refresh
        self.handlers: dict[str, Handler] = handlers_for_run(config, project)
        self.ops: list[tuple[str, str]] = []
        self.failures: list[str] = []
        self.seen: set[str] = set()
        self.replaced: set[str] = set()
        self.providers: dict[str, dict] = {}
        self._endpoints: dict[tuple, Endpoint] = {}
        self.lock = threading.Lock()

    def record(self, op: str, urn: str) -> None:
        with self.lock:
            self.ops.append((op, urn))

    def endpoint(self, host: Optional[dict]) -> Endpoint:
        ep = endpoint_for(host)
        with self.lock:
            return self._endpoints.setdefault((ep.host, ep.ssh_opts), ep)

    def endpoint_of(self, entry: dict) -> Endpoint:
        return self.endpoint({"host": entry.get("host"), "sshOpts": entry.get("sshOpts")} if entry.get("host") else None)

    def register(self, reg: Registration) -> tuple[str, dict]:
        with self.lock:
            if self.failures:
                raise ResourceError(reg.urn, "not carried out: an earlier resource failed, so the run stops")
            self.seen.add(reg.urn)
        try:
            return self._register(reg)
        except Exception as exc:  # noqa: BLE001 - every failure becomes this resource's error, as in Pulumi
            reason = str(exc) if isinstance(exc, _EXPECTED) else f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
            with self.lock:
                self.failures.append(f"{reg.urn}: {reason}")
            raise ResourceError(reg.urn, reason) from None

    def _entry(self, reg: Registration, provider_inputs: Optional[dict]) -> dict:
        return {"urn": reg.urn, "type": reg.type, "name": reg.name, "custom": reg.custom, "id": "", "outputs": {},
                "inputs": canonical(reg.inputs), "parent": reg.parent, "provider": reg.provider.rsplit("::", 1)[0],
                "dependencies": reg.dependencies, "propertyDependencies": reg.property_dependencies,
                "protect": reg.protect, "retainOnDelete": reg.retain_on_delete, "projectDir": str(self.project_dir),
                "host": (provider_inputs or {}).get("host"), "sshOpts": (provider_inputs or {}).get("sshOpts")}

    def _register(self, reg: Registration) -> tuple[str, dict]:
        if reg.unhonoured_options:
            raise Unsupported(f"resource options {reg.unhonoured_options} are not honoured by the test applier "
                              "(tests/applier/registration.py)")
        old = self.state.adopt(reg.urn, reg.aliases)
        if not reg.custom:   # a component: nothing to carry out, but it is part of the state
            entry = {**self._entry(reg, None), "id": old["id"] if old else reg.urn}
            self.state.put(entry)
            self.record("same" if old else "create", reg.urn)
            return entry["id"], {}
        handler = self.handlers.get(reg.type)
        if handler is None:
            raise Unsupported(f"resource type {reg.type} is not carried out by the test applier (tests/applier/handlers.py)")
        check_fields(reg.type, reg.inputs, handler.fields)
        provider_inputs = reg.inputs if reg.type.startswith("pulumi:providers:") else \
            self.providers.get(reg.provider.rsplit("::", 1)[0]) if reg.provider else None
        entry = self._entry(reg, provider_inputs)
        ctx = Ctx(reg.urn, reg.name, reg.type, dict(reg.inputs), self.endpoint(provider_inputs), self.project_dir,
                  self.config, old)
        if old is not None:
            for key in reg.ignore_changes:   # ignored properties keep their old values
                if key in old["inputs"]:
                    ctx.inputs[key] = old["inputs"][key]
        ctx.inputs = handler.check(ctx)
        entry["inputs"], entry["fingerprint"] = canonical(ctx.inputs), canonical(handler.fingerprint(ctx))
        if reg.type.startswith("pulumi:providers:"):
            with self.lock:
                self.providers[reg.urn] = entry["inputs"]
        if old is None:
            return self._create(handler, ctx, entry, "replace" if reg.urn in self.replaced else "create")
        changed = {k for k in set(old["inputs"]) | set(entry["inputs"]) if old["inputs"].get(k) != entry["inputs"].get(k)}
        changed |= {k for k in set(old.get("fingerprint") or {}) | set(entry["fingerprint"])
                    if (old.get("fingerprint") or {}).get(k) != entry["fingerprint"].get(k)}
        op, dbr = handler.diff(ctx, changed)
        if reg.type.startswith("docker:") and (old.get("host"), old.get("sshOpts")) != (entry["host"], entry["sshOpts"]):
            op = "replace"   # a provider whose host changed replaces everything it manages
        if op == "update" and changed & {k.split(".")[0].split("[")[0] for k in reg.replace_on_changes}:
            op = "replace"
        if op == "same":
            return self._same(handler, ctx, entry, old)
        if op == "update":
            entry.update(id=old["id"], outputs=handler.update(ctx))
            self.state.put(entry)
            self.record("update", reg.urn)
            return entry["id"], entry["outputs"]
        return self._replace(handler, ctx, entry, old, reg, dbr)

    def _same(self, handler: Handler, ctx: Ctx, entry: dict, old: dict) -> tuple[str, dict]:
        if old.get("initErrors"):   # "continue awaiting initialization", as the engine does
            entry.update(id=old["id"], outputs=old["outputs"], initErrors=old["initErrors"])
            try:
                entry["outputs"] = handler.resume(ctx)
            except PartialCreate as exc:
                entry.update(outputs=exc.outputs, initErrors=[exc.message])
                self.state.put(entry)
                raise
            except Exception:
                if not handler.exists(old, self.endpoint_of(old)):
                    self.state.drop(old)   # the provider removed it: the next run creates it
                raise
            entry.pop("initErrors")
            self.state.put(entry)
            self.record("update", ctx.urn)
            return entry["id"], entry["outputs"]
        if self.refresh and not handler.exists(old, self.endpoint_of(old)):
            handler.clear_leftovers(old, self.endpoint_of(old))
            return self._create(handler, ctx, entry, "drift", keep_name=old["outputs"].get("name"))
        entry.update(id=old["id"], outputs=old["outputs"])
        self.state.put(entry)
        self.record("same", ctx.urn)
        return entry["id"], entry["outputs"]

    def _replace(self, handler: Handler, ctx: Ctx, entry: dict, old: dict, reg: Registration,
                 dbr: Optional[bool]) -> tuple[str, dict]:
        if old.get("protect"):
            raise ValueError(f"unable to replace resource {reg.urn} as it is currently marked for protection. "
                             "To unprotect the resource, remove the `protect` flag from the resource in your "
                             "Pulumi program and run `pulumi up`")
        if dbr is None:
            dbr = reg.delete_before_replace if reg.delete_before_replace is not None else \
                handler.delete_before_replace(ctx.inputs)
        if dbr:
            self._delete_dependents(reg.urn)
            self.delete(old)
            return self._create(handler, ctx, entry, "replace", keep_name=old["outputs"].get("name"))
        return self._create(handler, ctx, entry, "replace", pending=old)

    def _create(self, handler: Handler, ctx: Ctx, entry: dict, op: str, keep_name: Optional[str] = None,
                pending: Optional[dict] = None) -> tuple[str, dict]:
        if handler.autoname:
            ctx.physical_name = ctx.inputs.get("name") or keep_name or f"{ctx.name}-{secrets.token_hex(4)[:7]}"
        try:
            entry["id"], entry["outputs"] = handler.create(ctx)
        except PartialCreate as exc:
            entry.update(id=exc.id, outputs=exc.outputs, initErrors=[exc.message])
            raise
        finally:
            if entry["id"]:
                with self.state.lock:
                    if pending is not None:
                        self.state.pending_deletes.append(pending)
                    self.state.put(entry)
        self.record(op, ctx.urn)
        return entry["id"], entry["outputs"]

    def _delete_dependents(self, urn: str) -> None:
        for e in property_dependents(self.state, urn, self.seen):
            if e.get("protect"):
                raise ValueError(f"unable to replace {e['urn']} (it depends on {urn}, which is replaced "
                                 "delete-first) as it is currently marked for protection")
            self.delete(e)
            self.replaced.add(e["urn"])

    def delete(self, entry: dict) -> None:
        """The provider's delete (skipped for retainOnDelete), then the entry leaves the state."""
        if entry["custom"] and not entry.get("retainOnDelete"):
            self.handlers[entry["type"]].delete(entry, self.endpoint_of(entry))
        self.state.drop(entry)
