"""RemoteHost's scripts, run for real against fresh test hosts (tests/live/hosts.py) the way the program runs them.

- the preflight: `/bin/sh -c <preflight_script()>` on this machine with SshAccess.environment(), as the
  `host-preflight` local.Command does;
- the bootstrap: `ssh <the Provider's options> deploy@HOST <bootstrap_command()>` with the pinned host key, as the
  `host-bootstrap` remote.Command does (pulumi-command sends the same command line over its own ssh client);
- the base-image transfer: `/bin/sh -c <refresh_script()>` for baseImageSource operator, as the
  `base-image-refresh` local.Command does;
- `docker -H ssh://...` through an `ssh` wrapper that adds the Provider's exact ssh_opts (the docker CLI cannot
  take ssh options; the Provider passes them to the same connhelper).
The bootstrap runs only when the preflight succeeded, as its depends_on makes Pulumi do.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from components.base_image import BUILD_SCRIPT, base_image_id, refresh_environment, refresh_script
from components.local_files import SshAccess
from components.remote_host import MIN_DOCKER_VERSION, bootstrap_command, preflight_script
from components.settings import Settings
from tests.stack_config import PROJECT_DIR
from tests.live.hosts import ALPINE_OS_RELEASE, BASE_IMAGE, TestHost, fingerprint, hosts  # noqa: F401 (fixture)

pytestmark = pytest.mark.live
TIMINGS: dict[str, float] = {}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error(self) -> str:
        """The last `error:` line: the one message a failed step leaves for the operator."""
        lines = [line for line in self.stderr.splitlines() if line.startswith("error:")]
        return lines[-1] if lines else ""

    def __str__(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run(argv: list[str], env: Optional[dict] = None, timeout: float = 600) -> Run:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started)


def preflight(access: SshAccess) -> Run:
    env = {**os.environ, **access.environment(WEBSTACK_MIN_DOCKER_VERSION=MIN_DOCKER_VERSION)}
    return run(["/bin/sh", "-c", preflight_script()], env=env, timeout=access.connect_timeout * 3 + 60)


def ssh_argv(access: SshAccess, command: str) -> list[str]:
    return ["ssh", *access.options, "-p", str(access.port), "--", f"{access.user}@{access.host}", command]


def bootstrap(settings: Settings, access: SshAccess) -> Run:
    return run(ssh_argv(access, bootstrap_command(settings)), timeout=900)


def prepare(settings: Settings, access: SshAccess) -> tuple[Run, Optional[Run]]:
    """The preflight, then the bootstrap only if the preflight passed (the program's dependency)."""
    checked = preflight(access)
    return checked, (bootstrap(settings, access) if checked.returncode == 0 else None)


def send_base_image(settings: Settings, access: SshAccess) -> Run:
    """The base-image refresh with baseImageSource operator. Its limit is 90 days, so that a test never rebuilds
    this machine's base image (the build script leaves a younger one alone)."""
    operator = settings.model_copy(update={
        "baseImage": BASE_IMAGE, "baseImageMaxAgeDays": 90,
        "target": settings.target.model_copy(update={"baseImageSource": "operator"})})
    env = {**os.environ, **refresh_environment(operator, access),
           "WEBSTACK_BUILD_SCRIPT": str(PROJECT_DIR / BUILD_SCRIPT)}   # the settings' project is a copy without it
    return run(["/bin/sh", "-c", refresh_script(operator)], env=env, timeout=600)


def changes(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("changed:")]


def docker_over_ssh(access: SshAccess, wrapper_dir: Path, *args: str, timeout: float = 300) -> Run:
    """`docker -H ssh://...` with an `ssh` first on PATH that adds the Provider's exact ssh options."""
    wrapper_dir.mkdir(exist_ok=True)
    wrapper = wrapper_dir / "ssh"
    wrapper.write_text("#!/bin/sh\nexec /usr/bin/ssh " + shlex.join(access.options) + ' "$@"\n')
    wrapper.chmod(0o700)
    env = {**os.environ, "PATH": f"{wrapper_dir}:{os.environ['PATH']}", "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONTEXT", None)
    return run(["docker", "-H", access.docker_host, *args], env=env, timeout=timeout)


# --- fixtures ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def report_timings():
    yield
    if TIMINGS:
        print("\nremote host timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))


@pytest.fixture
def project(tmp_path) -> Path:
    """Where the program would keep its operator-side files (.webstack/<stack>/known_hosts, deploy_key)."""
    return tmp_path / "project"


@pytest.fixture(scope="module")
def bare(hosts) -> TestHost:
    """A host that never gets prepared: it serves the tests where the preflight must refuse."""
    return hosts.create("bare", engine=False)


# --- (a) a fresh host, (e) docker over ssh:// with the Provider's options ------------------------------------

@pytest.fixture(scope="class")
def fresh(hosts, tmp_path_factory):
    """A fresh host with room for an engine, removed after TestFreshHost (one nested engine at a time)."""
    host = hosts.create("fresh")
    settings, access = host.access(tmp_path_factory.mktemp("fresh-project"), stack="prod")
    yield host, settings, access
    hosts.remove(host)


@pytest.fixture(scope="class")
def first_run(fresh) -> tuple[Run, Run]:
    """The preflight and the first bootstrap on the fresh host, run once for the class."""
    host, settings, access = fresh
    assert not host.has_docker(), "the fixture host must start without Docker"
    checked, prepared = prepare(settings, access)
    assert checked.returncode == 0, str(checked)
    assert prepared is not None
    TIMINGS["bootstrap from a fresh host"] = prepared.seconds
    return checked, prepared


class TestFreshHost:
    def test_preflight_accepts_the_fresh_host_and_changes_nothing(self, first_run):
        checked, _ = first_run
        assert "Debian GNU/Linux 12 (bookworm)" in checked.stdout
        assert "Docker not installed yet" in checked.stdout
        assert "matches the pin" in checked.stdout

    def test_bootstrap_installs_docker_and_the_engine_answers(self, fresh, first_run):
        host, settings, access = fresh
        _, prepared = first_run
        assert prepared.returncode == 0, str(prepared)
        assert any("installed docker.io" in line for line in changes(prepared.stdout)), str(prepared)
        assert prepared.stdout.rstrip().endswith(f"bootstrap: {len(changes(prepared.stdout))} change(s)")
        # The deploy user's next session is in the docker group and reaches the engine without sudo.
        engine = run(ssh_argv(access, "docker version --format '{{.Server.Version}}'"))
        assert engine.returncode == 0 and engine.stdout.strip().startswith("20.10"), str(engine)
        listing = host.exec("stat", "-c", "%n %U:%G %a", "/srv/webstack", "/srv/webstack/prod",
                            "/srv/webstack/prod/backups", "/srv/webstack/prod/releases").stdout.split("\n")
        assert listing[:4] == ["/srv/webstack root:root 755", "/srv/webstack/prod deploy:deploy 750",
                               "/srv/webstack/prod/backups deploy:deploy 750",
                               "/srv/webstack/prod/releases deploy:deploy 750"]
        assert '"max-size": "10m"' in host.exec("cat", "/etc/docker/daemon.json").stdout
        # A fresh Debian sshd allows passwords and root with a key: the bootstrap says so, and changes neither.
        assert "warning: sshd allows password logins" in prepared.stderr
        assert "warning: sshd allows root logins" in prepared.stderr

    def test_second_run_changes_nothing_and_says_so(self, fresh, first_run):
        host, settings, access = fresh
        again = bootstrap(settings, access)
        TIMINGS["bootstrap re-run (no change)"] = again.seconds
        assert again.returncode == 0, str(again)
        assert changes(again.stdout) == []
        assert again.stdout.rstrip().endswith("bootstrap: nothing to change")
        checked = preflight(access)
        assert checked.returncode == 0 and "Docker 20.10" in checked.stdout, str(checked)

    def test_docker_over_ssh_with_the_providers_exact_options(self, fresh, first_run, tmp_path):
        host, settings, access = fresh
        answer = docker_over_ssh(access, tmp_path / "bin", "version", "--format", "{{.Server.Version}}")
        assert answer.returncode == 0 and answer.stdout.strip().startswith("20.10"), str(answer)
        # The same options with a different pinned key: docker never reaches the engine.
        _, wrong = host.access(tmp_path / "wrong", stack="prod", host_key=host.keys.wrong_host_public)
        refused = docker_over_ssh(wrong, tmp_path / "bin-wrong", "version")
        assert refused.returncode != 0 and "Host key verification failed" in refused.stderr, str(refused)

    def test_base_image_from_the_operator_then_images_build_on_the_host(self, fresh, first_run, tmp_path):
        host, settings, access = fresh
        sent = send_base_image(settings, access)
        TIMINGS["base image sent from the operator"] = sent.seconds
        assert sent.returncode == 0, str(sent)
        assert "MiB) from this machine's engine" in sent.stdout and "changed: " in sent.stdout
        assert "copied" in sent.stderr   # dd's progress lines
        local_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", BASE_IMAGE], capture_output=True,
                                  text=True, check=True).stdout.strip()
        assert base_image_id(sent.stdout) == local_id       # the ID every image's triggers get
        again = send_base_image(settings, access)
        assert again.returncode == 0 and "nothing to send" in again.stdout and "changed:" not in again.stdout
        assert base_image_id(again.stdout) == local_id
        # A build on the host's engine over ssh:// FROM the base image, with no registry anywhere.
        context = tmp_path / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo built-on-host > /marker\n")
        built = docker_over_ssh(access, tmp_path / "bin", "build", "-q", "-t", "wst-host-probe:1", str(context))
        assert built.returncode == 0, str(built)
        ran = docker_over_ssh(access, tmp_path / "bin", "run", "--rm", "wst-host-probe:1", "cat", "/marker")
        assert ran.returncode == 0 and ran.stdout.strip() == "built-on-host", str(ran)


# --- (b) interrupted half-way -----------------------------------------------------------------------------

def descendants(host: TestHost, root_pattern: str) -> tuple[list[int], str]:
    """PIDs of the first process whose command line starts with root_pattern and of all its descendants."""
    table = host.exec("ps", "-eo", "pid=,ppid=,args=").stdout
    rows = [line.split(None, 2) for line in table.splitlines() if len(line.split(None, 2)) == 3]
    roots = [int(pid) for pid, _, args in rows if args.startswith(root_pattern)]
    if not roots:
        return [], table
    found, frontier = [roots[0]], [roots[0]]
    while frontier:
        children = [int(pid) for pid, ppid, _ in rows if int(ppid) in frontier]
        found += children
        frontier = children
    return found, table


def test_bootstrap_interrupted_while_apt_runs_is_completed_by_the_next_run(hosts, tmp_path):
    host = hosts.create("interrupted")
    try:
        settings, access = host.access(tmp_path, stack="prod")
        assert preflight(access).returncode == 0
        connection = subprocess.Popen(ssh_argv(access, bootstrap_command(settings)), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        # Wait until dpkg is unpacking, then kill the whole ssh session on the host (the sshd session and
        # everything under it: sudo, apt-get, dpkg) at once, as a dropped host or a killed session would.
        deadline, killed, table = time.monotonic() + 600, [], ""
        while time.monotonic() < deadline and connection.poll() is None:
            table = host.exec("ps", "-eo", "args=").stdout
            if any(line.startswith("/usr/bin/dpkg") and "--unpack" in line for line in table.splitlines()):
                time.sleep(0.5)
                killed, table = descendants(host, "sshd: deploy [priv]")
                host.exec("kill", "-9", *map(str, killed))
                break
            time.sleep(0.2)
        try:
            output, _ = connection.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            connection.kill()
            output, _ = connection.communicate()
        assert killed, f"never saw dpkg unpacking; bootstrap output:\n{output}\n{table}"
        assert connection.returncode == 255, output   # ssh: the connection died
        state = host.exec("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "docker.io").stdout
        assert not state.startswith("ii"), f"docker.io was fully installed before the interruption: {state!r}"
        broken = host.exec("dpkg", "--audit").stdout
        assert broken, "dpkg reports nothing half-done: the kill did not interrupt the installation"

        resumed = bootstrap(settings, access)
        TIMINGS["bootstrap after an interruption"] = resumed.seconds
        assert resumed.returncode == 0, str(resumed)
        assert "changed: finished an interrupted package installation" in resumed.stdout, str(resumed)
        assert any(line.startswith("changed: installed docker.io") or line.startswith("ok: Docker")
                   for line in resumed.stdout.splitlines()), str(resumed)
        engine = run(ssh_argv(access, "docker info --format '{{.ServerVersion}}'"))
        assert engine.returncode == 0, str(engine)
        assert host.exec("dpkg", "--audit").stdout == ""
        final = bootstrap(settings, access)
        assert final.returncode == 0 and final.stdout.rstrip().endswith("bootstrap: nothing to change"), str(final)
    finally:
        hosts.remove(host)


# --- (c) wrong pinned host key ---------------------------------------------------------------------------

def test_wrong_host_key_names_both_fingerprints_and_nothing_runs_on_the_host(bare, project):
    log_before = bare.sshd_log()
    settings, access = bare.access(project, host_key=bare.keys.wrong_host_public)
    pinned = access.known_hosts.read_text()
    checked, prepared = prepare(settings, access)
    assert checked.returncode != 0 and prepared is None
    expected = fingerprint(bare.keys.directory / "wrong_host_key.pub")
    presented = fingerprint(bare.keys.host_private.with_suffix(".pub"))
    assert checked.error.startswith(f"error: host key mismatch: {bare.ip} port 22 presented"), str(checked)
    assert f"presented {presented} (ED25519)" in checked.error and f"pins {expected} (ED25519)" in checked.error
    assert access.known_hosts.read_text() == pinned          # ssh never rewrote the pin
    new_log = bare.sshd_log()[len(log_before):]
    assert "Accepted publickey" not in new_log and not bare.has_docker()


# --- (d) each failure its own message, within the timeout --------------------------------------------------

def test_unreachable_port_is_named(bare, project):
    _, access = bare.access(project, port=2222)
    checked = preflight(access)
    assert checked.error == (f"error: unreachable: {bare.ip} port 2222 refused the connection; nothing listens "
                             "there (is sshd running? is target.port right?)"), str(checked)
    assert checked.seconds < access.connect_timeout + 5


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never says a word (a hung sshd, a black-holing proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_silent_host_times_out_with_its_own_message(bare, project, silent_port):
    _, access = bare.access(project, host="127.0.0.1", port=silent_port, connect_timeout=2)
    checked = preflight(access)
    assert checked.error.startswith(f"error: timeout: no answer from 127.0.0.1 port {silent_port} within 2 s"), \
        str(checked)
    assert checked.seconds < 2 * 3 + 30


def test_refused_key_names_the_user_and_the_key(bare, project):
    _, access = bare.access(project, private_key=bare.keys.stranger)
    checked = preflight(access)
    stranger = fingerprint(bare.keys.stranger)
    assert checked.error == (f"error: permission denied: {bare.ip} port 22 refused user 'deploy' with key "
                             f"{access.identity} ({stranger}). Add its public key to ~deploy/.ssh/authorized_keys "
                             "on the host, or fix target.user / target.privateKey."), str(checked)
    assert checked.seconds < 15


def test_unsupported_operating_system_is_named_and_nothing_is_changed(hosts, project):
    alpine = hosts.create("alpine", os_release=ALPINE_OS_RELEASE, engine=False)
    settings, access = alpine.access(project)
    checked, prepared = prepare(settings, access)
    assert checked.error == ("error: unsupported operating system: Alpine Linux v3.20 (ID=alpine, "
                             "VERSION_ID=3.20.3); supported: Debian 12, Ubuntu 22.04, Ubuntu 24.04"), str(checked)
    assert prepared is None and not alpine.has_docker()
    # The bootstrap refuses on its own too (defence in depth: it may be run by hand).
    refused = bootstrap(settings, access)
    assert refused.returncode != 0 and refused.error.startswith("error: unsupported operating system: Alpine")
    assert changes(refused.stdout) == []
    hosts.remove(alpine)


def test_missing_passwordless_sudo_is_named(hosts, project):
    host = hosts.create("nosudo", sudo=False, engine=False)
    _, access = host.access(project)
    checked = preflight(access)
    assert checked.error.startswith("error: no passwordless sudo: user deploy on nosudo needs it"), str(checked)
    hosts.remove(host)
