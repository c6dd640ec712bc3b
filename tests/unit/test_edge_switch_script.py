"""The edge switch's scripts (templates/host/edge-switch.sh.j2, and templates/edge/switch.sh.j2 that it runs in the
edge with one `docker exec`), run for real with `sh` against stand-ins: which checks run, in which order, and what
each outcome does to the edge's configuration.

The stand-in `docker` runs the in-edge script here, and answers `docker rm` and the copy into the edge's log. The
in-edge script meets a stand-in `webstack-edge-apply` (it keeps each bundle and moves live/ to prev/ as the real
one does), a stand-in curl that answers per port (the canary's and the public server's) and a stand-in nginx, in
a config directory of the test's own. All of them log every call; the test reads the log.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from components import rendering
from components.settings_loader import load_settings
from tests.stack_config import PROJECT_DIR

FAKE_DOCKER = r"""#!/bin/sh
echo "docker $*" >> "$CALLS"
# The switch's work in the edge: `docker exec -i EDGE sh -c SCRIPT webstack-edge-switch`, run here.
if [ "$1" = exec ] && [ "$4" = sh ] && [ "$5" = -c ] && [ "$7" = webstack-edge-switch ]; then
  shift 3
  exec "$@"
fi
case "$*" in *"/proc/1/fd/2"*) cat >> "$EDGE_LOG" ;; esac
# The stack's edges, as `docker ps --format {{.Names}}` lists them: this one and any others ($OTHER_EDGES).
if [ "$1" = ps ]; then echo webstack-t-edge-new; for other in $OTHER_EDGES; do echo "$other"; done; fi
exit 0
"""

FAKE_APPLY = r"""#!/bin/sh
echo "webstack-edge-apply $*" >> "$CALLS"
cat > "$BUNDLES/$(ls "$BUNDLES" | wc -l)"
if [ "${1:-}" = --stage ]; then mkdir -p "$CONFIG/stage"
else rm -rf "$CONFIG/prev" "$CONFIG/stage"; mv "$CONFIG/live" "$CONFIG/prev"; mkdir "$CONFIG/live"; fi
exit 0
"""

FAKE_CURL = r"""#!/bin/sh
echo "curl $*" >> "$CALLS"
case "$*" in
  *"webstack-edge-canary.sock"*) rc=$CANARY_RC ;;
  *"webstack-edge-https.sock"*) rc=$PUBLIC_RC ;;
  *) rc=0 ;;
esac
[ "$rc" = 0 ] || echo "curl: ($rc) the stand-in's answer" >&2
exit "$rc"
"""

FAKE_NGINX = r"""#!/bin/sh
echo "nginx $*" >> "$CALLS"
"""


def run_switch(tmp_path: Path, canary_rc: int, public_rc: int,
               other_edges: str = "") -> tuple[int, list[str], list[str], str]:
    bin_dir, bundles, config = tmp_path / "bin", tmp_path / "bundles", tmp_path / "edge"
    for directory in (bin_dir, bundles, config / "live"):
        directory.mkdir(parents=True)
    (config / "live" / "site.conf").write_text("the running release\n")
    for name, text in (("docker", FAKE_DOCKER), ("webstack-edge-apply", FAKE_APPLY), ("curl", FAKE_CURL),
                       ("nginx", FAKE_NGINX)):
        tool = bin_dir / name
        tool.write_text(text)
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    settings = load_settings({"release": "r2", "domain": "example.org", "tls": {"mode": "self-signed"}}, set(), "t",
                             PROJECT_DIR)
    inside = rendering.render_edge_switch(settings, "g2", apply_command=str(bin_dir / "webstack-edge-apply"),
                                          config_dir=str(config), canary_delays=["0"], delays=["0", "0"])
    script = rendering.render("host/edge-switch.sh.j2", generation="g2", edge="webstack-t-edge-new", stack="t",
                              name_prefix="webstack-t",
                              containers=["webstack-t-backend-g2-1", "webstack-t-web-g2"], inside=inside)
    calls, edge_log = tmp_path / "calls", tmp_path / "edge.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "BUNDLES": str(bundles),
           "CONFIG": str(config), "EDGE_LOG": str(edge_log), "CANARY_RC": str(canary_rc),
           "PUBLIC_RC": str(public_rc), "OTHER_EDGES": other_edges}
    result = subprocess.run(["sh", "-c", script], input="BUNDLE-BASE64\n", env=env, capture_output=True, text=True,
                            timeout=60)
    applied = [(bundles / name).read_text() for name in sorted(os.listdir(bundles), key=int)]
    said = result.stderr + (edge_log.read_text() if edge_log.exists() else "")
    return result.returncode, calls.read_text().splitlines(), applied, said


CANARY, PUBLIC = "canary", "https"


def curls(calls: list[str], server: str) -> list[str]:
    """The curls through one of the edge's own sockets (the canary's, the public HTTPS server's)."""
    return [c for c in calls if c.startswith("curl ") and f"--unix-socket /tmp/webstack-edge-{server}.sock " in c]


def serving(tmp_path: Path) -> str:
    site = tmp_path / "edge" / "live" / "site.conf"
    return site.read_text() if site.exists() else "the new release"


def test_a_release_that_answers_is_checked_through_the_canary_then_switched_and_checked_again(tmp_path):
    code, calls, applied, _ = run_switch(tmp_path, canary_rc=0, public_rc=0)
    assert code == 0
    assert applied == ["BUNDLE-BASE64\n", "BUNDLE-BASE64\n"]     # one bundle on stdin, applied twice
    assert len([c for c in calls if c.startswith("docker exec")]) == 1      # all of it in one exec
    stage, live = [i for i, c in enumerate(calls) if c.startswith("webstack-edge-apply")]
    assert calls[stage].endswith("--stage") and calls[live] == "webstack-edge-apply "
    canary = [i for i, c in enumerate(calls) if c in curls(calls, CANARY)]
    public = [i for i, c in enumerate(calls) if c in curls(calls, PUBLIC)]
    assert len(canary) == 2 and len(public) == 2           # both paths, once each
    assert stage < min(canary) <= max(canary) < live < min(public)
    assert serving(tmp_path) == "the new release"
    assert not [c for c in calls if c.startswith("docker rm") or c.startswith("nginx")]


def test_a_release_failing_through_the_canary_is_never_switched_to_and_its_containers_go(tmp_path):
    code, calls, applied, said = run_switch(tmp_path, canary_rc=22, public_rc=0)
    assert code == 3
    assert len(applied) == 1 and [c for c in calls if c.startswith("webstack-edge-apply")] == \
        ["webstack-edge-apply --stage"]
    assert len(curls(calls, CANARY)) == 2 and not curls(calls, PUBLIC)    # one try and one retry of the first path
    assert not (tmp_path / "edge" / "stage").exists() and "nginx -s reload" in calls    # the canary is gone
    assert serving(tmp_path) == "the running release\n"
    assert "docker rm -f webstack-t-backend-g2-1 webstack-t-web-g2" in calls
    assert "refused before the switch: / through the edge still fails: curl: (22) the stand-in's answer" in said
    edge_log = (tmp_path / "edge.log").read_text()          # the reasons reach the edge's log too
    assert "refused before the switch" in edge_log and "nothing was switched" in edge_log


@pytest.mark.parametrize("public_rc", [7, 22])
def test_a_release_failing_through_the_public_server_after_the_switch_is_switched_back(tmp_path, public_rc):
    code, calls, applied, said = run_switch(tmp_path, canary_rc=0, public_rc=public_rc)
    assert code == 3 and len(applied) == 2
    assert len(curls(calls, PUBLIC)) == 3                 # the first try and two retries
    assert serving(tmp_path) == "the running release\n" and (tmp_path / "edge" / "rejected").is_dir()
    assert "nginx -s reload" in calls
    assert f"after the switch, / through the edge still fails: curl: ({public_rc}) the stand-in's answer" in said
    assert "switched back to the previous configuration" in (tmp_path / "edge.log").read_text()
    assert not [c for c in calls if c.startswith("docker rm")]   # the previous release serves again; nothing removed


def test_after_the_switch_the_other_edges_of_the_stack_get_a_graceful_stop_and_go(tmp_path):
    code, calls, _, _ = run_switch(tmp_path, canary_rc=0, public_rc=0, other_edges="webstack-t-edge-old")
    assert code == 0
    live = calls.index("webstack-edge-apply ")
    listed = calls.index(next(c for c in calls if c.startswith("docker ps")))
    assert "--filter label=webstack.stack=t --filter label=webstack.role=edge --filter name=^webstack-t-edge-" in \
        calls[listed]
    stop, remove = calls.index("docker stop -t 30 webstack-t-edge-old"), calls.index("docker rm webstack-t-edge-old")
    assert live < listed < stop < remove
    assert not [c for c in calls if "webstack-t-edge-new" in c and c.split()[1] in ("stop", "rm")]


@pytest.mark.parametrize("canary_rc, public_rc", [(22, 0), (0, 7)])
def test_a_failed_switch_keeps_every_other_edge_serving(tmp_path, canary_rc, public_rc):
    code, calls, _, _ = run_switch(tmp_path, canary_rc, public_rc, other_edges="webstack-t-edge-old")
    assert code == 3
    assert not [c for c in calls if c.startswith(("docker stop", "docker ps"))]
