"""Deployment: `pulumi up` / `pulumi destroy` of a real program on a real Docker engine, for tests.

    d = Deployment(project_dir=Path("/work/main"), stack="dev", state_dir=tmp_path,
                   config_overrides={"webstack:release": "r2"}, refresh=True)
    result = d.up()        # UpResult(outputs, operations, seconds); raises ApplyFailed
    d.destroy()

Config comes from tests/stack_config.py (Pulumi.yaml defaults, then Pulumi.<stack>.yaml, then overrides).
An override key with a path ("webstack:backend.healthPath") sets one field of an object value, like
`pulumi config set --path`.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from tests.stack_config import load_stack_config

from . import teardown
from .engine import Engine
from .errors import ApplyFailed
from .registration import ApplyingMonitor
from .runtime import run_program
from .state import State


@dataclass
class UpResult:
    outputs: dict[str, Any]
    operations: list[tuple[str, str]]
    seconds: float

    def ops(self, op: str) -> list[str]:
        """URNs that had operation `op` in this run."""
        return [urn for o, urn in self.operations if o == op]


def _split_paths(overrides: Mapping[str, Any]) -> tuple[dict, dict]:
    plain, paths = {}, {}
    for key, value in (overrides or {}).items():
        namespace, _, rest = key.partition(":")
        (paths if "." in rest else plain)[key] = value
    return plain, paths


def _set_path(config: dict[str, str], key: str, value: Any) -> str:
    namespace, _, rest = key.partition(":")
    base, *path = rest.split(".")
    full = f"{namespace}:{base}"
    obj = json.loads(config[full]) if full in config else {}
    node = obj
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    config[full] = json.dumps(obj)
    return full


class Deployment:
    """One stack of one program, with its own state file in state_dir."""

    def __init__(self, project_dir: Path, stack: str, state_dir: Path,
                 config_overrides: Optional[Mapping[str, Any]] = None,
                 secret_overrides: Optional[Mapping[str, Any]] = None, refresh: bool = False):
        self.project_dir, self.stack, self.refresh = Path(project_dir).resolve(), stack, refresh
        self.project = yaml.safe_load((self.project_dir / "Pulumi.yaml").read_text())["name"]
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        self.state_path = Path(state_dir) / f"{stack}.json"
        plain, paths = _split_paths(config_overrides or {})
        secret_plain, secret_paths = _split_paths(secret_overrides or {})
        self.config, secret_keys = load_stack_config(stack, plain, secret_plain, project_dir=self.project_dir)
        for key, value in paths.items():
            _set_path(self.config, key, value)
        self.secret_keys = sorted(set(secret_keys) | {_set_path(self.config, k, v) for k, v in secret_paths.items()})

    def state(self) -> State:
        return State(self.state_path)

    def up(self) -> UpResult:
        """Run the program and converge the engine to it; deletes of undeclared resources come last."""
        started = time.monotonic()
        engine = Engine(self.state(), self.project_dir, self.project, self.config, self.refresh)
        try:
            outputs = run_program(self.project_dir, self.project, self.stack, self.config, self.secret_keys,
                                  ApplyingMonitor(engine))
        except Exception as exc:  # noqa: BLE001 - a program error or a resource failure fails the run
            detail = "\n".join(engine.failures) or "".join(traceback.format_exception(exc)).strip()
            raise ApplyFailed(f"update failed:\n{detail}", engine.ops) from exc
        teardown.finish(engine)
        return UpResult(outputs, engine.ops, time.monotonic() - started)

    def destroy(self, exclude_protected: bool = False) -> list[tuple[str, str]]:
        """`pulumi destroy`: protected resources refuse, unless exclude_protected keeps them (and their needs)."""
        engine = Engine(self.state(), self.project_dir, self.project, self.config, False)
        teardown.destroy(engine, exclude_protected)
        return engine.ops

    def unprotect(self, name: str) -> None:
        """`pulumi state unprotect` for the resources whose logical name is `name`."""
        state = self.state()
        with state.lock:
            for entry in state.resources.values():
                if entry["name"] == name:
                    entry["protect"] = False
            state.save()
