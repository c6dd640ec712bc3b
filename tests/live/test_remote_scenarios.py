"""The prod stack, deployed for real from nothing onto a fresh test host over ssh, through the Pulumi engine.

The host (tests/live/hosts.py) starts without Docker. One `up` runs the whole program as Pulumi would: the
preflight (local, the system ssh with the pinned key), the bootstrap (remote, installs docker.io), the base
image sent from this machine's engine (baseImageSource: operator, the host has no registry), the four images
built on the host's engine over ssh://, and the containers, serving HTTPS with a provided test certificate.
Then, once each: a no-change re-run, a release, a broken release and a rollback, with light load on the edge.

The stack is named `remotetest` (prod's settings, its own name) so that an operator's real .webstack/prod pins
are never touched. Figures are printed at the end (-s shows them as they come).
"""

from __future__ import annotations

import functools
import json
import shlex
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest
import yaml

from components.local_files import SshAccess, key_path
from tests.live.engine import EngineFailed, EngineStack
from tests.live.hosts import TestHost, hosts  # noqa: F401 (fixture)
from tests.live.loadgen import Load, stop_all
from tests.live.support import container_names, show_figures
from tests.live.test_engine import require_toolchain
from tests.unit.conftest import certificate

pytestmark = pytest.mark.live
PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK = "remotetest"
DOMAIN = "app.example.com"
RPS_PER_TARGET = 5     # light: the host's engine also builds images while the load runs
FIGURES: dict[str, str] = {}


class RemoteStack:
    """The remotetest stack on one host: deploy it, talk to its edge, look at its engine over ssh://."""

    def __init__(self, host: TestHost, state_dir: Path):
        self.host, self.state_dir = host, state_dir
        prod = yaml.safe_load((PROJECT_DIR / "Pulumi.prod.yaml").read_text())["config"]
        self.base = {k: v for k, v in prod.items() if k not in ("webstack:target", "webstack:tls")}
        self.cert, key = certificate(DOMAIN)
        # As an operator sets them: the objects in plain config, their secret fields with --secret --path.
        self.base.update({
            "webstack:target": {"kind": "ssh", "host": host.ip, "port": 22, "user": "deploy",
                                "hostKey": host.keys.host_public, "baseImageSource": "operator"},
            "webstack:tls": {"mode": "provided"}})
        self.secrets = {"webstack:target.privateKey": host.keys.deploy.read_text(),
                        "webstack:tls.certificate": self.cert, "webstack:tls.privateKey": key}
        self.tls = ssl.create_default_context(cadata=self.cert)   # trusts exactly the test certificate
        self.notes_written: list[str] = []
        self.engine = EngineStack(PROJECT_DIR, STACK, state_dir, config=self.base, secrets=self.secrets)

    def up(self, **overrides: object):
        return self.engine.up(**overrides)

    def request(self, path: str, *, port: int = 443, method: str = "GET", body: Optional[str] = None
                ) -> tuple[int, dict[str, str], str]:
        """One HTTP/1.1 request to the host's edge; over TLS (port 443) verified as DOMAIN."""
        raw = socket.create_connection((self.host.ip, port), timeout=10)
        conn = self.tls.wrap_socket(raw, server_hostname=DOMAIN) if port == 443 else raw
        with conn:
            payload = body.encode() if body is not None else b""
            head = (f"{method} {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
            conn.sendall(head.encode() + payload)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        header_block, _, content = data.partition(b"\r\n\r\n")
        lines = header_block.decode(errors="replace").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, content.decode(errors="replace")

    def write_note(self, text: str) -> None:
        status, _, answer = self.request("/api/notes", method="POST", body=f'{{"text": "{text}"}}')
        assert status == 201, answer
        self.notes_written.append(text)

    def notes(self) -> str:
        status, _, answer = self.request("/api/notes")
        assert status == 200, answer
        return answer

    def access(self) -> SshAccess:
        """The operator-side files the program wrote for this stack (same options as its Provider)."""
        state = self.engine.work_dir / ".webstack" / STACK
        return SshAccess(host=self.host.ip, port=22, user="deploy", known_hosts=state / "known_hosts",
                         identity=key_path(self.engine.work_dir, STACK))

    def remote_docker(self, *args: str) -> str:
        access, wrapper = self.access(), self.state_dir / "ssh-wrapper"
        wrapper.mkdir(exist_ok=True)
        (wrapper / "ssh").write_text("#!/bin/sh\nexec /usr/bin/ssh " + shlex.join(access.options) + ' "$@"\n')
        (wrapper / "ssh").chmod(0o700)
        env = {"PATH": f"{wrapper}:/usr/bin:/bin", "HOME": str(Path.home())}
        result = subprocess.run(["docker", "-H", access.docker_host, *args], capture_output=True, text=True,
                                env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def health(self, names: list[str], settle_seconds: float = 40) -> dict[str, str]:
        """Each container's Docker health once none is "starting" any more (or the deadline passed): the release
        gate passes on the edge's probe, while an image's own HEALTHCHECK reports only after its interval."""
        deadline = time.monotonic() + settle_seconds
        while True:
            health = {name: self.remote_docker("inspect", "-f", "{{.State.Health.Status}}", name) for name in names}
            if "starting" not in health.values() or time.monotonic() > deadline:
                return health
            time.sleep(1)

    def running(self, role: str) -> list[str]:
        return sorted(self.remote_docker("ps", "-a", "--filter", f"label=webstack.stack={STACK}", "--filter",
                                         f"label=webstack.role={role}", "--format", "{{.Names}}").split())

    def loads(self) -> tuple[Load, Load]:
        allowed = [self.host.ip]
        # By address, asking for DOMAIN: the edge answers only its domain (421 for any other name).
        return (Load(f"https://{self.host.ip}/", RPS_PER_TARGET, 900, allowed_hosts=allowed,
                     host_header=DOMAIN).start(),
                Load(f"https://{self.host.ip}/api/notes", RPS_PER_TARGET, 900, allowed_hosts=allowed,
                     host_header=DOMAIN).start())


@pytest.fixture(scope="module")
def stack(hosts, tmp_path_factory, request):
    require_toolchain()
    host = hosts.create("prod")
    remote = RemoteStack(host, tmp_path_factory.mktemp("remotetest"))
    try:
        yield remote
    finally:
        show_figures(request, "remote", FIGURES)
        # hosts' teardown removes the host, its engine's volume and its network.


def test_1_prod_from_nothing_onto_a_fresh_host_over_ssh(stack):
    assert not stack.host.has_docker()
    result = stack.up(**{"webstack:release": "1.0.0"})
    FIGURES["prod from nothing (Docker installed, base image sent, 4 images built on the host)"] = \
        f"{result.seconds:.1f}s"
    created = set(result.names("create"))
    assert {"host-preflight", "host-bootstrap", "base-image-refresh"} <= created, result.steps
    health = stack.health(container_names(result.outputs))
    assert set(health.values()) == {"healthy"}, health
    status, headers, _ = stack.request("/")
    assert status == 200 and headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    status, headers, _ = stack.request("/", port=80)
    assert status == 308 and headers["location"] == f"https://{DOMAIN}/"
    stack.write_note("written on the remote host")
    again = stack.up(**{"webstack:release": "1.0.0"})
    FIGURES["no-change up"] = f"{again.seconds:.1f}s, {again.changes}"
    assert again.changed == 0, [step for step in again.steps if step[0] != "same"]


def test_2_a_release_over_ssh_keeps_serving(stack):
    loads = stack.loads()
    result = stack.up(**{"webstack:release": "1.0.1"})
    load = stop_all(loads)
    FIGURES["release 1.0.0->1.0.1"] = f"{result.seconds:.1f}s; {load.detail}"
    assert load.failed == 0, load.detail
    assert result.outputs["release"] == "1.0.1"
    assert stack.running("backend") == sorted(result.outputs["containers"]["backend"])
    assert "written on the remote host" in stack.notes()


def test_3_a_broken_release_fails_and_the_previous_one_keeps_serving(stack):
    loads = stack.loads()
    with pytest.raises(EngineFailed) as failed:
        stack.up(**{"webstack:release": "1.0.2", "webstack:backend.healthPath": "/no-such-path"})
    load = stop_all(loads)
    FIGURES["broken release 1.0.2"] = f"failed as expected; {load.detail}"
    assert "turned unhealthy" in failed.value.message and "--- last 50 log lines of" in failed.value.message, \
        failed.value.message[-3000:]
    assert not [urn for op, urn in failed.value.steps if op == "delete"], failed.value.steps
    assert load.failed == 0, load.detail
    assert stack.request("/")[0] == 200


def test_4_rolling_back_keeps_serving_and_keeps_the_rows(stack):
    loads = stack.loads()
    result = stack.up(**{"webstack:release": "1.0.0"})
    load = stop_all(loads)
    FIGURES["rollback to 1.0.0"] = f"{result.seconds:.1f}s; {load.detail}"
    assert load.failed == 0, load.detail
    assert result.outputs["release"] == "1.0.0"
    assert set(stack.health(container_names(result.outputs)).values()) == {"healthy"}
    assert stack.running("backend") == sorted(result.outputs["containers"]["backend"])
    assert "written on the remote host" in stack.notes()


def test_5_status_and_logs_reach_the_remote_host_over_the_pinned_ssh(stack):
    ops = functools.partial(stack.engine.ops, timeout=120)
    status = ops("status", "--json")
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)["services"]
    assert {r["service"] for r in rows} == {"edge-ports", "edge", "web", "backend", "database", "backup"}
    assert {r["health"] for r in rows if r["service"] != "edge-ports"} == {"healthy"}, rows
    assert "days left" in json.loads(status.stdout)["certificate"]
    FIGURES["ops status (ssh)"] = "\n" + ops("status").stdout
    logs = ops("logs", "database", "--tail", "20")
    assert logs.returncode == 0 and "webstack-remotetest-db" in logs.stdout, logs.stderr


def test_6_ops_run_on_the_remote_host_writes_over_the_socket_and_passes_the_exit_code_back(stack):
    """Issue 22: `python -m ops run` over the pinned SSH: a one-off container of the release on the host, its
    environment sent on stdin; it writes a note through the database socket and exits 5."""
    one_off = ("import psycopg2, sys; c = psycopg2.connect(''); c.cursor().execute("
               "\"INSERT INTO notes (text) VALUES ('written by ops run over ssh')\"); c.commit(); "
               "print('user', c.get_dsn_parameters()['user']); sys.exit(5)")
    done = stack.engine.ops("run", "--", "python3", "-c", one_off, timeout=180)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "user app" in done.stdout
    assert "written by ops run over ssh" in stack.notes()
    assert not stack.running("run")



def test_7_an_edge_upgrade_on_the_remote_host_at_200_requests_per_second_drops_none(stack):
    """Issue 20: a change to containers/edge (a webstack upgrade, the weekly base refresh) replaces the edge
    beside the serving one on the host (components/edge.py): not one of 200 requests/s fails."""
    nginx_conf = stack.engine.work_dir / "containers" / "edge" / "nginx.conf"
    nginx_conf.write_text(nginx_conf.read_text() + "# an edge upgrade (tests/live/test_remote_scenarios.py)\n")
    before = stack.running("edge")
    allowed = [stack.host.ip]
    loads = [Load(f"https://{stack.host.ip}{path}", rps, 600, allowed_hosts=allowed, host_header=DOMAIN).start()
             for path, rps in (("/", 160), ("/api/notes", 40))]
    try:
        result = stack.up(**{"webstack:release": "1.0.0"})
    finally:
        load = stop_all(loads)
    FIGURES["edge upgrade at 200 requests/s"] = f"{result.seconds:.1f}s; {load.detail}"
    assert f"webstack-{STACK}-edge" in result.names("replace"), result.steps
    assert stack.running("edge") == [result.outputs["containers"]["edge"]] != before
    assert load.failed == 0, load.detail
    assert load.total / (result.seconds + 2) >= 180
