"""The real Pulumi engine for live tests, driven by the Automation API (`pulumi.automation`).

    stack = EngineStack(PROJECT_DIR, "livetest", tmp_path, config={...}, secrets={...})
    run = stack.up(**{"webstack:release": "r2"})     # EngineRun(outputs, changes, steps, seconds, output)
    plan = stack.preview(**{"webstack:release": "r3"})
    stack.history(); stack.refresh(); stack.destroy()

Each EngineStack is a private copy of the project (the program, its components and templates; `venv` is a link
to the project's own) with its own file backend and passphrase in the test's directory, so a test stack never
writes a Pulumi.<stack>.yaml into the repository and never touches an operator's state. Config is written the
way `pulumi config set` would: plain values into the stack file as YAML (objects stay objects), secrets
encrypted by the engine. Keys with a path (`webstack:backend.healthPath`) set one field of an object.
"""

from __future__ import annotations

import copy
import json
import os
import secrets as token
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml
from pulumi import automation as auto

from ops.stack import TOOLCHAIN_BIN, pulumi_command

PROJECT_DIR = Path(__file__).resolve().parents[2]
COPIED = ("Pulumi.yaml", "__main__.py", "components", "containers", "templates", "requirements.txt")


@dataclass
class EngineRun:
    """One `up`/`preview`/`refresh`/`destroy`: the engine's own summary and the steps it reported."""

    outputs: dict[str, Any]
    changes: dict[str, int]                 # the engine's summary: {"create": 2, "same": 9, ...}
    steps: list[tuple[str, str]]            # (op, urn) for every resource step the engine announced
    seconds: float
    output: str

    def names(self, op: str) -> list[str]:
        """Logical names of the resources that had `op` (create, update, delete, replace, same, ...).

        Provider instances are left out: they are the engine's plumbing, not what the program declares (the
        dynamic-resource provider shows as an update in some previews and changes nothing)."""
        return sorted(urn.rsplit("::", 1)[-1] for o, urn in self.steps
                      if o == op and "::pulumi:providers:" not in urn)

    @property
    def changed(self) -> int:
        return sum(n for op, n in self.changes.items() if op != "same")


class EngineFailed(Exception):
    """An engine command that failed: `message` has the engine's diagnostics; `steps` what it had started."""

    def __init__(self, message: str, steps: list[tuple[str, str]], seconds: float = 0.0):
        super().__init__(message)
        self.message, self.steps, self.seconds = message, steps, seconds


def _copy_project(source: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        elif path.exists():
            shutil.copy2(path, target / name)
    venv = source / "venv"
    if venv.exists() and not (target / "venv").exists():
        (target / "venv").symlink_to(venv.resolve())
    return target


def _split(key: str) -> tuple[str, list[str]]:
    namespace, _, rest = key.partition(":")
    first, *path = rest.split(".")
    return f"{namespace}:{first}", path


class EngineStack:
    def __init__(self, project_dir: Path, stack: str, directory: Path, config: Optional[Mapping[str, Any]] = None,
                 secrets: Optional[Mapping[str, Any]] = None, backend_url: Optional[str] = None,
                 passphrase: Optional[str] = None, copy: bool = True):
        self.directory = Path(directory)
        self.work_dir = _copy_project(Path(project_dir), self.directory / "project") if copy else Path(project_dir)
        state = self.directory / "state"
        state.mkdir(parents=True, exist_ok=True)
        self.backend_url = backend_url or f"file://{state}"
        self.passphrase = passphrase or token.token_hex(16)
        self.env = {
            "PULUMI_BACKEND_URL": self.backend_url,
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            # Providers come from the plugin cache at the exact versions the SDKs ask for, never from PATH.
            "PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
        }
        self.name = stack
        self.stack = auto.create_or_select_stack(
            stack_name=stack, work_dir=str(self.work_dir),
            opts=auto.LocalWorkspaceOptions(env_vars=self.env, pulumi_command=pulumi_command()))
        self.base_config = dict(config or {})
        self.base_secrets = dict(secrets or {})

    # --- config -----------------------------------------------------------------------------------------
    @property
    def stack_file(self) -> Path:
        return self.work_dir / f"Pulumi.{self.name}.yaml"

    def configure(self, overrides: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None) -> None:
        """Replace the stack's config with base + overrides (plain) and base secrets + secrets (encrypted)."""
        document = yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else None
        document = document or {}
        plain: dict[str, Any] = {}
        # A deep copy: a path override must not reach into the base config's own objects (it would stick).
        for key, value in copy.deepcopy({**self.base_config, **(overrides or {})}).items():
            root, path = _split(key)
            if not path:
                plain[root] = value
                continue
            node = plain.setdefault(root, {})
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        document["config"] = {k: v for k, v in plain.items() if v is not None}
        self.stack_file.write_text(yaml.safe_dump(document, sort_keys=True))
        for key, value in {**self.base_secrets, **(secrets or {})}.items():
            text = value if isinstance(value, str) else json.dumps(value)
            self.stack.set_config(key, auto.ConfigValue(value=text, secret=True), path="." in key.partition(":")[2])

    # --- engine commands --------------------------------------------------------------------------------
    def _run(self, command: str, overrides: Mapping[str, Any], secrets: Mapping[str, Any] | None,
             **kwargs: Any) -> EngineRun:
        if command != "destroy" or overrides or secrets:
            self.configure(overrides, secrets)
        steps: list[tuple[str, str]] = []
        lines: list[str] = []

        def on_event(event: auto.EngineEvent) -> None:
            pre = event.resource_pre_event
            if pre is not None and pre.metadata is not None:
                steps.append((str(pre.metadata.op.value), pre.metadata.urn))

        started = time.monotonic()
        try:
            result = getattr(self.stack, command)(on_event=on_event, on_output=lines.append, color="never", **kwargs)
        except auto.CommandError as exc:
            raise EngineFailed(f"{command} failed:\n{exc}", steps, time.monotonic() - started) from exc
        seconds = time.monotonic() - started
        if command == "preview":
            changes = {str(k.value if hasattr(k, "value") else k): v for k, v in result.change_summary.items()}
            outputs: dict[str, Any] = {}
        else:
            changes = dict(result.summary.resource_changes or {})
            outputs = {k: v.value for k, v in (getattr(result, "outputs", None) or {}).items()}
        return EngineRun(outputs, changes, steps, seconds, "\n".join(lines))

    def up(self, secrets: Mapping[str, Any] | None = None, refresh: bool = False, **overrides: Any) -> EngineRun:
        """`pulumi up`; with refresh, `pulumi up --refresh` (drift is read from the engine first)."""
        return self._run("up", overrides, secrets, **({"refresh": True} if refresh else {}))

    def preview(self, secrets: Mapping[str, Any] | None = None, **overrides: Any) -> EngineRun:
        return self._run("preview", overrides, secrets, diff=True)

    def refresh(self) -> EngineRun:
        return self._run("refresh", {}, None)

    def destroy(self) -> EngineRun:
        return self._run("destroy", {}, None)

    def history(self) -> list[auto.UpdateSummary]:
        """Every entry of `pulumi stack history`, newest first (the CLI pages by 10 unless asked)."""
        return self.stack.history(page_size=10_000, page=1)

    def export(self) -> dict:
        """`pulumi stack export` as stored: secrets stay ciphertext (the SDK's export_stack shows them)."""
        return json.loads(self.cli("stack", "export").stdout)["deployment"]

    def checkpoint_files(self) -> list[Path]:
        """The file backend's raw files for this stack: the checkpoint and every history entry."""
        root = Path(self.backend_url.removeprefix("file://")) / ".pulumi"
        return [p for p in root.rglob("*") if p.is_file()]

    def ops(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`python -m ops COMMAND --stack NAME ARGS` as an operator runs it, against this stack's backend and project
        copy (--stack right after the command: `ops run` takes everything after `--` as the command to run)."""
        env = {**os.environ, **self.env, "WEBSTACK_PROJECT_DIR": str(self.work_dir),
               "PATH": f"{TOOLCHAIN_BIN}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run([sys.executable, "-m", "ops", args[0], "--stack", self.name, *args[1:]],
                              capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def ops_popen(self, *args: str) -> subprocess.Popen:
        """`python -m ops` as ops() runs it, started in its own process group (to be killed as a whole)."""
        env = {**os.environ, **self.env, "WEBSTACK_PROJECT_DIR": str(self.work_dir),
               "PATH": f"{TOOLCHAIN_BIN}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.Popen([sys.executable, "-m", "ops", args[0], "--stack", self.name, *args[1:]],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, start_new_session=True)

    def cli(self, *args: str) -> auto.CommandResult:
        """Any other `pulumi` command on this stack (e.g. `state unprotect`)."""
        return self.stack.workspace._run_pulumi_cmd_sync([*args, "--stack", self.name])   # noqa: SLF001
