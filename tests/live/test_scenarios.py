"""The webstack program deployed for real through the Pulumi engine (Automation API, tools/pulumi-toolchain).

One stack (`livetest`, the dev stack's settings on free loopback ports, its own file backend) goes through the
scenarios in order: a cold deploy seen by a real browser and a no-change `up`, the preview of a release, a release
under load, a broken release, a rollback, a database update plus destroy/redeploy with the protected volume, drift
found by refresh, and the stack's history. Figures are printed at the end (run with -s to see them live).
"""

from __future__ import annotations

import functools
import json
import random
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from components.hardening import START_PERIOD_SECONDS
from tests.live.engine import EngineFailed, EngineStack
from tests.live.loadgen import Load, stop_all
from tests.live.support import container_names, remove_by_prefix, require_docker, show_figures
from tests.live.test_engine import require_toolchain

pytestmark = pytest.mark.live
PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK = "livetest"
RPS_PER_TARGET = 30   # two targets (page and API): 60 requests/s through the edge
TLS = ssl._create_unverified_context()   # the dev stack's certificate is self-signed


def free_port() -> int:
    """A free port below the kernel's ephemeral range: a port the kernel handed out (bind to 0) may be handed
    out again to an outgoing connection (a load generator's, S3's) before the stack publishes it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(20000, min(low, 32000)), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and the ephemeral range")


class LiveStack:
    """The livetest stack: deploy it with overrides, talk to it through the edge, look at its containers."""

    def __init__(self, directory: Path, stack: str = STACK):
        self.name = stack
        self.http_port, self.https_port = free_port(), free_port()
        dev = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
        base = {**dev, "webstack:httpPort": self.http_port, "webstack:httpsPort": self.https_port}
        self.engine = EngineStack(PROJECT_DIR, stack, directory, config=base)
        self.url = f"https://localhost:{self.https_port}"
        self.notes_written: list[str] = []
        self.figures: dict[str, str] = {}

    def up(self, refresh: bool = False, **overrides: object):
        return self.engine.up(refresh=refresh, **overrides)

    def request(self, path: str, body: dict | None = None) -> tuple[int, object]:
        """A polite client: the edge limits writes per client address (10/s, bursts of 20) and answers 429 over
        the limit; a test that writes many rows in a row waits and tries again, as a client would."""
        data = json.dumps(body).encode() if body is not None else None
        for pause in (0.2, 0.4, 0.8, 1.6, 3.2, None):
            req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, context=TLS, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code != 429 or pause is None:
                    raise
                time.sleep(pause)
        raise AssertionError("unreachable")

    def write_note(self, text: str) -> None:
        status, _ = self.request("/api/notes", {"text": text})
        assert status == 201
        self.notes_written.append(text)

    def notes(self) -> list[str]:
        return [note["text"] for note in self.request("/api/notes")[1]]

    def load(self, seconds: float = 600) -> tuple[Load, Load]:
        return (Load(self.url + "/", RPS_PER_TARGET, seconds).start(),
                Load(self.url + "/api/notes", RPS_PER_TARGET, seconds).start())

    def containers(self, role: str) -> list[str]:
        """The stack's containers of a role (every role when role is empty)."""
        role_filter = ["--filter", f"label=webstack.role={role}"] if role else []
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=webstack.stack={self.name}", *role_filter,
                              "--format", "{{.Names}}"], capture_output=True, text=True, check=True).stdout
        return sorted(out.split())

    def inspect_all(self) -> list[dict]:
        """`docker inspect` of every container of the stack."""
        return json.loads(subprocess.run(["docker", "inspect", *self.containers("")], capture_output=True,
                                         text=True, check=True).stdout)

    def urn(self, name: str) -> str:
        return next(r["urn"] for r in self.engine.export()["resources"] if r["urn"].endswith(f"::{name}"))


def health(name: str, settle_seconds: float = 40) -> str:
    """Docker's health of a container once it is no longer "starting" (or the deadline passed): the release gate
    passes on the edge's probe, while an image's own HEALTHCHECK reports only after its first interval."""
    deadline = time.monotonic() + settle_seconds
    while True:
        out = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", name], capture_output=True,
                             text=True)
        status = out.stdout.strip() or out.stderr.strip()
        if status != "starting" or time.monotonic() > deadline:
            return status
        time.sleep(1)


def deployed(make_stack, request, title: str):
    """A live stack for a test module: nothing of an earlier run's stack left before, nothing of it after (the
    protected volume is unprotected for the destroy; images go with the name prefix); figures printed last."""
    require_docker()
    require_toolchain()
    live = make_stack()
    prefix = f"webstack-{live.name}-"
    remove_by_prefix(prefix)
    yield live
    try:
        if live.engine.export().get("resources"):
            live.engine.cli("state", "unprotect", "--all", "--yes")   # the data and app volumes
            live.engine.destroy()
    finally:
        remove_by_prefix(prefix)
        show_figures(request, title, live.figures)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    yield from deployed(lambda: LiveStack(tmp_path_factory.mktemp("livetest")), request, "live")


def test_1_a_cold_deploy_serves_notes_from_postgresql_to_a_real_browser(stack, tmp_path):
    result = stack.up(**{"webstack:release": "r1"})
    stack.figures["cold deploy"] = f"{result.seconds:.1f}s, {result.changes}"
    assert all(health(name) == "healthy" for name in container_names(result.outputs)), \
        {name: health(name) for name in container_names(result.outputs)}
    stack.write_note("written by the cold-deploy test")
    again = stack.up(**{"webstack:release": "r1"})
    stack.figures["no-change up"] = f"{again.seconds:.1f}s, {again.changes}"
    assert again.changed == 0 and set(again.changes) == {"same"}, again.changes
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
         "--ignore-certificate-errors", "--virtual-time-budget=10000", "--dump-dom", stack.url],
        capture_output=True, text=True, timeout=120).stdout
    assert "written by the cold-deploy test" in dom, dom[-2000:]
    assert 'data-state="up"' in dom


def test_1b_finding_16_every_container_of_the_stack_has_a_pids_cgroup_limit(stack):
    """Issue 19, finding 16 (CIS 5.29, docker-bench-security): HostConfig.PidsLimit is set on every container."""
    from components.pids_limits import PIDS_LIMIT
    inspected = stack.inspect_all()
    roles = {c["Config"]["Labels"]["webstack.role"] for c in inspected}
    assert {"database", "backend", "web", "edge-ports", "edge", "backup"} <= roles, roles
    limits = {c["Name"]: c["HostConfig"]["PidsLimit"] for c in inspected}
    assert all(limit == PIDS_LIMIT for limit in limits.values()), limits


def test_1c_each_service_has_the_cpu_cap_of_its_setting_and_the_database_none(stack):
    """Issue 22: every container was capped at one CPU, PostgreSQL included."""
    inspected = stack.inspect_all()
    quotas = {c["Config"]["Labels"]["webstack.role"]: c["HostConfig"]["CpuQuota"] for c in inspected}
    assert quotas["database"] == 0 and quotas["backend"] == quotas["web"] == 100_000, quotas


def test_2_the_preview_of_a_release_names_exactly_what_changes(stack):
    before = {role: stack.containers(role) for role in ("backend", "web", "database", "edge")}
    plan = stack.engine.preview(**{"webstack:release": "r2"})
    created, deleted = plan.names("create"), plan.names("delete")
    # The release's containers and its gate are new resources; the previous release's go at the end.
    assert [n.split("-")[0] for n in created] == ["backend", "release", "web"], plan.steps
    assert all("-r2-" in n for n in created) and all("-r1-" in n for n in deleted), plan.steps
    assert [n.split("-")[0] for n in deleted] == ["backend", "release", "web"], plan.steps
    assert plan.names("update") == ["edge-switch"], [u for o, u in plan.steps if o == "update"]
    # Images tagged with the release, guarded and pruned, and a backup before the release. The backup schedule's
    # container lives across releases.
    assert plan.names("replace") == ["backups-pre-deploy", "images-backend", "images-backend-guard", "images-prune",
                                     "images-web", "images-web-guard", "pids-limits-update"], plan.steps
    assert "backups-schedule" in plan.names("same")
    same = plan.names("same")
    assert {"database-postgres", "database-data", "edge-ports", f"webstack-{STACK}-edge", "images-db",
            "images-edge"} <= set(same)
    assert {role: stack.containers(role) for role in before} == before   # a preview changes nothing


def test_3_a_new_release_under_load_drops_no_request_and_leaves_only_its_containers(stack):
    loads = stack.load()
    result = stack.up(**{"webstack:release": "r2"})
    load = stop_all(loads)
    stack.figures["release update r1->r2"] = f"{result.seconds:.1f}s, {load.total} requests, {load.failed} failed ({load.detail})"
    assert load.failed == 0, load.detail
    assert load.total / (result.seconds + 2) >= 50
    c = result.outputs["containers"]
    assert stack.containers("backend") == sorted(c["backend"]) and stack.containers("web") == [c["web"]]
    stack.write_note("written on release r2")


def test_4_a_broken_release_fails_fast_with_its_diagnostics_while_the_previous_one_keeps_serving(stack):
    loads = stack.load()
    with pytest.raises(EngineFailed) as failed:
        stack.up(**{"webstack:release": "r3", "webstack:backend.healthPath": "/no-such-path"})
    load = stop_all(loads)
    message = failed.value.message
    gate_seconds = int(re.search(r"failed after (\d+) s", message)[1])
    stack.figures["broken release r3 (never healthy)"] = \
        f"update failed in {failed.value.seconds:.1f}s, gate after {gate_seconds}s; {load.total} requests, {load.failed} failed"
    assert "turned unhealthy" in message, message
    assert gate_seconds <= START_PERIOD_SECONDS + 10, message
    assert "--- health check output of" in message and "--- last 50 log lines of" in message, message
    assert "/no-such-path" in message, message          # the probe's own output names what failed
    assert not [urn for op, urn in failed.value.steps if op == "delete"], failed.value.steps
    assert load.failed == 0, load.detail
    assert not [c for c in stack.containers("backend") if "-r3-" in c], "the failed release's containers stay"
    good = stack.up(**{"webstack:release": "r4"})
    assert all(health(name) == "healthy" for name in container_names(good.outputs))
    assert stack.containers("backend") == sorted(good.outputs["containers"]["backend"])
    stack.write_note("written on release r4")


def test_4b_a_release_whose_backend_exits_at_start_fails_in_seconds_with_its_log(stack, tmp_path):
    context = tmp_path / "crashing-backend"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nUSER 1001\n"
        'CMD ["sh", "-c", "echo webstack-test: missing DATABASE_SETTINGS, giving up; exit 3"]\n')
    loads = stack.load()
    with pytest.raises(EngineFailed) as failed:
        stack.up(**{"webstack:release": "r4-crash", "webstack:backend.context": str(context)})
    load = stop_all(loads)
    message = failed.value.message
    gate_seconds = int(re.search(r"failed after (\d+) s", message)[1])
    stack.figures["broken release (exits at start)"] = \
        f"update failed in {failed.value.seconds:.1f}s, gate after {gate_seconds}s; {load.total} requests, {load.failed} failed"
    assert gate_seconds < 15, message
    assert "missing DATABASE_SETTINGS, giving up" in message, message
    assert load.failed == 0, load.detail
    assert not [c for c in stack.containers("backend") if "-r4-crash-" in c]


def test_5_rolling_back_to_the_previous_release_keeps_serving_and_keeps_every_row(stack):
    loads = stack.load()
    result = stack.up(**{"webstack:release": "r2"})
    load = stop_all(loads)
    stack.figures["rollback r4->r2"] = f"{result.seconds:.1f}s, {load.total} requests, {load.failed} failed ({load.detail})"
    assert load.failed == 0, load.detail
    assert result.outputs["release"] == "r2"
    assert set(stack.notes_written) <= set(stack.notes())


def test_6_replacing_the_database_container_and_destroying_the_stack_keep_every_row(stack):
    # memoryMb also sizes postgresql.conf, which is built into the database image: a new image, a new container.
    updated = stack.up(**{"webstack:release": "r2", "webstack:database.memoryMb": 384})
    assert "database-postgres" in updated.names("replace"), [s for s in updated.steps if s[0] != "same"]
    # Issue 21: a database change alone is backed up before the container is replaced.
    assert "backups-pre-deploy" in updated.names("replace"), [s for s in updated.steps if s[0] != "same"]
    assert "backing up database" in updated.output, updated.output[-3000:]
    assert set(stack.notes_written) <= set(stack.notes())
    volume = updated.outputs["dataVolume"]
    # The real engine deletes what it can and stops at the protected volume (the applier refused up front):
    # the update fails, the data volume and its rows stay.
    with pytest.raises(EngineFailed, match="protected"):
        stack.engine.destroy()
    assert subprocess.run(["docker", "volume", "inspect", volume], capture_output=True).returncode == 0
    stack.up(**{"webstack:release": "r2", "webstack:database.memoryMb": 384})
    assert set(stack.notes_written) <= set(stack.notes())
    # Unprotected, the destroy completes, and retain_on_delete still keeps the volume on the engine.
    stack.engine.cli("state", "unprotect", stack.urn("database-data"), "--yes")
    stack.engine.destroy()
    assert subprocess.run(["docker", "volume", "inspect", volume], capture_output=True).returncode == 0
    assert stack.containers("database") == []
    redeployed = stack.up(**{"webstack:release": "r2"})
    assert redeployed.outputs["dataVolume"] == volume
    assert set(stack.notes_written) <= set(stack.notes())


def test_7_a_container_removed_by_hand_is_drift_that_refresh_finds_and_up_recreates(stack):
    before = stack.up(**{"webstack:release": "r2"})
    web = before.outputs["containers"]["web"]
    subprocess.run(["docker", "rm", "-f", web], check=True, capture_output=True)
    result = stack.up(refresh=True, **{"webstack:release": "r2"})
    assert [n for n in result.names("create")] == [f"web-{web.split('-web-', 1)[1]}-nginx"], result.steps
    assert health(web) == "healthy"
    assert urllib.request.urlopen(stack.url, context=TLS, timeout=10).status == 200


def test_8_the_stack_history_has_every_update_with_its_config(stack):
    history = stack.engine.history()
    updates = [h for h in history if h.kind == "update"]
    releases = [h.config["webstack:release"].value for h in reversed(updates)]
    assert releases[:6] == ["r1", "r1", "r2", "r3", "r4", "r4-crash"], releases
    results = [h.result for h in reversed(updates)]
    assert results[3] == results[5] == "failed"     # the broken releases are recorded as failed
    stack.figures["history"] = f"{len(history)} entries ({len(updates)} updates): releases {releases}"


def test_9_status_and_logs_describe_the_running_stack(stack):
    ops = functools.partial(stack.engine.ops, timeout=120)
    deadline = time.monotonic() + 40    # an image's own HEALTHCHECK reports only after its interval: let it settle
    while True:
        result = ops("status", "--json")
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        if "starting" not in {row["health"] for row in status["services"]} or time.monotonic() > deadline:
            break
        time.sleep(1)
    services = {row["service"] for row in status["services"]}
    assert services == {"edge-ports", "edge", "web", "backend", "database", "backup"}, status
    assert {row["health"] for row in status["services"] if row["service"] != "edge-ports"} == {"healthy"}, status
    assert "days left" in status["certificate"]
    # The newest backups on the target (each release took one before it started; the daily schedule may have
    # added one), newest first.
    newest = status["backups"][0]
    assert newest["reason"] in ("pre-deploy", "scheduled") and newest["name"].endswith(newest["reason"]), status
    table = ops("status").stdout
    assert f"last backups: {newest['name']} ({newest['reason']}, release {newest['release']}" in table, table
    stack.figures["ops status"] = "\n" + table
    stack.write_note("a note to find in the logs")
    logs = ops("logs", "edge", "--since", "10m", "--grep", "POST /api/notes")
    assert logs.returncode == 0, logs.stderr
    assert "POST /api/notes" in logs.stdout and all("POST /api/notes" in line for line in logs.stdout.splitlines())
    wrong = ops("logs", "frontend")
    assert wrong.returncode == 2 and "unknown service frontend" in wrong.stderr and "Traceback" not in wrong.stderr
