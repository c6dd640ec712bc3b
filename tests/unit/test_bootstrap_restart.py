"""The bootstrap never restarts a Docker engine that runs containers unless target.allowDockerRestart is true.

The rendered script's engine section runs for real under sh, with `$SUDO` standing for a recorder: every
privileged command is written to a log instead of run, and `docker ps` reports the containers the case needs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components import rendering
from components.settings_loader import ConfigError, load_settings
from tests.stack_config import PROJECT_DIR

STUBS = r'''
LOG="$1"; RUNNING="$2"
record() {
  echo "$*" >> "$LOG"
  if [ "$1" = rm ]; then "$@"; fi        # the pending flag (a file in the test's directory) really goes
  if [ "$1 ${2:-}" = "docker ps" ]; then i=0; while [ "$i" -lt "$RUNNING" ]; do echo "c$i"; i=$((i + 1)); done; fi
  return 0
}
SUDO=record
changed() { echo "changed: $*"; }
ok() { echo "ok: $*"; }
warn() { echo "warning: $*" >&2; }
fail() { echo "error: $*" >&2; exit 1; }
sleep() { :; }
'''


def engine_section(allow: bool, flag: Path) -> str:
    settings = load_settings({"release": "r1", "target": f'{{"allowDockerRestart": {str(allow).lower()}}}'}, set(),
                             "dev", PROJECT_DIR)
    script = rendering.render_bootstrap(settings, "20.10")
    setting = re.search(r"^allow_docker_restart=.*$", script, re.M).group(0)
    section = script.split("# --- engine running")[1].split("# --- the deploy user")[0]
    return STUBS + f"{setting}\nrestart_flag={flag}\n# ---" + section


def run(tmp_path: Path, allow: bool, running: int) -> tuple[str, str]:
    flag, log = tmp_path / "restart-pending", tmp_path / "sudo.log"
    flag.touch()
    log.write_text("")
    result = subprocess.run(["sh", "-c", engine_section(allow, flag), "bootstrap", str(log), str(running)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return log.read_text(), result.stderr


def restarted(log: str) -> bool:
    return "systemctl restart docker" in log or "kill" in log


def test_an_engine_running_containers_is_not_restarted_without_the_opt_in(tmp_path):
    log, stderr = run(tmp_path, allow=False, running=3)
    assert not restarted(log), log
    assert "runs 3 container(s)" in stderr and "webstack:target.allowDockerRestart true" in stderr


def test_with_the_opt_in_the_engine_is_restarted_for_the_new_daemon_json(tmp_path):
    log, _ = run(tmp_path, allow=True, running=3)
    assert restarted(log), log


def test_an_idle_engine_is_restarted_without_asking(tmp_path):
    log, _ = run(tmp_path, allow=False, running=0)
    assert restarted(log), log


def test_the_opt_in_is_a_boolean_that_defaults_to_false():
    assert load_settings({"release": "r1"}, set(), "dev", PROJECT_DIR).target.allowDockerRestart is False
    with pytest.raises(ConfigError, match="webstack:target.allowDockerRestart"):
        load_settings({"release": "r1", "target": '{"allowDockerRestart": "sometimes"}'}, set(), "dev", PROJECT_DIR)
