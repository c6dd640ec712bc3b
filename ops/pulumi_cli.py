"""The stack's own `pulumi` CLI, run directly: the engine with its output streamed, and values encrypted as the
stack's secrets without the CLI writing the stack file out again."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from pulumi import automation as auto

from ops.errors import OpsError

SCRATCH_KEY = "webstack-rollback:value"


@dataclass(frozen=True)
class Cli:
    """The stack's `pulumi` as its workspace runs it."""
    command: str
    stack: str
    cwd: str
    env: dict[str, str]

    @classmethod
    def of(cls, stack: auto.Stack) -> "Cli":
        workspace = stack.workspace
        return cls(workspace.pulumi_command.command, stack.name, workspace.work_dir,
                   {**os.environ, **(workspace.env_vars or {})})


def engine(stack: auto.Stack, *command: str) -> int:
    """`pulumi preview` or `pulumi up` for the stack, through the CLI itself with its output streamed. Not the
    Automation API's preview()/up(): after the engine is done they read the stack's outputs and history again
    (about 1.5 s more), which a rollback does not need; the CLI's own output says what changed."""
    cli = Cli.of(stack)
    return subprocess.run([cli.command, *command, "--stack", cli.stack, "--color", "never"], cwd=cli.cwd,
                          env=cli.env).returncode


def encrypt_command(cli: Cli, scratch: Path) -> list[str]:
    """`pulumi config set --secret` of the scratch key into the scratch file, the value to come on stdin."""
    return [cli.command, "config", "set", "--secret", "--stack", cli.stack, "--config-file", str(scratch),
            SCRATCH_KEY]


class Encrypter:
    """Encrypts a value as a secret of the stack: `pulumi config set --secret` into a scratch copy of the stack
    file, whose ciphertext the caller puts into the real file in place (`pulumi config set` on the real file
    writes all of it out again). A ciphertext is not tied to its key, so one scratch key serves each value in
    turn. The value goes on stdin, never in an argv (which any user of the machine can read in /proc): the
    Automation API's set_config passes it as an argument."""

    def __init__(self, cli: Cli, text: str, scratch_dir: Path):
        self.cli, self.text, self.scratch = cli, text, scratch_dir / "Pulumi.scratch.yaml"

    def __call__(self, plaintext: str) -> str:
        if not self.scratch.exists():
            self.scratch.write_text(self.text)   # its secrets provider's settings (salt, key) are the stack's
        argv = encrypt_command(self.cli, self.scratch)
        # The CLI drops one trailing newline of what it reads: the value's own newlines all stay.
        done = subprocess.run(argv, input=plaintext + "\n", text=True, capture_output=True, cwd=self.cli.cwd,
                              env=self.cli.env)
        if done.returncode != 0:
            raise OpsError(f"`{' '.join(argv)}` failed: {done.stderr.strip()[-500:]}")
        return yaml.safe_load(self.scratch.read_text())["config"][SCRATCH_KEY]["secure"]

    def added_keys(self) -> dict:
        """Top-level keys the CLI added while encrypting: a passphrase stack's first secret adds its salt."""
        if not self.scratch.exists():
            return {}
        had = yaml.safe_load(self.text) or {}
        return {key: value for key, value in (yaml.safe_load(self.scratch.read_text()) or {}).items()
                if key != "config" and key not in had}
