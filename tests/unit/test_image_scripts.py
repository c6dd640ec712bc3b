"""The image guard and the image pruning (templates/host/image-guard.sh.j2, image-prune.sh.j2), run for real with
`sh` against a stand-in `docker` that answers from the environment and logs every call.

The guard is where a release's images get the base they are built on (finding 7): a new release the target's
current base image, a release that already has its image the base that image recorded, so that a weekly base
refresh never rebuilds a release (a release is built once) while the long-lived images are rebuilt.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from components import rendering
from components.images import LONG_LIVED_ROLES, RELEASE_ROLES

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64

GUARD_DOCKER = r"""#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$*" in
  *webstack.context*)   # the release's tag
    [ -n "${TAG_CONTEXT:-}" ] || exit 1
    echo "$TAG_CONTEXT ${TAG_BASE:-<no value>}" ;;
  *.Id*" debian:bookworm-slim")
    [ -n "${BASE_ID:-}" ] || { echo "Error: No such image" >&2; exit 1; }
    echo "$BASE_ID" ;;
esac
"""


def guard(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    docker = tmp_path / "docker"
    docker.write_text(GUARD_DOCKER)
    docker.chmod(0o755)
    script = rendering.render("host/image-guard.sh.j2", tag="webstack-t-backend:r2", digest="d2", role="backend",
                              release="r2", base_image="debian:bookworm-slim")
    calls = tmp_path / "calls"
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(calls), **env})
    return result, calls.read_text() if calls.exists() else ""


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_a_new_release_is_built_on_the_targets_current_base(tmp_path):
    result, _ = guard(tmp_path, BASE_ID=NEW)
    assert result.returncode == 0, result.stderr
    assert last_line(result.stdout) == NEW


def test_a_release_that_has_its_image_keeps_the_base_it_was_built_on_after_a_refresh(tmp_path):
    result, _ = guard(tmp_path, TAG_CONTEXT="d2", TAG_BASE=OLD, BASE_ID=NEW)
    assert result.returncode == 0, result.stderr
    assert last_line(result.stdout) == OLD


def test_a_release_image_from_before_the_base_was_recorded_takes_the_current_base(tmp_path):
    result, _ = guard(tmp_path, TAG_CONTEXT="d2", BASE_ID=NEW)
    assert result.returncode == 0 and last_line(result.stdout) == NEW


def test_other_code_under_an_existing_release_name_is_still_refused(tmp_path):
    result, _ = guard(tmp_path, TAG_CONTEXT="d1", TAG_BASE=OLD, BASE_ID=NEW)
    assert result.returncode == 1
    assert "release r2 already has a backend image built from other code (context d1" in result.stderr
    assert "pulumi config set webstack:release r2-2" in result.stderr


def test_a_new_release_without_the_base_image_on_the_target_fails_before_the_build(tmp_path):
    result, _ = guard(tmp_path)
    assert result.returncode == 1
    assert "the base image debian:bookworm-slim is not on the target's engine" in result.stderr


PRUNE_DOCKER = r"""#!/bin/sh
echo "docker $*" >> "$CALLS"
case "$*" in
  "ps -aq "*) echo c1; echo c2 ;;
  "inspect -f "*) for image in $IN_USE; do echo "$image"; done ;;
  "image ls "*"dangling=true"*"webstack.role=db"*) echo "$DANGLING_DB" ;;
  "image ls "*"dangling=true"*"webstack.role=edge"*) echo "$DANGLING_EDGE" ;;
  "image rm "*) ;;
esac
exit 0
"""


def test_the_long_lived_images_a_new_base_left_untagged_are_removed_unless_a_container_runs_them(tmp_path):
    """The edge's holder keeps the edge image it started with (it never changes with the edge image)."""
    docker = tmp_path / "docker"
    docker.write_text(PRUNE_DOCKER)
    docker.chmod(0o755)
    script = rendering.render("host/image-prune.sh.j2", stack="t", keep=5, roles=RELEASE_ROLES,
                              long_lived=LONG_LIVED_ROLES)
    calls = tmp_path / "calls"
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, env={
        **os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(calls),
        "IN_USE": f"sha256:{'e' * 64}", "DANGLING_DB": OLD, "DANGLING_EDGE": f"sha256:{'e' * 64}"})
    assert result.returncode == 0, result.stderr
    log = calls.read_text().splitlines()
    assert f"docker image rm {OLD}" in log
    assert not [line for line in log if line.startswith("docker image rm") and "e" * 64 in line]
    assert f"pruned the untagged db image {OLD}" in result.stdout
    for role in LONG_LIVED_ROLES:
        assert any("--filter dangling=true --filter label=webstack.stack=t --filter label=webstack.role="
                   + role in line for line in log), role
