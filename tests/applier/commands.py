"""command:local:Command, command:remote:Command and command:remote:CopyToRemote, run for real.

As pulumi-command does: any input change re-runs `update` (or `create` when no update is declared) with the
previous output in PULUMI_COMMAND_STDOUT/STDERR; a change of `triggers` replaces the resource (the SDK sets
replaceOnChanges=["triggers[*]"]); `delete` runs on delete. Remote steps use the system ssh/scp with a
known_hosts file holding exactly connection.hostKey and StrictHostKeyChecking=yes. pulumi-command itself skips
host-key checks when hostKey is absent; this applier refuses that instead.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import pulumi

from . import schema
from .container_args import _int
from .docker_cli import Endpoint
from .handler import Ctx, Handler, merged


class CommandFailed(Exception):
    """A command exited non-zero; formatted like pulumi-command's error."""


def _finish(proc: subprocess.CompletedProcess, shown: str) -> dict:
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f'exit status {proc.returncode}: running "{shown[:500]}":\n{out}{err}')
    return {"stdout": out.removesuffix("\n"), "stderr": err.removesuffix("\n")}


class _CommandBase(Handler):
    in_place = frozenset()   # every change but triggers is an update: see diff()

    def diff(self, ctx: Ctx, changed: set[str]) -> tuple[str, Optional[bool]]:
        if not changed:
            return "same", None
        return ("replace" if "triggers" in changed else "update"), None

    def run(self, ctx_inputs: dict, command: str, env: dict[str, str], project_dir: Path) -> dict:
        raise NotImplementedError

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        result = self.run(ctx.inputs, ctx.inputs["create"], {}, ctx.project_dir) if ctx.inputs.get("create") else \
            {"stdout": "", "stderr": ""}
        return str(uuid.uuid4()), merged(ctx.inputs, **result)

    def update(self, ctx: Ctx) -> dict:
        command = ctx.inputs.get("update") or ctx.inputs.get("create")
        env = _previous_output(ctx.old["outputs"]) if ctx.inputs.get("addPreviousOutputInEnv", True) else {}
        result = self.run(ctx.inputs, command, env, ctx.project_dir) if command else {"stdout": "", "stderr": ""}
        return merged(ctx.inputs, **result)

    def delete(self, entry: dict, endpoint: Endpoint) -> None:
        if entry["inputs"].get("delete"):
            self.run(entry["inputs"], entry["inputs"]["delete"], _previous_output(entry["outputs"]),
                     Path(entry["projectDir"]))


def _previous_output(outputs: dict) -> dict[str, str]:
    return {"PULUMI_COMMAND_STDOUT": outputs.get("stdout", ""), "PULUMI_COMMAND_STDERR": outputs.get("stderr", "")}


class LocalCommandHandler(_CommandBase):
    fields = schema.LOCAL_COMMAND

    def run(self, inputs: dict, command: str, env: dict[str, str], project_dir: Path) -> dict:
        argv = list(inputs.get("interpreter") or ["/bin/sh", "-c"]) + [command]
        proc = subprocess.run(argv, cwd=project_dir / (inputs.get("dir") or "."), capture_output=True,
                              input=(inputs.get("stdin") or "").encode(),
                              env={**os.environ, **(inputs.get("environment") or {}), **env})
        return _finish(proc, command)


@contextmanager
def ssh_options(conn: dict) -> Iterator[tuple[list[str], str, dict[str, str]]]:
    """(ssh -o options, user@host, extra env) for a connection; temp files are removed afterwards."""
    if not conn.get("hostKey"):
        raise CommandFailed("connection.hostKey is not set: the test applier refuses unpinned SSH host keys "
                            "(pulumi-command would silently accept any key)")
    host, port, user = conn["host"], _int(conn.get("port", 22)), conn.get("user") or "root"
    with tempfile.TemporaryDirectory(prefix="wst-apl-ssh-") as tmp:
        known = Path(tmp, "known_hosts")
        known.write_text(f"{host if port == 22 else f'[{host}]:{port}'} {conn['hostKey'].strip()}\n")
        opts = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"Port={port}",
                "-o", f"ConnectTimeout={_int(conn.get('perDialTimeout', 15))}",
                "-o", f"ConnectionAttempts={max(1, _int(conn.get('dialErrorLimit', 10)))}"]
        env: dict[str, str] = {}
        if conn.get("privateKey"):
            key = Path(tmp, "id")
            key.touch(mode=0o600)
            key.write_text(conn["privateKey"].rstrip("\n") + "\n")
            opts += ["-o", "IdentitiesOnly=yes", "-i", str(key)]
        if conn.get("agentSocketPath"):
            env["SSH_AUTH_SOCK"] = conn["agentSocketPath"]
        yield opts, f"{user}@{host}", env


class RemoteCommandHandler(_CommandBase):
    fields = schema.REMOTE_COMMAND

    def run(self, inputs: dict, command: str, env: dict[str, str], project_dir: Path) -> dict:
        variables = {**(inputs.get("environment") or {}), **env}
        with ssh_options(inputs["connection"]) as (opts, target, ssh_env):
            # Like the provider's session.Setenv: only reaches the command if sshd's AcceptEnv allows it.
            opts += [a for name in variables for a in ("-o", f"SendEnv={name}")]
            proc = subprocess.run(["ssh", *opts, target, "--", command], capture_output=True,
                                  input=(inputs.get("stdin") or "").encode(),
                                  env={**os.environ, **ssh_env, **variables})
        return _finish(proc, command)


class CopyToRemoteHandler(Handler):
    fields = schema.COPY_TO_REMOTE

    def diff(self, ctx: Ctx, changed: set[str]) -> tuple[str, Optional[bool]]:
        if not changed:
            return "same", None
        return ("replace" if "triggers" in changed else "update"), None

    def fingerprint(self, ctx: Ctx) -> dict:
        source = ctx.inputs["source"]
        path = getattr(source, "path", None)
        digest = hashlib.sha256(getattr(source, "text", "").encode())
        if path:
            root = ctx.project_dir / path
            for file in sorted([root] if root.is_file() else root.rglob("*")):
                if file.is_file():
                    digest.update(str(file.relative_to(root.parent)).encode() + file.read_bytes())
        return {"sourceHash": digest.hexdigest()}

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        return str(uuid.uuid4()), self.update(ctx)

    def update(self, ctx: Ctx) -> dict:
        source = ctx.inputs["source"]
        with tempfile.TemporaryDirectory(prefix="wst-apl-copy-") as tmp:
            if isinstance(source, pulumi.StringAsset):
                local = Path(tmp, "asset")
                local.write_text(source.text)
            elif getattr(source, "path", None):
                local = ctx.project_dir / source.path
            else:
                raise CommandFailed(f"CopyToRemote source {type(source).__name__} is not supported by the applier")
            with ssh_options(ctx.inputs["connection"]) as (opts, target, ssh_env):
                proc = subprocess.run(["scp", *opts, "-r", str(local), f"{target}:{ctx.inputs['remotePath']}"],
                                      capture_output=True, env={**os.environ, **ssh_env})
        _finish(proc, f"scp {local} {ctx.inputs['remotePath']}")
        return merged(ctx.inputs)
