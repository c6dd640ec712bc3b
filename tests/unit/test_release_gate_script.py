"""The release gate's shell script (templates/host/release-gate.sh.j2), run for real with `sh` against a stand-in
`docker` that plays the target's engine: a container's state and its image's own health status come from files the
test writes. The probes' script, which runs in the edge, runs here against a stand-in curl that answers from those
files too. Every call is logged.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

from components import release_gate, rendering

FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$STATE/calls"
case "$1" in
  inspect)
    case "$*" in
      *"range .State.Health.Log"*) for c; do :; done; echo "[exit 1] health log of $c" ;;
      *) shift 3                            # inspect -f FORMAT NAME...
         for c; do echo "/$c $(cat "$STATE/$c.state")"; done ;;
    esac ;;
  exec)                                     # docker exec EDGE sh -c SCRIPT probe URL...: the script runs here
    shift 2
    exec "$@" ;;
  logs) for c; do :; done; echo "log line of $c"; echo "last log line" ;;
  rm) ;;
esac
exit 0
"""

FAKE_CURL = r"""#!/bin/sh
echo "curl $*" >> "$STATE/calls"
for url; do :; done
c=${url#http://}; c=${c%%:*}
n=$(cat "$STATE/$c.tries" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/$c.tries"
[ "$n" -ge "$(cat "$STATE/$c.answers-after")" ] && exit 0
echo "curl: (7) Failed to connect to $c port 8000" >&2
exit 7
"""

BACKEND, WEB = "webstack-t-backend-g2-1", "webstack-t-web-g2"


def run_gate(tmp_path: Path, states: dict[str, str], answers_after: dict[str, int], grace: int = 16):
    script = rendering.render(
        "host/release-gate.sh.j2", generation="g2", containers=[BACKEND, WEB], timeout_seconds=30,
        log_lines=release_gate.LOG_LINES, edge="webstack-t-edge", probe_grace_seconds=grace,
        probes={BACKEND: f"http://{BACKEND}:8000/readiness", WEB: f"http://{WEB}:8080/healthz"})
    state = tmp_path / "state"
    (tmp_path / "bin").mkdir()
    state.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("curl", FAKE_CURL)):
        tool = tmp_path / "bin" / name
        tool.write_text(text)
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    for name, value in states.items():
        (state / f"{name}.state").write_text(value + "\n")
        (state / f"{name}.answers-after").write_text(str(answers_after[name]))
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "STATE": str(state)}
    started = time.monotonic()
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    calls = (state / "calls").read_text().splitlines()
    return result, calls, time.monotonic() - started


def test_the_first_answer_to_the_edges_probe_passes_while_the_images_own_check_still_starts(tmp_path):
    result, calls, seconds = run_gate(tmp_path, {BACKEND: "running starting 0", WEB: "running starting 0"},
                                      {BACKEND: 1, WEB: 0})
    assert result.returncode == 0, result.stderr
    assert "generation g2 is healthy (2 containers)" in result.stdout
    assert seconds < 3            # one retry 0.25 s later, not Docker's first health check seconds later
    assert not [c for c in calls if c.startswith("rm")]
    # Two rounds (the web answered in the first), each one `docker inspect` and one `docker exec` for all containers.
    commands = [c.split()[0] for c in calls if c.split()[:1] in (["inspect"], ["exec"], ["logs"], ["rm"])]
    assert commands == ["inspect", "exec", "inspect", "exec"]
    assert calls[0].startswith("inspect -f") and calls[0].endswith(f"{BACKEND} {WEB}")


def test_an_image_health_check_that_says_unhealthy_fails_even_when_the_probe_answers(tmp_path):
    result, calls, _ = run_gate(tmp_path, {BACKEND: "running unhealthy 0", WEB: "running healthy 0"},
                                {BACKEND: 0, WEB: 0})
    assert result.returncode == 1
    assert f"release gate: {BACKEND} turned unhealthy" in result.stderr
    assert f"health log of {BACKEND}" in result.stderr and f"log line of {BACKEND}" in result.stderr
    assert f"rm -f {BACKEND} {WEB}" in calls


def test_a_container_that_exited_fails_at_once_with_its_log(tmp_path):
    result, calls, seconds = run_gate(tmp_path, {BACKEND: "exited none 0", WEB: "running starting 0"},
                                      {BACKEND: 99, WEB: 0})
    assert result.returncode == 1 and seconds < 3
    assert f"{BACKEND} is exited (it exited: see its log below)" in result.stderr
    assert f"--- last {release_gate.LOG_LINES} log lines of {BACKEND} ---" in result.stderr
    assert "removed the containers of generation g2" in result.stderr


def test_a_probe_that_never_answers_fails_after_the_grace_with_the_probes_output(tmp_path):
    result, _, seconds = run_gate(tmp_path, {BACKEND: "running starting 0", WEB: "running healthy 0"},
                                  {BACKEND: 99, WEB: 0}, grace=2)
    assert result.returncode == 1 and 1 <= seconds < 6    # the grace is counted in whole seconds
    assert f"GET http://{BACKEND}:8000/readiness from the edge: curl: (7) Failed to connect" in result.stderr
