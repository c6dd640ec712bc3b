"""The edge switch's shell script (templates/host/edge-switch.sh.j2), run for real with `sh` against a stand-in
`docker` that plays the edge: which checks run, in which order, and what each outcome does to the edge.

The stand-in answers `webstack-edge-apply` (reading the bundle), the edge's curl (per port: the canary's and the
public server's), the switch back and `docker rm`, and logs every call; the test reads the log.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from components import contract, rendering

FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$CALLS"
case "$*" in
  *webstack-edge-apply*) cat > "$BUNDLES/$(ls "$BUNDLES" | wc -l)"; exit 0 ;;
  *"curl"*":8099/"*) exit "$CANARY_RC" ;;
  *"curl"*":8443/"*) exit "$PUBLIC_RC" ;;
esac
exit 0
"""


def run_switch(tmp_path: Path, canary_rc: int, public_rc: int) -> tuple[int, list[str], list[str]]:
    script = rendering.render(
        "host/edge-switch.sh.j2", generation="g2", edge="webstack-t-edge", apply_command=contract.EDGE_APPLY_COMMAND,
        tls=True, domain="example.org", port=contract.EDGE_HTTPS_PORT, paths=["/", "/api/readiness"],
        delays=["0", "0"], canary_port=contract.EDGE_CANARY_PORT, canary_delays=["0"],
        config_dir=contract.EDGE_CONFIG_DIR, containers=["webstack-t-backend-g2-1", "webstack-t-web-g2"])
    bin_dir, bundles = tmp_path / "bin", tmp_path / "bundles"
    bin_dir.mkdir()
    bundles.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "BUNDLES": str(bundles),
           "CANARY_RC": str(canary_rc), "PUBLIC_RC": str(public_rc)}
    result = subprocess.run(["sh", "-c", script], input="BUNDLE-BASE64\n", env=env, capture_output=True, text=True,
                            timeout=60)
    applied = [(bundles / name).read_text() for name in sorted(os.listdir(bundles))]
    return result.returncode, calls.read_text().splitlines(), applied


def curls(calls: list[str], port: int) -> list[str]:
    return [c for c in calls if "curl" in c and f":{port}/" in c]


def test_a_release_that_answers_is_checked_through_the_canary_then_switched_and_checked_again(tmp_path):
    code, calls, applied = run_switch(tmp_path, canary_rc=0, public_rc=0)
    assert code == 0
    assert applied == ["BUNDLE-BASE64\n", "BUNDLE-BASE64\n"]     # one bundle on stdin, applied twice
    stage, live = [i for i, c in enumerate(calls) if "webstack-edge-apply" in c]
    assert calls[stage].endswith("--stage") and calls[live].endswith("webstack-edge-apply")
    canary = [i for i, c in enumerate(calls) if c in curls(calls, 8099)]
    public = [i for i, c in enumerate(calls) if c in curls(calls, 8443)]
    assert len(canary) == 2 and len(public) == 2           # both paths, once each
    assert stage < min(canary) <= max(canary) < live < min(public)
    assert not [c for c in calls if c.startswith("rm ") or "mv prev live" in c]


def test_a_release_failing_through_the_canary_is_never_switched_to_and_its_containers_go(tmp_path):
    code, calls, applied = run_switch(tmp_path, canary_rc=22, public_rc=0)
    assert code == 3
    assert len(applied) == 1 and [c for c in calls if "webstack-edge-apply" in c][0].endswith("--stage")
    assert len(curls(calls, 8099)) == 2 and not curls(calls, 8443)    # one try and one retry of the first path
    assert any("rm -rf /etc/webstack/edge/stage && nginx -s reload" in c for c in calls)
    assert "rm -f webstack-t-backend-g2-1 webstack-t-web-g2" in calls
    said = [c for c in calls if "/proc/1/fd/2" in c]
    assert said, "the reason goes to the edge's log too"


@pytest.mark.parametrize("public_rc", [7, 22])
def test_a_release_failing_through_the_public_server_after_the_switch_is_switched_back(tmp_path, public_rc):
    code, calls, applied = run_switch(tmp_path, canary_rc=0, public_rc=public_rc)
    assert code == 3 and len(applied) == 2
    assert len(curls(calls, 8443)) == 3                 # the first try and two retries
    assert any("mv live rejected && mv prev live && nginx -s reload" in c for c in calls)
    assert not [c for c in calls if c.startswith("rm -f")]   # the previous release serves again; nothing removed
