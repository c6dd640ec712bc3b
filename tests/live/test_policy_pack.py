"""The policy pack (policy/) through the real engine: `pulumi preview --policy-pack` on the real program.

The dev-like stack (the dev stack's settings on free loopback ports, preview only: nothing is deployed) passes
every rule; a test-only copy of the project whose hardening forgets read_only is stopped by the pack with its
message, before anything changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.live.engine import PROJECT_DIR, EngineFailed, EngineRun, EngineStack
from tests.live.support import require_docker
from tests.live.test_engine import require_toolchain
from tests.live.test_scenarios import free_port

pytestmark = pytest.mark.live


class PolicyStack(EngineStack):
    def preview_with(self, pack: Path, **overrides) -> EngineRun:
        """`pulumi preview --policy-pack PACK` (EngineStack.preview takes no extra flags)."""
        return self._run("preview", overrides, None, diff=True, policy_packs=[str(pack)])


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """policy/ as checked in, with the project's virtualenv (it has pulumi-policy) as the pack's own."""
    require_toolchain()
    require_docker()
    target = tmp_path_factory.mktemp("policy") / "policy"
    shutil.copytree(PROJECT_DIR / "policy", target, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    (target / "venv").symlink_to((PROJECT_DIR / "venv").resolve())
    return target


def dev_like(directory: Path) -> PolicyStack:
    dev = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    config = {**dev, "webstack:httpPort": free_port(), "webstack:httpsPort": free_port()}
    return PolicyStack(PROJECT_DIR, "policytest", directory, config=config)


def test_the_dev_stack_passes_every_policy(pack, tmp_path):
    run = dev_like(tmp_path).preview_with(pack)
    assert "webstack-hardening" in run.output, run.output[-3000:]
    assert "mandatory" not in run.output, run.output[-3000:]
    assert run.changes.get("create", 0) > 10, run.changes


def test_a_container_without_a_read_only_root_is_stopped_with_the_policys_message(pack, tmp_path):
    stack = dev_like(tmp_path)
    hardening = stack.work_dir / "components" / "hardening.py"
    source = hardening.read_text()
    assert "read_only=True," in source
    hardening.write_text(source.replace("read_only=True,", "read_only=False,"))   # the copy only
    with pytest.raises(EngineFailed) as stopped:
        stack.preview_with(pack)
    message = stopped.value.message
    assert "containers-read-only-root" in message, message[-3000:]
    assert "has a writable root filesystem: set read_only=True" in message, message[-3000:]
    assert "[mandatory]" in message
    assert not (stack.export().get("resources") or [])   # a preview changes nothing
