"""The Python SDKs in requirements.txt are pinned to exactly the versions of the plugins the toolchain builds."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLCHAIN = ROOT / "tools" / "pulumi-toolchain"
SDKS = {"pulumi": "PULUMI_VERSION", "pulumi-docker": "DOCKER_VERSION", "pulumi-command": "COMMAND_VERSION",
        "pulumi-random": "RANDOM_VERSION"}


def versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (TOOLCHAIN / "versions.env").read_text().splitlines()
             if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(==|>=|<|~=)?\s*([^;\s]*).*", line.strip())
        if match:
            pins[match[1].lower()] = (match[2] or "") + match[3]
    return pins


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_each_pulumi_sdk_is_pinned_to_the_plugin_version_the_toolchain_builds(sdk):
    assert requirement_pins()[sdk] == "==" + versions()[SDKS[sdk]]


def test_the_cli_wrapper_module_requires_the_pinned_engine_version():
    go_mod = (TOOLCHAIN / "cli" / "go.mod").read_text()
    version = versions()["PULUMI_VERSION"]
    assert f"github.com/pulumi/pulumi/pkg/v3 v{version}" in go_mod
    assert f"github.com/pulumi/pulumi/sdk/v3 v{version}" in go_mod


@pytest.mark.parametrize("script", sorted(str(p.relative_to(ROOT)) for p in TOOLCHAIN.rglob("*.sh")))
def test_build_scripts_are_valid_bash(script):
    result = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_upstream_source_or_patch_is_vendored():
    """Modules are used only as Go modules: our own files, go.mod/go.sum, and generated schemas (git-ignored)."""
    patches = [p for p in TOOLCHAIN.rglob("*") if p.suffix in (".patch", ".diff") or "vendor" in p.parts]
    assert not patches


def test_finding_14_the_command_providers_go_tests_pass():
    """Issue 19, finding 14: the remote command provider declares a connection that stopped answering lost
    (SSH keepalives) instead of hanging `pulumi up`. Its Go tests run with the toolchain's module and build
    caches (seconds once the toolchain is built)."""
    import os
    import shutil
    if shutil.which("go") is None:
        if os.environ.get("CI"):
            pytest.fail("go is missing: CI builds the toolchain with it")
        print("SKIPPED: go is not installed")
        pytest.skip("go is not installed")
    cache = Path(os.environ.get("PULUMI_TOOLCHAIN_CACHE", Path.home() / ".cache" / "pulumi-toolchain"))
    env = {**os.environ, "GOPATH": str(cache / "gopath"), "GOCACHE": str(cache / "gocache"), "GOFLAGS": "-mod=mod",
           "CGO_ENABLED": "0", "GOTOOLCHAIN": "local"}
    result = subprocess.run(["go", "test", "-count=1", "-timeout", "120s", "./..."], cwd=TOOLCHAIN / "command",
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
