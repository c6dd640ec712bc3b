"""The stack an operator command works on: the project here, its backend from the environment (as the CLI)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pulumi import automation as auto

from ops.errors import OpsError

# The project whose stacks the commands work on (its Pulumi.<stack>.yaml files hold their config): this one,
# or WEBSTACK_PROJECT_DIR (tests run commands against private copies of the project).
PROJECT_DIR = Path(os.environ.get("WEBSTACK_PROJECT_DIR") or Path(__file__).resolve().parents[1])
TOOLCHAIN_BIN = Path(os.environ.get("PULUMI_TOOLCHAIN_BIN", Path.home() / ".cache/pulumi-toolchain/bin"))


def pulumi_command() -> auto.PulumiCommand:
    """The `pulumi` on PATH, else the one tools/pulumi-toolchain/build.sh built."""
    on_path = shutil.which("pulumi")
    binary = Path(on_path).resolve() if on_path else TOOLCHAIN_BIN / "pulumi"
    if not binary.exists() or binary.parent.name != "bin":   # PulumiCommand runs <root>/bin/pulumi
        raise OpsError("no pulumi CLI: install Pulumi (curl -fsSL https://get.pulumi.com | sh) or build the pinned "
                       "toolchain (bash tools/pulumi-toolchain/build.sh)")
    return auto.PulumiCommand(root=str(binary.parent.parent), skip_version_check=True)


def select(stack: str, project_dir: Path = PROJECT_DIR, env: dict[str, str] | None = None) -> auto.Stack:
    """The existing stack `stack` of the project (never creates one)."""
    try:
        workspace = auto.LocalWorkspace(work_dir=str(project_dir), env_vars=env or {},
                                        pulumi_command=pulumi_command())
        return auto.Stack.select(stack, workspace)
    except auto.StackNotFoundError as exc:
        backend = os.environ.get("PULUMI_BACKEND_URL", "the default backend")
        raise OpsError(f"no stack named {stack!r} in {backend}: `pulumi stack ls` lists them") from exc
