"""Your own app, through the real engine: a backend that is not Python (Debian's nodejs and node-pg, no python3
and no curl in its image) deployed as a backend-only site with a secret, a generated secret, a release command
that migrates, an app volume and egress.

One stack (`apptest`, the dev stack's TLS on free loopback ports): a cold deploy, a second release under load
(the release command runs again; the volume's files and the generated secret stay), a release whose release
command fails (fast, with its output; the running release serves throughout), the secrets searched for in the
state, a preview, the image history and every log, and egress switched off again.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ops import rollback
from tests.live import streams
from tests.live.engine import EngineFailed
from tests.live.loadgen import Load, stop_all
from tests.live.support import remove_by_prefix, require_docker, show_figures
from tests.live.test_engine import require_toolchain
from tests.live.test_scenarios import TLS, LiveStack, deployed

pytestmark = pytest.mark.live
STACK = "apptest"
PREFIX = f"webstack-{STACK}-"
APP = Path(__file__).resolve().parent / "apps" / "node-backend"
API_TOKEN = "apptest-token-" + secrets.token_hex(16)   # the secret the test sets: searched for everywhere later
RPS = 30
BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=120).stdout


class AppStack(LiveStack):
    def __init__(self, directory: Path):
        super().__init__(directory, stack=STACK)
        self.engine.base_config.update({
            "webstack:frontend.enabled": False,
            "webstack:backend.context": str(APP),
            "webstack:backend.releaseCommand": ["node", "/app/migrate.js"],
            "webstack:backend.generatedSecrets": ["DJANGO_SECRET_KEY"],
            "webstack:backend.egress": True,
            "webstack:backend.volumes": {"media": "/app/media"},
            "webstack:backend.env": {"MEDIA_DIR": "/app/media"},
        })
        self.engine.base_secrets["webstack:backend.secrets.APP_API_TOKEN"] = API_TOKEN
        self.engine.base_secrets["webstack:generationKey"] = secrets.token_hex(32)
        self.outputs_seen: list[str] = []

    def release(self, release: str, **overrides: object):
        env = {"MEDIA_DIR": "/app/media", "APP_RELEASE": release, **overrides.pop("env", {})}
        result = self.up(**{"webstack:release": release, "webstack:backend.env": env}, **overrides)
        self.outputs_seen.append(result.output)
        return result

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, context=TLS, timeout=10) as response:
            body = response.read().decode()
            return json.loads(body) if response.headers.get_content_type() == "application/json" else body

    def send(self, method: str, path: str, text: str, headers: dict | None = None) -> int:
        req = urllib.request.Request(self.url + path, data=text.encode(), method=method, headers=headers or {})
        with urllib.request.urlopen(req, context=TLS, timeout=10) as response:
            return response.status

    def networks_of(self, container: str) -> set[str]:
        return set(json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container)))


class OutsideServer:
    """An HTTP server on "another host": a network namespace behind a veth pair, reached only through the host's
    routing (forwarding and NAT), as the internet would be. An address of the host itself would not do: Docker
    delivers a container's packets to any of the host's own addresses even from an internal network."""

    NAMESPACE, HOST_SIDE, NS_SIDE = f"{PREFIX}outside", "wsapp-out-h", "wsapp-out-n"
    HOST_IP, NS_IP = "10.253.77.1", "10.253.77.2"

    def __init__(self):
        self.close()   # an earlier run's leftovers
        steps = [["ip", "netns", "add", self.NAMESPACE],
                 ["ip", "link", "add", self.HOST_SIDE, "type", "veth", "peer", "name", self.NS_SIDE],
                 ["ip", "link", "set", self.NS_SIDE, "netns", self.NAMESPACE],
                 ["ip", "addr", "add", f"{self.HOST_IP}/30", "dev", self.HOST_SIDE],
                 ["ip", "link", "set", self.HOST_SIDE, "up"],
                 ["ip", "netns", "exec", self.NAMESPACE, "ip", "addr", "add", f"{self.NS_IP}/30", "dev", self.NS_SIDE],
                 ["ip", "netns", "exec", self.NAMESPACE, "ip", "link", "set", self.NS_SIDE, "up"],
                 ["ip", "netns", "exec", self.NAMESPACE, "ip", "link", "set", "lo", "up"]]
        for step in steps:
            run = subprocess.run(step, capture_output=True, text=True)
            if run.returncode != 0:
                self.close()
                problem = f"cannot set up a network namespace ({' '.join(step)}): {run.stderr.strip()}"
                if os.environ.get("CI"):
                    pytest.fail(problem)
                pytest.skip(problem)
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.NAMESPACE, sys.executable, "-m", "http.server", "--bind", self.NS_IP, "8080"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://{self.NS_IP}:8080/"
        deadline = time.monotonic() + 10
        while subprocess.run(["ip", "netns", "exec", self.NAMESPACE, sys.executable, "-c",
                              f"import urllib.request; urllib.request.urlopen('{self.url}', timeout=1)"],
                             capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "the outside server did not start"
            time.sleep(0.2)

    def close(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        subprocess.run(["ip", "link", "del", self.HOST_SIDE], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.NAMESPACE], capture_output=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    """Nothing of an earlier run before, nothing after: protected resources are unprotected for the destroy."""
    require_docker()
    require_toolchain()
    live = AppStack(tmp_path_factory.mktemp("apptest"))
    remove_by_prefix(PREFIX)
    yield live
    try:
        resources = live.engine.export().get("resources") or []
        for resource in resources:
            if resource.get("protect"):
                live.engine.cli("state", "unprotect", resource["urn"], "--yes")
        if resources:
            live.engine.destroy()
    finally:
        remove_by_prefix(PREFIX)
        show_figures(request, "own app", live.figures)


@pytest.fixture(scope="module")
def outside():
    server = OutsideServer()
    yield server
    server.close()


def test_1_a_node_backend_without_python_or_curl_deploys_with_secrets_migrations_a_volume_and_egress(stack, outside):
    result = stack.release("r1")
    stack.figures["cold deploy r1"] = f"{result.seconds:.1f}s, {result.changes}"
    backend = result.outputs["containers"]["backend"][0]
    assert result.outputs["containers"]["web"] is None and result.outputs["appVolumes"] == [f"{PREFIX}vol-media"]
    # A backend-only app builds no web image.
    assert not docker("image", "ls", "-q", "--filter", f"label=webstack.stack={STACK}", "--filter",
                      "label=webstack.role=web").split()

    # The image holds neither python nor curl: the gate probed it from the edge.
    image = docker("inspect", "-f", "{{.Image}}", backend).strip()
    stack.r1_image = image
    created = docker("create", image).strip()
    try:
        export = subprocess.Popen(["docker", "export", created], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
            names = [m.name for m in tar]
        export.wait()
    finally:
        docker("rm", created)
    assert "usr/bin/node" in names
    programs = [n for n in names if n.rsplit("/", 1)[0] in BIN_DIRS]
    assert not [n for n in programs if n.rsplit("/", 1)[-1].startswith(("python", "curl"))], "python or curl in image"
    for program in ("python3", "curl"):   # and the engine finds neither on the image's PATH
        run = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", program, image],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode != 0 and "executable file not found" in run.stderr, run.stderr

    # The page through the edge at / shows what the app wrote to PostgreSQL over the socket.
    assert stack.send("POST", "/notes", "written by the node app on r1") == 201
    assert "<li>written by the node app on r1</li>" in stack.get("/")
    assert stack.get("/release-runs") == ["r1"]   # the release command migrated, once

    # The secret and the generated secret reach the app; only their digests leave it.
    digests = stack.get("/secrets")
    assert digests["APP_API_TOKEN"] == sha256(API_TOKEN)
    assert digests["DJANGO_SECRET_KEY_LENGTH"] == 64 and digests["DJANGO_SECRET_KEY"] != sha256("")
    stack.generated_digest = digests["DJANGO_SECRET_KEY"]

    # The volume: the release command wrote into it with the same mounts, the app (uid 1001) writes too.
    assert stack.send("PUT", "/media/upload.txt", "uploaded on r1") == 201
    media = stack.get("/media")
    # The release command got the same secrets, byte for byte (it wrote their digests).
    ran_with = f"migrated r1 {sha256(API_TOKEN)} {digests['DJANGO_SECRET_KEY']}\n"
    assert media["uid"] == 1001 and media["files"] == {"release-r1.txt": ran_with, "upload.txt": "uploaded on r1"}

    # Routing: Host with its port, the scheme, and the client address nginx saw (not the one the client sent).
    req = urllib.request.Request(stack.url + "/request", headers={"X-Forwarded-For": "203.0.113.66"})
    with urllib.request.urlopen(req, context=TLS, timeout=10) as response:
        seen = json.loads(response.read())
    assert seen["host"] == f"localhost:{stack.https_port}" and seen["forwardedProto"] == "https", seen
    assert "203.0.113.66" not in seen["forwardedFor"] and "," not in seen["forwardedFor"], seen
    assert seen["path"] == "/request"

    # Egress: the backend reaches an address outside webstack's networks; the database has no way out.
    assert stack.get(f"/egress?url={outside.url}") == {"ok": True, "status": 200}
    assert f"{PREFIX}egress" in stack.networks_of(backend)
    assert stack.networks_of(result.outputs["containers"]["database"]) == {f"{PREFIX}data"}


def test_2_a_second_release_under_load_migrates_again_and_keeps_files_and_the_generated_secret(stack):
    loads = (Load(stack.url + "/", RPS, 600).start(), Load(stack.url + "/release-runs", RPS, 600).start())
    result = stack.release("r2")
    load = stop_all(loads)
    stack.figures["release r1->r2 under load"] = \
        f"{result.seconds:.1f}s, {load.total} requests, {load.failed} failed ({load.detail})"
    assert load.failed == 0, load.detail
    assert load.total / (result.seconds + 2) >= 40
    assert stack.get("/release-runs") == ["r1", "r2"]
    assert "<li>written by the node app on r1</li>" in stack.get("/")
    media = stack.get("/media")["files"]
    assert media["upload.txt"] == "uploaded on r1"
    assert media["release-r2.txt"] == f"migrated r2 {sha256(API_TOKEN)} {stack.generated_digest}\n"
    digests = stack.get("/secrets")
    assert digests["DJANGO_SECRET_KEY"] == stack.generated_digest and digests["APP_API_TOKEN"] == sha256(API_TOKEN)
    assert stack.containers("release-command") == []   # the one-off container is gone


ONE_OFF = """
const crypto = require('crypto'); const fs = require('fs'); const { Client } = require('pg');
(async () => {
  const client = new Client(); await client.connect();
  await client.query('INSERT INTO notes (text) VALUES ($1)', ['written by ops run']); await client.end();
  fs.writeFileSync(process.env.MEDIA_DIR + '/ops-run.txt', 'written by ops run');
  console.log('token digest ' + crypto.createHash('sha256').update(process.env.APP_API_TOKEN).digest('hex'));
  process.exit(7);
})();
"""


def test_2b_ops_run_is_a_one_off_container_of_the_release_with_its_secrets_socket_and_volume(stack):
    """Issue 22: `python -m ops run -- CMD`: the command reads a secret, writes to the database over the socket
    and to the app volume; its output streams back, its exit code is the command's, and it leaves nothing."""
    done = stack.engine.ops("run", "--", "node", "-e", ONE_OFF)
    assert done.returncode == 7, done.stdout + done.stderr
    assert f"token digest {sha256(API_TOKEN)}" in done.stdout
    assert API_TOKEN not in done.stdout + done.stderr
    assert "<li>written by ops run</li>" in stack.get("/")
    assert stack.get("/media")["files"]["ops-run.txt"] == "written by ops run"
    assert stack.containers("run") == []


def test_3_a_failing_release_command_fails_the_update_fast_with_its_output_while_r2_serves(stack):
    events = subprocess.Popen(["docker", "events", "--filter", f"label=webstack.stack={STACK}", "--filter",
                               "label=webstack.role=release-command", "--filter", "event=die", "--format",
                               "{{.TimeNano}}"], stdout=subprocess.PIPE, text=True)
    loads = (Load(stack.url + "/", RPS, 600).start(), Load(stack.url + "/release-runs", RPS, 600).start())
    try:
        with pytest.raises(EngineFailed) as failed:
            stack.release("r3", env={"FAIL_MIGRATION": "r3-broken"})
        failed_at = time.time()
    finally:
        load = stop_all(loads)
        events.terminate()
    exits = [int(line) / 1e9 for line in events.communicate(timeout=10)[0].split()]
    message = failed.value.message
    assert exits, "the release command's container never ran"
    gap = failed_at - exits[-1]
    stack.figures["failing release command"] = \
        f"update failed {gap:.1f}s after the command exited ({failed.value.seconds:.1f}s in all); " \
        f"{load.total} requests, {load.failed} failed"
    assert gap <= 10, gap
    assert "exited with 3" in message and 'relation "no_such_table" does not exist (r3-broken)' in message, message
    assert "migrate: applying 0002_broken" in message, message
    assert load.failed == 0, load.detail
    assert not [c for c in stack.containers("backend") if "-r3-" in c]   # r3's backends never started
    assert stack.containers("release-command") == []
    assert stack.get("/release-runs") == ["r1", "r2"]


def test_3b_a_release_command_that_never_exits_fails_at_its_timeout_with_its_real_argv_while_r2_serves(stack):
    """Issue 20: a release command that never exits held `pulumi up` for 7 minutes. With
    backend.releaseTimeoutSeconds it fails the update at the timeout, naming the argv the container ran."""
    forever = ["node", "-e", "console.log('waiting forever'); setInterval(() => {}, 1000)"]
    loads = (Load(stack.url + "/", RPS, 600).start(), Load(stack.url + "/release-runs", RPS, 600).start())
    try:
        with pytest.raises(EngineFailed) as failed:
            stack.release("r3-hang", **{"webstack:backend.releaseCommand": forever,
                                        "webstack:backend.releaseTimeoutSeconds": 15})
    finally:
        load = stop_all(loads)
    message = failed.value.message
    stack.figures["release command that never exits"] = \
        f"update failed after {failed.value.seconds:.1f}s (timeout 15 s); {load.total} requests, {load.failed} failed"
    assert "did not finish within 15 s (backend.releaseTimeoutSeconds)" in message, message
    assert 'the container ran: "node" ["-e",' in message and "waiting forever" in message, message
    assert failed.value.seconds < 15 + 60, failed.value.seconds
    assert load.failed == 0, load.detail
    assert stack.containers("release-command") == []
    assert not [c for c in stack.containers("backend") if "-r3-hang-" in c]
    assert stack.get("/release-runs") == ["r1", "r2"]


def test_4_the_secrets_never_appear_in_state_preview_image_history_or_logs(stack):
    backend = stack.containers("backend")[0]
    generated = docker("exec", backend, "node", "-e", "process.stdout.write(process.env.DJANGO_SECRET_KEY)")
    assert sha256(generated) == stack.generated_digest
    plan = stack.engine.preview(**{"webstack:release": "r4",
                                   "webstack:backend.env": {"MEDIA_DIR": "/app/media", "APP_RELEASE": "r4"}})
    assert "[secret]" in plan.output
    places = {"preview": plan.output, "engine output": "\n".join(stack.outputs_seen)}
    for path in stack.engine.checkpoint_files():
        places[f"state {path.name}"] = path.read_text(errors="replace")
    places["stack file"] = stack.engine.stack_file.read_text()
    image = docker("inspect", "-f", "{{.Image}}", backend).strip()
    places["image history"] = docker("image", "history", "--no-trunc", image)
    places["image config"] = docker("image", "inspect", image)
    for container in docker("ps", "-a", "--filter", f"label=webstack.stack={STACK}", "--format", "{{.Names}}").split():
        logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=60)
        places[f"log of {container}"] = logs.stdout + logs.stderr
    assert len(places) > 8
    for secret in (API_TOKEN, generated):
        leaked = [where for where, text in places.items() if secret in text]
        assert not leaked, leaked


def test_5_without_egress_the_backend_has_no_way_out(stack, outside):
    result = stack.release("r5", **{"webstack:backend.egress": False})
    backend = result.outputs["containers"]["backend"][0]
    answer = stack.get(f"/egress?url={outside.url}")
    assert answer["ok"] is False, answer
    assert f"{PREFIX}egress" not in stack.networks_of(backend)
    assert docker("network", "ls", "-q", "--filter", f"name=^{PREFIX}egress$").strip() == ""
    assert stack.get("/release-runs") == ["r1", "r2", "r5"]


def test_5b_a_backend_only_app_rolls_back_to_r1s_image_and_config(stack, outside):
    result = stack.engine.ops("rollback", "--to", str(rollback.version_of(stack.engine.history(), "r1")), "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "(release r1, backend " in result.stdout and ", web " not in result.stdout   # no web image to pin
    stack.figures["rollback to r1 (backend only)"] = re.search(r"the update took [0-9.]+ s", result.stdout).group(0)
    backend = stack.engine.stack.outputs()["containers"].value["backend"][0]
    assert docker("inspect", "-f", "{{.Image}}", backend).strip() == stack.r1_image
    assert stack.get(f"/egress?url={outside.url}")["ok"] is True          # r1's config: egress on again
    assert stack.get("/release-runs")[-1] == "r1"                        # its release command ran again


# Issue 22: the edge settings a real app needs (webstack:edge).
EDGE = {"webstack:edge.maxBodyMb": 25, "webstack:edge.websocketPaths": ["/ws"],
        "webstack:edge.streamingPaths": ["/events"], "webstack:edge.redirects": ["www.localhost"]}
CLIENT_A, CLIENT_B = "203.0.113.7", "198.51.100.9"   # documentation addresses, as a proxy in front would name them


def raw_tls(stack: AppStack, request: bytes) -> bytes:
    """What the edge answers to bytes no HTTP client would send."""
    with socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw:
        with TLS.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            return answer


def writes(stack: AppStack, client: str, count: int) -> list[int]:
    """`count` note writes at once (10 at a time), as a trusted proxy in front of the edge forwards them for
    `client`; their statuses."""
    def write(i: int) -> int:
        req = urllib.request.Request(stack.url + "/notes", data=f"from {client} #{i}".encode(), method="POST",
                                     headers={"X-Forwarded-For": client})
        try:
            with urllib.request.urlopen(req, context=TLS, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        return list(pool.map(write, range(count)))


def test_5c_uploads_websockets_event_streams_proxies_and_redirects_through_the_edge(stack):
    """Issue 22, item 2: a 20 MB upload with the body limit raised; a WebSocket and an event stream that live
    across a release and are closed by the old generation's goodbye, not cut; a forwarded client address believed
    only from a trusted proxy (its rate limit and its log line then name the real client); www. redirected; the
    edge's own error pages without "nginx"."""
    stack.release("r6", **EDGE)
    seen = stack.get("/request")
    spoofed = urllib.request.Request(stack.url + "/request", headers={"X-Forwarded-For": CLIENT_A})
    with urllib.request.urlopen(spoofed, context=TLS, timeout=10) as response:
        untrusted = json.loads(response.read())
    assert untrusted["forwardedFor"] == seen["forwardedFor"] != CLIENT_A, (seen, untrusted)   # not believed
    proxy = seen["forwardedFor"]   # the address the edge sees the tests' connections come from

    status, uploaded = streams.upload(stack.url + "/upload", 20 * 1000 * 1000, context=TLS, host="localhost")
    assert (status, uploaded) == (200, {"bytes": 20_000_000, "sha256": streams.expected_sha256(20_000_000)})
    status, refused = streams.upload(stack.url + "/upload", 26 * 1024 * 1024, context=TLS, host="localhost")
    assert status == 413 and "nginx" not in str(refused).lower(), (status, refused)
    bad = raw_tls(stack, b"BAD\r\n\r\n")   # no HTTP request line at all
    assert bad.startswith(b"HTTP/1.1 400") and b"nginx" not in bad.lower(), bad[:500]

    events = streams.EventStream(stack.url + "/events", context=TLS, host="localhost")
    ws = streams.WebSocket(f"wss://127.0.0.1:{stack.https_port}/ws", context=TLS, host="localhost")
    assert json.loads(ws.recv()[1])["hello"] == "r6"
    ws.send("before the release")
    assert ws.recv()[1] == "echo:before the release"
    events.wait_for("tick", count=3)
    stack.release("r7", **EDGE, **{"webstack:edge.trustedProxies": [proxy]})
    # The old generation said goodbye on both before it stopped: nothing was cut.
    assert events.wait_ended(timeout=60) == "clean" and json.loads(events.of("bye")[-1].data)["release"] == "r6"
    assert ws.wait_end(timeout=60) in ("eof", "timeout") and (ws.close_code, ws.close_reason) == (1001, "release ends")
    events.close()
    fresh = streams.WebSocket(f"wss://127.0.0.1:{stack.https_port}/ws", context=TLS, host="localhost")
    assert json.loads(fresh.recv()[1])["hello"] == "r7"
    fresh.close()

    # The proxy is trusted now: its X-Forwarded-For names the client, for the app, the rate limit and the log.
    with urllib.request.urlopen(spoofed, context=TLS, timeout=10) as response:
        assert json.loads(response.read())["forwardedFor"] == CLIENT_A
    burst = writes(stack, CLIENT_A, 40)
    other = writes(stack, CLIENT_B, 5)
    assert 429 in burst and burst.count(201) >= 20 and other == [201] * 5, (burst, other)
    edge = stack.engine.stack.outputs()["containers"].value["edge"]
    assert f"{CLIENT_A} - " in docker("logs", "--tail", "200", edge), "the access log names the proxy, not the client"

    moved = raw_tls(stack, b"GET /notes?x=1 HTTP/1.1\r\nHost: www.localhost\r\nConnection: close\r\n\r\n")
    assert moved.startswith(b"HTTP/1.1 308"), moved[:300]
    assert f"Location: https://localhost:{stack.https_port}/notes?x=1".encode() in moved, moved[:500]
    assert b"nginx" not in moved.lower()
    stack.figures["edge settings"] = (f"20 MB upload ok; 26 MiB refused with the edge's 413; WebSocket and event "
                                      f"stream closed by r6's goodbye across the release; writes from one client "
                                      f"{burst.count(201)} accepted / {burst.count(429)} limited, another's 5 accepted")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, request):
    """The reference images (Python backend, static frontend under /api's prefix) under the same gate."""
    yield from deployed(lambda: LiveStack(tmp_path_factory.mktemp("appref"), stack="appref"), request,
                        "own app (reference images)")


def test_6_the_reference_images_pass_the_gate_from_the_edge_and_a_wrong_health_path_fails_fast(reference):
    from components.hardening import START_PERIOD_SECONDS

    result = reference.up(**{"webstack:release": "r1"})
    reference.figures["cold deploy (reference images)"] = f"{result.seconds:.1f}s"
    reference.write_note("behind the gate that probes from the edge")
    assert "behind the gate that probes from the edge" in reference.notes()
    loads = reference.load()
    with pytest.raises(EngineFailed) as failed:
        reference.up(**{"webstack:release": "r2", "webstack:backend.healthPath": "/no-such-path"})
    load = stop_all(loads)
    message = failed.value.message
    gate_seconds = int(message.split("(failed after ")[1].split(" s)")[0])
    reference.figures["never-healthy release (reference images)"] = \
        f"gate failed after {gate_seconds}s; {load.total} requests, {load.failed} failed"
    assert "turned unhealthy" in message and "/no-such-path from the edge: curl: (22)" in message, message
    assert "--- last 50 log lines of" in message
    assert gate_seconds <= START_PERIOD_SECONDS + 10, message
    assert load.failed == 0, load.detail
    assert not [c for c in reference.containers("backend") if "-r2-" in c]
    loads = reference.load()
    good = reference.up(**{"webstack:release": "r3"})
    load = stop_all(loads)
    reference.figures["release r1->r3 under load (reference images)"] = \
        f"{good.seconds:.1f}s, {load.total} requests, {load.failed} failed ({load.detail})"
    assert load.failed == 0, load.detail
    assert "behind the gate that probes from the edge" in reference.notes()
