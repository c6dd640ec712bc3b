"""Deploys that survive interruption (issue 20), through the real engine under constant load.

One stack (`intrtest`, the dev stack's settings on free loopback ports). For each kill point of a release (an
image build, the pre-deploy backup, a backend container that Docker has created but the state does not know, the
release gate, the edge switch, the deletes of the previous release) and one during an edge replacement (the new
edge created beside the old), `pulumi up` is killed with SIGKILL (its whole process group: the CLI, the program
and the providers, as a cancelled CI job is). Then, as a user would: `pulumi up` fails naming `pulumi cancel`,
`pulumi cancel`, and one `pulumi up` completes the update. Throughout: zero failed requests, each a new TLS
connection; afterwards the stack's containers on the engine are exactly those the stack's outputs name.

Then, uninterrupted: an edge upgrade at 200 requests/s drops none, a database container replacement pauses
the API (503 with Retry-After, never a 502) for a time that is measured and bounded, and the weekly base-image
refresh rebuilds every long-lived image and replaces their containers the same way.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from typing import Callable, Optional

import pytest

from ops.stack import TOOLCHAIN_BIN
from tests.live.loadgen import Load, stop_all
from tests.live.test_scenarios import LiveStack, deployed

pytestmark = pytest.mark.live
STACK = "intrtest"
# This stack's own tag of the base image, so that its refresh (test_6) rebuilds no other stack's images.
BASE = f"webstack-{STACK}-base:live"
KILL_DEADLINE_SECONDS = 300
EDGE_UPGRADE_RPS = 200   # issue 20: an edge upgrade at >= 200 requests/s, each a new TLS connection


class InterruptedStack(LiveStack):
    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """The pulumi CLI on this stack, as a user runs it in a terminal or a CI job."""
        return subprocess.run([str(TOOLCHAIN_BIN / "pulumi"), *args, "--stack", self.name, "--non-interactive"],
                              cwd=self.engine.work_dir, env=self._env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.engine.env, "PATH": f"{TOOLCHAIN_BIN}{os.pathsep}{os.environ['PATH']}"}

    def up_killed(self, when: "KillPoint", **overrides: object) -> str:
        """`pulumi up` with these settings, SIGKILLed (with everything it started) at `when`; its output."""
        self.engine.configure(overrides)
        process = subprocess.Popen(
            [str(TOOLCHAIN_BIN / "pulumi"), "up", "--yes", "--skip-preview", "--non-interactive", "--stack",
             self.name], cwd=self.engine.work_dir, env=self._env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True, stdin=subprocess.DEVNULL)
        fired = threading.Event()

        def kill() -> None:
            if not fired.is_set():
                fired.set()
                os.killpg(process.pid, signal.SIGKILL)

        watcher = when.watch(self.name, kill)
        timer = threading.Timer(KILL_DEADLINE_SECONDS, kill)
        timer.start()
        lines = []
        try:
            for line in process.stdout:
                lines.append(line)
                if when.output and re.search(when.output, line):
                    kill()
            process.wait(timeout=60)
        finally:
            timer.cancel()
            if watcher:
                watcher.terminate()
        output = "".join(lines)
        assert fired.is_set(), f"the update ended before {when.name}:\n{output[-3000:]}"
        return output

    def engine_containers(self) -> list[str]:
        """The stack's containers on the engine, once the one-off jobs that a killed update started (a backup
        job, `docker run --rm`) have ended by themselves."""
        deadline = time.monotonic() + 120
        while self.containers("backup-job") and time.monotonic() < deadline:
            time.sleep(1)
        return self.containers("")


class KillPoint:
    """Where to kill: the first output line matching `output`, or Docker's `create` event of a container whose
    name matches `created` (it exists in Docker, the state does not know it yet)."""

    def __init__(self, name: str, output: Optional[str] = None, created: Optional[str] = None):
        self.name, self.output, self.created = name, output, created
        # A container of a fixed name that Docker has and the state does not: the next up removes it
        # (components/orphans.py) and says so. The edge's names are new each time: the switch retires it.
        self.leaves_orphan = bool(created) and "-edge-" not in created

    def watch(self, stack: str, kill: Callable[[], None]) -> Optional[subprocess.Popen]:
        if not self.created:
            return None
        events = subprocess.Popen(["docker", "events", "--filter", f"label=webstack.stack={stack}", "--filter",
                                   "event=create", "--format", "{{.Actor.Attributes.name}}"],
                                  stdout=subprocess.PIPE, text=True)
        pattern = re.compile(self.created)

        def follow() -> None:
            for line in events.stdout:
                if pattern.search(line):
                    kill()
                    return
        threading.Thread(target=follow, daemon=True).start()
        return events


RELEASE_KILL_POINTS = [
    KillPoint("image build", output=r"images-backend (creating|replacing)"),
    KillPoint("pre-deploy backup", output=r"backups-pre-deploy (creating|replacing)"),
    KillPoint("backend container created in Docker", created=r"-backend-"),
    KillPoint("release gate", output=r"release-gate-\S+ creating"),
    KillPoint("edge switch", output=r"edge-switch (updating|replacing|creating)"),
    KillPoint("deletes of the previous release", output=r"backend-\S+ deleting"),
]
MEMORY = {"webstack:database.memoryMb": 320}   # test_5's change, kept by the tests after it
LAST_RELEASE = {"webstack:release": f"r{len(RELEASE_KILL_POINTS) + 1}"}   # the edge drills keep the release


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    def make() -> InterruptedStack:
        live = InterruptedStack(tmp_path_factory.mktemp(STACK), stack=STACK)
        base = live.engine.base_config.get("webstack:baseImage", "debian:bookworm-slim")
        live.engine.base_config["webstack:baseImage"] = BASE
        subprocess.run(["docker", "tag", base, BASE], check=True)
        return live
    yield from deployed(make, request, "interruptions")


def recover(stack: InterruptedStack, **overrides: object):
    """What a user does after the interruption: the next `up` says what to run; `pulumi cancel`; one `up`."""
    locked = stack.cli("up", "--yes", "--skip-preview")
    assert locked.returncode != 0 and "pulumi cancel" in locked.stdout + locked.stderr, locked.stdout[-2000:]
    cancelled = stack.cli("cancel", "--yes")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    return stack.up(**overrides)


def outputs_containers(outputs: dict) -> list[str]:
    names = []
    for value in outputs["containers"].values():
        names += value if isinstance(value, list) else [value] if value else []
    return sorted(names)


def test_1_a_first_deploy(stack):
    result = stack.up(**{"webstack:release": "r1"})
    assert stack.engine_containers() == outputs_containers(result.outputs)


def test_2_sigkill_at_any_point_of_a_release_then_cancel_and_one_up_completes_it_with_no_failed_request(stack):
    loads = stack.load()
    try:
        for number, point in enumerate(RELEASE_KILL_POINTS, start=2):
            release = {"webstack:release": f"r{number}"}
            started = time.monotonic()
            stack.up_killed(point, **release)
            result = recover(stack, **release)
            stack.figures[f"killed at: {point.name}"] = \
                f"recovered by one up in {result.seconds:.1f}s ({time.monotonic() - started:.1f}s in all)"
            assert stack.engine_containers() == outputs_containers(result.outputs), point.name
            assert result.outputs["release"] == f"r{number}"
            if point.leaves_orphan:
                assert "an interrupted update left it" in result.output, result.output[-3000:]
    finally:
        load = stop_all(loads)
    stack.figures["requests over the release drills"] = f"{load.total}, {load.failed} failed ({load.detail})"
    assert load.failed == 0, load.detail


def test_3_sigkill_during_an_edge_replacement_then_cancel_and_one_up_with_no_failed_request(stack):
    edge_upgrade(stack, "an edge upgrade")
    release = LAST_RELEASE
    before = stack.containers("edge")
    loads = stack.load()
    try:
        stack.up_killed(KillPoint("new edge created beside the old", created=rf"webstack-{STACK}-edge-(?!ports)"),
                        **release)
        result = recover(stack, **release)
    finally:
        load = stop_all(loads)
    stack.figures["killed during an edge replacement"] = \
        f"recovered in {result.seconds:.1f}s; {load.total} requests, {load.failed} failed ({load.detail})"
    assert load.failed == 0, load.detail
    assert stack.engine_containers() == outputs_containers(result.outputs)
    assert stack.containers("edge") == [result.outputs["containers"]["edge"]] != before


def edge_upgrade(stack: InterruptedStack, marker: str) -> None:
    """A change to containers/edge, as every webstack upgrade and each weekly base-image refresh brings."""
    nginx_conf = stack.engine.work_dir / "containers" / "edge" / "nginx.conf"
    nginx_conf.write_text(nginx_conf.read_text() + f"# {marker} (tests/live/test_interruptions.py)\n")


def test_4_an_edge_upgrade_at_200_requests_per_second_drops_none(stack):
    edge_upgrade(stack, "a second edge upgrade")
    before = stack.containers("edge")
    loads = (Load(stack.url + "/", EDGE_UPGRADE_RPS * 0.8, 300).start(),
             Load(stack.url + "/api/notes", EDGE_UPGRADE_RPS * 0.2, 300).start())
    try:
        result = stack.up(**LAST_RELEASE)
    finally:
        load = stop_all(loads)
    stack.figures["edge upgrade at 200 requests/s"] = \
        f"up {result.seconds:.1f}s; {load.total} requests, {load.failed} failed ({load.detail})"
    assert "webstack-intrtest-edge" in {name.rsplit("::", 1)[-1] for op, name in result.steps if op == "replace"}, \
        result.steps
    assert stack.containers("edge") == [result.outputs["containers"]["edge"]] != before
    assert load.failed == 0, load.detail
    assert load.total / (result.seconds + 2) >= EDGE_UPGRADE_RPS * 0.9


def test_5_a_database_replacement_pauses_the_api_with_503_and_retry_after_never_502(stack):
    api = Load(stack.url + "/api/notes", 50, 300).start()
    page = Load(stack.url + "/", 50, 300).start()
    try:
        # memoryMb sizes postgresql.conf, built into the database image: a new image, a new container.
        result = stack.up(**LAST_RELEASE, **MEMORY)
    finally:
        time.sleep(2)
        api_report, page_report = api.stop(), page.stop()
    assert "database-postgres" in {urn.rsplit("::", 1)[-1] for op, urn in result.steps if op == "replace"}
    stack.figures["database replacement"] = (
        f"up {result.seconds:.1f}s; API paused {api_report.failure_window:.1f}s ({api_report}); page: {page_report}")
    assert page_report.failed == 0, page_report
    assert set(api_report.failures_by_kind) <= {"http_503"}, api_report   # never a 502, a reset or a timeout
    if api_report.failed:
        assert api_report.retry_after == {"http_503": {"5"}}, api_report.retry_after
    assert api_report.failure_window < 30, api_report


def image_label(container: str, label: str) -> str:
    image = subprocess.run(["docker", "inspect", "-f", "{{.Image}}", container], capture_output=True, text=True,
                           check=True).stdout.strip()
    return subprocess.run(["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{label}"}}}}', image],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_6_the_weekly_base_image_refresh_rebuilds_the_long_lived_images_under_load(stack):
    """Issue 19 finding 7 / issue 20: a new base image (what the weekly refresh brings) rebuilds the database, edge
    and backup images on the next `up` and replaces their containers: the edge without a gap, the database after a
    pre-deploy backup with the API's short 503 pause. The running release's images keep the base they were built
    on (a release is built once)."""
    built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    subprocess.run(["docker", "build", "-q", "-t", BASE, "-"], input=f"FROM {BASE}\nLABEL webstack.base.built={built}\n",
                   text=True, check=True, capture_output=True)
    new_base = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", BASE], capture_output=True, text=True,
                              check=True).stdout.strip()
    backend_before = stack.containers("backend")
    page = Load(stack.url + "/", EDGE_UPGRADE_RPS * 0.8, 600).start()
    api = Load(stack.url + "/api/notes", EDGE_UPGRADE_RPS * 0.2, 600).start()
    try:
        # The refresh runs at the first `up` of each ISO week: a changed setting of it runs it now, as next week would.
        result = stack.up(**LAST_RELEASE, **MEMORY, **{"webstack:baseImageMaxAgeDays": 8})
    finally:
        time.sleep(2)
        page_report, api_report = page.stop(), api.stop()
    stack.figures["base-image refresh"] = (f"up {result.seconds:.1f}s; page: {page_report}; API paused "
                                           f"{api_report.failure_window:.1f}s ({api_report})")
    replaced = set(result.names("replace"))
    assert {"images-db", "images-edge", "images-backup", "database-postgres", f"webstack-{STACK}-edge",
            "backups-schedule"} <= replaced, result.steps
    assert "backing up database" in result.output
    c = result.outputs["containers"]
    assert {image_label(c[role], "webstack.base") for role in ("database", "edge", "backup")} == {new_base}
    assert stack.containers("backend") == backend_before   # the release keeps running on its own images
    assert page_report.failed == 0, page_report
    assert set(api_report.failures_by_kind) <= {"http_503"}, api_report
    if api_report.failed:
        assert api_report.retry_after == {"http_503": {"5"}}, api_report.retry_after
    again = stack.up(**LAST_RELEASE, **MEMORY, **{"webstack:baseImageMaxAgeDays": 8})
    assert again.changed == 0, [step for step in again.steps if step[0] != "same"]
