"""Backups on an SSH target: the same commands, the jobs on the host's own engine (tests/live/hosts.py).

Stack `bkpssh` (the prod settings, as test_remote_scenarios deploys them) on a fresh host: a first deploy, then
`python -m ops backup`, a restore drill (--verify), and a real restore after a DROP TABLE, all over the pinned
SSH options. Nothing of the dump passes through the operator's machine.
"""

from __future__ import annotations

import time

import pytest

import tests.live.test_remote_scenarios as remote
from tests.live.hosts import hosts  # noqa: F401 (fixture)
from tests.live.support import show_figures
from tests.live.test_engine import require_toolchain

pytestmark = pytest.mark.live
STACK = "bkpssh"
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def stack(hosts, tmp_path_factory, request):
    require_toolchain()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(remote, "STACK", STACK)   # RemoteStack names its stack (and its ssh files) after it
        host = hosts.create("bkp")
        yield remote.RemoteStack(host, tmp_path_factory.mktemp(STACK))
        show_figures(request, "backups over ssh", FIGURES)


def psql(stack, statement: str) -> str:
    return stack.remote_docker("exec", "-u", "1001", f"webstack-{STACK}-db", "psql", "-h", "/var/run/postgresql",
                               "-U", "app", "-d", "appdb", "-X", "-A", "-t", "-c", statement)


def ops(stack, *args: str) -> str:
    done = stack.engine.ops(*args)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.stdout


def test_backup_and_restore_run_on_the_ssh_host(stack):
    result = stack.up(**{"webstack:release": "1.0.0"})
    FIGURES["deploy from nothing (Docker installed, 5 images built on the host)"] = f"{result.seconds:.1f}s"
    for i in range(10):
        stack.write_note(f"remote note {i}")
    checksum = "SELECT count(*) || ':' || md5(string_agg(id || text, ',' ORDER BY id)) FROM notes"
    expected = psql(stack, checksum)
    started = time.monotonic()
    made = ops(stack, "backup")
    FIGURES["backup over ssh"] = f"{time.monotonic() - started:.1f}s: {made.strip().splitlines()[-1]}"
    listed = stack.remote_docker("run", "--rm", "-v", f"webstack-{STACK}-backups:/b", "debian:bookworm-slim",
                                 "ls", "/b")
    assert "-manual" in listed, listed
    drill = ops(stack, "restore", "--verify")
    assert "verify mode" in drill
    psql(stack, "DROP TABLE notes")
    started = time.monotonic()
    ops(stack, "restore", "--latest")
    FIGURES["restore over ssh"] = f"{time.monotonic() - started:.1f}s"
    assert psql(stack, checksum) == expected
    assert "remote note 9" in stack.notes()


def test_point_in_time_recovery_runs_on_the_ssh_host(stack):
    """database.pitr on the SSH host: archiving turned on (the update takes a dump first: the archive holds no base
    backup yet), then a table dropped by accident is recovered to the second before, over the pinned SSH options."""
    result = stack.up(**{"webstack:release": "1.0.0", "webstack:database.pitr.enabled": True})
    assert "continuous archiving works; 1 base backup(s)" in result.output, result.output[-3000:]
    FIGURES["turning archiving on over ssh (database replaced, first base backup)"] = f"{result.seconds:.1f}s"
    for i in range(5):
        stack.write_note(f"archived note {i}")
    checksum = "SELECT count(*) || ':' || md5(string_agg(id || text, ',' ORDER BY id)) FROM notes"
    expected = psql(stack, checksum)
    before_the_accident = psql(stack, "SELECT clock_timestamp()")
    time.sleep(1.5)
    psql(stack, "DROP TABLE notes")
    started = time.monotonic()
    restored = stack.engine.ops("restore", "--to-time", before_the_accident)
    assert restored.returncode == 0, restored.stdout + restored.stderr[-3000:]
    FIGURES["restore --to-time over ssh"] = f"{time.monotonic() - started:.1f}s"
    assert psql(stack, checksum) == expected
    # The next release's pre-deploy step is a restore point now, not a dump.
    second = stack.up(**{"webstack:release": "1.0.1", "webstack:database.pitr.enabled": True})
    assert "restore point webstack-" in second.output, second.output[-3000:]
