"""templates/host/base-image.sh.j2, run for real with `sh` as the `base-image-refresh` local.Command runs it (the
script of components/base_image.refresh_script, the environment of refresh_environment), against stand-ins:

- `docker`: this machine's engine, whose copy of the base image is a state file (its ID; a label and repo digests
  from the environment); `pull` and `save` work on that file;
- `ssh`: the host, whose copy is another state file; it answers the inspect the script sends and `docker load`s
  what `docker save` wrote;
- the build script (WEBSTACK_BUILD_SCRIPT): records how it was called, and may build a new image or fail.
Every stand-in logs its calls; the tests read the log and the last line of stdout (the ID the images' triggers get).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.base_image import base_image_id, refresh_environment, refresh_script
from components.local_files import SshAccess
from components.settings_loader import load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import HOST_KEY

OLD, NEW, OTHER = ("sha256:" + c * 64 for c in "abc")

FAKE_DOCKER = r"""#!/bin/sh
echo "docker $* DOCKER_HOST=${DOCKER_HOST:-}" >> "$STATE/calls"
id=$(cat "$STATE/local" 2>/dev/null)
case "$1 $2" in
  "image inspect")
    [ -n "$id" ] || { echo "Error: No such image" >&2; exit 1; }
    case "$*" in
      *webstack.base.built*) echo "${LOCAL_BUILT:-<no value>}" ;;
      *RepoDigests*) echo "${LOCAL_DIGESTS:-0}" ;;
      *Size*) echo 5242880 ;;
      *.Id*) echo "$id" ;;
      *) echo "[{}]" ;;
    esac ;;
  "pull "*)
    [ "${PULL_RC:-0}" = 0 ] || { echo "Error response from daemon: no registry here" >&2; exit "$PULL_RC"; }
    echo "${PULLED_ID:-$id}" > "$STATE/local"; echo "Status: pulled" ;;
  "save "*) echo "IMAGE $id" ;;
esac
exit 0
"""

FAKE_SSH = r"""#!/bin/sh
echo "ssh $*" >> "$STATE/calls"
[ "${SSH_RC:-0}" = 0 ] || exit "$SSH_RC"
for remote; do :; done      # the remote command line is the last argument: the host's shell runs it
PATH="$HOST_BIN:$PATH" exec sh -c "$remote"
"""

# The host's `docker`, reached through the stand-in ssh: it parses the arguments the remote shell gave it.
HOST_DOCKER = r"""#!/bin/sh
echo "host docker $*" >> "$STATE/calls"
id=$(cat "$STATE/host" 2>/dev/null)
case "$1 $2" in
  "load ")
    gunzip | sed -n 's/^IMAGE //p' > "$STATE/host"
    [ -z "${LOAD_AS:-}" ] || echo "$LOAD_AS" > "$STATE/host" ;;
  "image inspect")
    [ "$3" = -f ] && [ "$5" = debian:bookworm-slim ] && [ $# = 5 ] || { echo "bad arguments: $*" >&2; exit 2; }
    case "$4" in *\\*) echo "template: bad character in $4" >&2; exit 2 ;; esac
    [ -n "$id" ] || { echo "Error: No such image" >&2; exit 1; }
    case "$4" in
      '{{.Id}}') echo "$id" ;;
      '{{.Id}};{{index .Config.Labels "webstack.base.built"}};{{.Created}}')
        echo "$id;${HOST_BUILT:-<no value>};${HOST_CREATED:-2026-01-01T00:00:00Z}" ;;
      *) echo "unknown format $4" >&2; exit 2 ;;
    esac ;;
esac
"""

FAKE_BUILD = r"""#!/bin/sh
echo "build $* max_age=$WEBSTACK_BASE_MAX_AGE_DAYS DOCKER_HOST=${DOCKER_HOST:-}" >> "$STATE/calls"
[ "${BUILD_RC:-0}" = 0 ] || { echo "error: the stand-in build failed" >&2; exit "$BUILD_RC"; }
[ -z "${BUILT_ID:-}" ] || echo "$BUILT_ID" > "$STATE/local"
echo "base image $1 built"
"""


@dataclass
class Refresh:
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]
    host: str       # the host's copy's ID after the run ("" for none)

    def id(self) -> str:
        return base_image_id(self.stdout)

    def called(self, prefix: str) -> list[str]:
        return [c for c in self.calls if c.startswith(prefix)]


def settings_for(source: str):
    target = {"kind": "local"} if source == "local" else \
        {"kind": "ssh", "host": "203.0.113.10", "hostKey": HOST_KEY, "baseImageSource": source}
    return load_settings({"release": "r1", "target": target, "baseImageMaxAgeDays": "7"}, set(), "prod", PROJECT_DIR)


def refresh(tmp_path: Path, source: str, local: str = "", host: str = "", **env: str) -> Refresh:
    bin_dir, host_bin, state = tmp_path / "bin", tmp_path / "host-bin", tmp_path / "state"
    for directory in (bin_dir, host_bin, state):
        directory.mkdir(parents=True, exist_ok=True)
    for path, text in ((bin_dir / "docker", FAKE_DOCKER), (bin_dir / "ssh", FAKE_SSH),
                       (bin_dir / "build-base-image.sh", FAKE_BUILD), (host_bin / "docker", HOST_DOCKER)):
        path.write_text(text)
        path.chmod(0o755)
    (state / "calls").write_text("")
    (state / "local").write_text(local + "\n" if local else "")
    (state / "host").write_text(host + "\n" if host else "")
    settings = settings_for(source)
    access = None if source == "local" else SshAccess(host="203.0.113.10", port=22, user="deploy",
                                                     known_hosts=tmp_path / "known_hosts")
    environment = {**os.environ, **refresh_environment(settings, access), **env,
                   "PATH": f"{bin_dir}:{os.environ['PATH']}", "STATE": str(state), "HOST_BIN": str(host_bin),
                   "WEBSTACK_BUILD_SCRIPT": str(bin_dir / "build-base-image.sh")}
    result = subprocess.run(["sh", "-c", refresh_script(settings)], env=environment, capture_output=True, text=True,
                            timeout=60)
    return Refresh(result.returncode, result.stdout, result.stderr, (state / "calls").read_text().splitlines(),
                   (state / "host").read_text().strip())


# --- a local target: the target's engine is this machine's --------------------------------------------------

def test_local_a_base_built_by_the_script_is_left_to_its_age_rule_and_its_id_printed_last(tmp_path):
    done = refresh(tmp_path, "local", local=OLD, LOCAL_BUILT="2026-12-01T00:00:00Z")
    assert done.returncode == 0, done.stderr
    assert done.called("build ") == ["build debian:bookworm-slim max_age=7 DOCKER_HOST=unix:///var/run/docker.sock"]
    assert done.id() == OLD and done.stdout.splitlines()[-1] == OLD
    assert not done.called("docker pull") and not done.called("ssh")
    assert all("DOCKER_HOST=unix:///var/run/docker.sock" in c for c in done.called("docker "))   # the target's


def test_local_a_rebuilt_base_gives_its_new_id(tmp_path):
    done = refresh(tmp_path, "local", local=OLD, LOCAL_BUILT="2026-11-01T00:00:00Z", BUILT_ID=NEW)
    assert done.returncode == 0 and done.id() == NEW


def test_local_a_base_from_a_registry_is_pulled_again_not_rebuilt_offline(tmp_path):
    done = refresh(tmp_path, "local", local=OLD, LOCAL_DIGESTS="1", PULLED_ID=NEW)
    assert done.returncode == 0, done.stderr
    assert done.called("docker pull debian:bookworm-slim") and not done.called("build ")
    assert done.id() == NEW and "came from a registry" in done.stdout


def test_local_a_registry_that_does_not_answer_fails_the_refresh_and_says_how_to_go_on(tmp_path):
    done = refresh(tmp_path, "local", local=OLD, LOCAL_DIGESTS="1", PULL_RC="1")
    assert done.returncode == 1 and not done.called("build ")
    assert "error: cannot pull debian:bookworm-slim to refresh it" in done.stderr
    assert "--force debian:bookworm-slim" in done.stderr


def test_local_a_missing_base_is_pulled_or_else_built_offline(tmp_path):
    pulled = refresh(tmp_path / "a", "local", PULLED_ID=NEW)
    assert pulled.returncode == 0 and pulled.id() == NEW and not pulled.called("build ")
    built = refresh(tmp_path / "b", "local", PULL_RC="1", BUILT_ID=NEW)
    assert built.returncode == 0 and built.id() == NEW
    assert built.called("docker pull") and built.called("build debian:bookworm-slim")


def test_local_a_base_pinned_by_digest_is_never_refreshed(tmp_path):
    done = refresh(tmp_path, "local", local=OLD, WEBSTACK_IMAGE="debian@sha256:" + "d" * 64)
    assert done.returncode == 0 and done.id() == OLD
    assert not done.called("build ") and not done.called("docker pull")
    assert "pinned by digest" in done.stdout


def test_local_a_failed_build_fails_the_refresh_with_its_reason(tmp_path):
    done = refresh(tmp_path, "local", local=OLD, LOCAL_BUILT="2026-11-01T00:00:00Z", BUILD_RC="1")
    assert done.returncode == 1
    assert "the stand-in build failed" in done.stderr
    assert "error: refreshing the base image debian:bookworm-slim failed" in done.stderr


# --- an ssh target, baseImageSource operator: refreshed here, sent when the host's ID differs ---------------

def test_operator_a_host_with_the_same_id_gets_nothing(tmp_path):
    done = refresh(tmp_path, "operator", local=OLD, host=OLD, LOCAL_BUILT="2026-12-01T00:00:00Z")
    assert done.returncode == 0, done.stderr
    assert done.called("build ")                    # this machine's copy is refreshed first
    assert "nothing to send" in done.stdout and not done.called("docker save")
    assert not done.called("host docker load")
    assert done.id() == OLD


@pytest.mark.parametrize("host", [OTHER, ""], ids=["another image", "none"])
def test_operator_a_host_whose_copy_differs_or_is_missing_gets_this_machines(tmp_path, host):
    done = refresh(tmp_path, "operator", local=OLD, host=host, LOCAL_BUILT="2026-11-01T00:00:00Z", BUILT_ID=NEW)
    assert done.returncode == 0, done.stderr
    assert done.called("docker save debian:bookworm-slim")
    assert done.called("host docker load")
    assert done.host == NEW and done.id() == NEW
    assert f"changed: debian:bookworm-slim ({NEW}) loaded into the engine on 203.0.113.10" in done.stdout


def test_operator_every_ssh_call_uses_the_pinned_options(tmp_path):
    done = refresh(tmp_path, "operator", local=OLD, host=OTHER, LOCAL_BUILT="2026-12-01T00:00:00Z")
    calls = done.called("ssh ")
    assert len(calls) == 3      # the ID before, the load, the ID after
    for call in calls:
        assert "-o StrictHostKeyChecking=yes" in call and "-o GlobalKnownHostsFile=/dev/null" in call
        assert f"-o UserKnownHostsFile={tmp_path / 'known_hosts'}" in call
        assert "-p 22 -- deploy@203.0.113.10" in call


def test_operator_a_load_that_leaves_another_id_fails(tmp_path):
    done = refresh(tmp_path, "operator", local=OLD, host=OTHER, LOCAL_BUILT="2026-12-01T00:00:00Z", LOAD_AS=OTHER)
    assert done.returncode == 1
    assert f"after docker load, not {OLD}" in done.stderr


def test_operator_an_unreachable_host_fails_before_anything_is_sent(tmp_path):
    done = refresh(tmp_path, "operator", local=OLD, host=OTHER, LOCAL_BUILT="2026-12-01T00:00:00Z", SSH_RC="255")
    assert done.returncode == 1 and "cannot reach deploy@203.0.113.10 port 22 over ssh" in done.stderr
    assert not done.called("docker save")


# --- an ssh target, baseImageSource host: the host's own base is read there -----------------------------------

def recent() -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_host_the_hosts_id_is_read_over_ssh_and_nothing_runs_on_this_machines_engine(tmp_path):
    done = refresh(tmp_path, "host", local=OLD, host=NEW, HOST_BUILT=recent())
    assert done.returncode == 0, done.stderr
    assert done.id() == NEW and done.host == NEW
    assert not done.called("docker ") and not done.called("build ")
    [call] = done.called("ssh ")
    assert "-o StrictHostKeyChecking=yes" in call and "docker image inspect" in call
    assert done.called("host docker image inspect -f {{.Id}};")
    assert "warning" not in done.stderr


@pytest.mark.parametrize("built, created", [("", "2026-01-02T03:04:05.678Z"), ("2026-01-02T03:04:05Z", recent())],
                         ids=["a pulled image's creation date", "the build script's date"])
def test_host_an_old_base_on_the_host_is_reported_and_its_id_still_used(tmp_path, built, created):
    done = refresh(tmp_path, "host", host=NEW, HOST_BUILT=built, HOST_CREATED=created)
    assert done.returncode == 0 and done.id() == NEW
    assert "warning: debian:bookworm-slim on 203.0.113.10 dates from 2026-01-02T03:04:05" in done.stderr
    assert "(webstack:baseImageMaxAgeDays is 7)" in done.stderr
    assert "The host keeps its base image current" in done.stderr


def test_host_a_host_without_the_base_fails_and_names_both_ways_out(tmp_path):
    done = refresh(tmp_path, "host")
    assert done.returncode == 1
    assert "debian:bookworm-slim is not on 203.0.113.10's Docker engine" in done.stderr
    assert "build it there (containers/base/build-base-image.sh debian:bookworm-slim" in done.stderr
    assert "set target.baseImageSource to operator" in done.stderr


# --- the refresh reaches the real build script --------------------------------------------------------------

def test_local_a_machine_without_debootstrap_is_told_what_to_install(tmp_path):
    """The refresh runs containers/base/build-base-image.sh itself; without debootstrap on this machine its message
    reaches the update's output, and nothing is imported."""
    tools, state = tmp_path / "tools", tmp_path / "state"
    for directory in (tools, state):
        directory.mkdir()
    path = f"{tools}:/usr/bin:/bin"        # debootstrap lives in /usr/sbin
    if shutil.which("debootstrap", path=path):
        pytest.skip("debootstrap is in /usr/bin or /bin here")
    (tools / "docker").write_text(FAKE_DOCKER)
    (tools / "docker").chmod(0o755)
    (state / "calls").write_text("")
    (state / "local").write_text(OLD + "\n")
    settings = settings_for("local")
    environment = {**refresh_environment(settings), "PATH": path, "STATE": str(state),
                   "LOCAL_BUILT": "2026-01-01T00:00:00Z"}
    result = subprocess.run(["/bin/sh", "-c", refresh_script(settings)], env=environment, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "error: 'debootstrap' is missing; install it (apt-get install debootstrap" in result.stderr
    assert "error: refreshing the base image debian:bookworm-slim failed" in result.stderr
    assert "docker import" not in (state / "calls").read_text()
