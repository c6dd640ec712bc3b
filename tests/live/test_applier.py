"""The test applier behaves like `pulumi up` on a real engine: a tiny program (a network, a protected and
retained volume, a container from the offline base image with a health check and wait=True) is deployed,
changed and torn down, and each step is checked against Docker itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.applier import ApplyFailed, Deployment
from tests.stack_config import PROJECT_DIR
from tests.applier.fixtures import apl_prefix, docker_engine, local_sshd, write_program  # noqa: F401 (fixtures)

live = pytest.mark.live   # needs a Docker engine; the load generator test needs only loopback

PROGRAM = '''
import pulumi, pulumi_docker as docker
cfg = pulumi.Config()
p = cfg.require("prefix")
net = docker.Network("net", name=f"{p}-net", internal=True)
vol = docker.Volume("data", name=f"{p}-data",
                    labels=[docker.VolumeLabelArgs(label="wst-apl.label", value=cfg.get("volumeLabel") or "a")],
                    opts=pulumi.ResourceOptions(protect=True, retain_on_delete=True))
if cfg.get_bool("withExtra"):
    docker.Network("extra", name=f"{p}-extra")
gen = cfg.get("generation") or "g1"
extra_fields = {"domainname": "example.test"} if cfg.get_bool("unsupported") else {}
if cfg.get_bool("readOnlyUpload"):
    extra_fields = {"read_only": True, "uploads": [docker.ContainerUploadArgs(file="/etc/app.conf", content="x")]}
app = docker.Container(
    f"app-{gen}", name=f"{p}-app-{gen}", image="debian:bookworm-slim", command=["sleep", "infinity"],
    envs=[f"TAG={cfg.get('tag') or 'a'}"],
    healthcheck=docker.ContainerHealthcheckArgs(tests=["CMD", "true" if cfg.get_bool("healthy", True) else "false"],
                                                interval="1s", timeout="2s", retries=2),
    wait=True, wait_timeout=cfg.get_int("waitTimeout") or 30, destroy_grace_seconds=1,
    mounts=[docker.ContainerMountArgs(type="volume", source=vol.name, target="/data")],
    networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=net.name, aliases=["app"])],
    **extra_fields)
pulumi.export("container", app.name)
pulumi.export("volume", vol.name)
'''


def inspect(kind: str, name: str) -> dict | None:
    proc = subprocess.run(["docker", kind, "inspect", name], capture_output=True, text=True)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


class Tiny:
    """The tiny program of one test: deploy it with config changes, look at what Docker has."""

    def __init__(self, tmp_path: Path, prefix: str):
        self.project = write_program(tmp_path / "program", "wstapl", PROGRAM)
        self.state_dir, self.prefix = tmp_path / "state", prefix

    def deployment(self, refresh: bool = False, **config: object) -> Deployment:
        overrides = {"wstapl:prefix": self.prefix, **{f"wstapl:{k}": v for k, v in config.items()}}
        return Deployment(self.project, "test", self.state_dir, config_overrides=overrides, refresh=refresh)

    def up(self, refresh: bool = False, **config: object):
        return self.deployment(refresh, **config).up()

    def container(self, generation: str = "g1") -> dict | None:
        return inspect("container", f"{self.prefix}-app-{generation}")


@pytest.fixture
def tiny(tmp_path: Path, apl_prefix: str) -> Tiny:
    return Tiny(tmp_path, apl_prefix)


@live
def test_a_first_run_creates_everything_and_a_rerun_without_changes_is_all_same(tiny):
    first = tiny.up()
    assert {op for op, _ in first.operations} == {"create"}
    assert first.outputs == {"container": f"{tiny.prefix}-app-g1", "volume": f"{tiny.prefix}-data"}
    state = tiny.container()["State"]
    assert state["Running"] and state["Health"]["Status"] == "healthy"
    again = tiny.up(refresh=True)
    assert {op for op, _ in again.operations} == {"same"}, again.operations


@live
def test_an_input_change_replaces_the_container_delete_first(tiny):
    tiny.up()
    old_id = tiny.container()["Id"]
    result = tiny.up(tag="b")
    assert [urn.rsplit("::", 1)[1] for urn in result.ops("replace")] == ["app-g1"]
    new = tiny.container()
    # Same fixed name: the new container could only be created because the old one was deleted first.
    assert new["Id"] != old_id and "TAG=b" in new["Config"]["Env"]
    assert inspect("container", old_id) is None


@live
def test_a_field_the_applier_does_not_carry_out_fails_the_run_loudly(tiny):
    tiny.up()
    with pytest.raises(ApplyFailed) as failed:
        tiny.up(unsupported=True)
    assert "docker:index/container:Container" in failed.value.message and "'domainname'" in failed.value.message
    assert tiny.container()["State"]["Running"]   # nothing was torn down


@live
def test_an_upload_into_a_read_only_container_fails_with_the_reason(tiny):
    with pytest.raises(ApplyFailed) as failed:
        tiny.up(readOnlyUpload=True)
    assert "Unable to upload volume content" in failed.value.message
    assert "rootfs is marked read-only" in failed.value.message and "readOnly=true" in failed.value.message
    # The created container stays in the state with init errors (as Pulumi records a partial create), so the
    # corrected program replaces it instead of tripping over its name.
    assert tiny.container() is not None
    fixed = tiny.up()
    assert [urn.rsplit("::", 1)[1] for urn in fixed.ops("replace")] == ["app-g1"]
    assert tiny.container()["State"]["Running"]


@live
def test_an_unhealthy_container_fails_the_run_and_the_previous_one_keeps_running(tiny):
    tiny.up()
    with pytest.raises(ApplyFailed) as failed:
        tiny.up(generation="g2", healthy=False, waitTimeout=5)
    assert "container failed to be in healthy state" in failed.value.message
    assert not [op for op, _ in failed.value.operations if op == "delete"]
    assert tiny.container("g1")["State"]["Health"]["Status"] == "healthy"
    assert tiny.container("g2") is not None   # left in place, as the provider leaves it
    recovered = tiny.up(generation="g3")
    assert sorted(urn.rsplit("::", 1)[1] for urn in recovered.ops("delete")) == ["app-g1", "app-g2"]
    assert tiny.container("g1") is None and tiny.container("g2") is None
    assert tiny.container("g3")["State"]["Health"]["Status"] == "healthy"


@live
def test_resources_no_longer_declared_are_deleted_at_the_end_of_a_successful_run(tiny):
    tiny.up(withExtra=True)
    assert inspect("network", f"{tiny.prefix}-extra") is not None
    result = tiny.up(withExtra=False)
    assert result.operations[-1][0] == "delete" and result.operations[-1][1].endswith("::extra")
    assert inspect("network", f"{tiny.prefix}-extra") is None


@live
def test_a_protected_volume_refuses_replacement_and_destroy(tiny):
    tiny.up()
    with pytest.raises(ApplyFailed) as replaced:
        tiny.up(volumeLabel="b")
    assert "marked for protection" in replaced.value.message
    with pytest.raises(ApplyFailed) as destroyed:
        tiny.deployment().destroy()
    assert "cannot be deleted because it is protected" in destroyed.value.message
    assert tiny.container()["State"]["Running"]   # destroy refused before deleting anything
    assert inspect("volume", f"{tiny.prefix}-data")["Labels"] == {"wst-apl.label": "a"}


@live
def test_retain_on_delete_keeps_the_volume_when_the_stack_is_destroyed(tiny):
    tiny.up()
    deployment = tiny.deployment()
    deployment.unprotect("data")
    ops = deployment.destroy()
    assert {op for op, _ in ops} == {"delete"} and len(ops) == 3
    assert tiny.container() is None and inspect("network", f"{tiny.prefix}-net") is None
    assert inspect("volume", f"{tiny.prefix}-data") is not None
    assert deployment.state().resources == {}


@live
@pytest.mark.parametrize("tamper", [["rm", "-f"], ["stop", "-t", "0"]], ids=["removed", "stopped"])
def test_a_container_removed_or_stopped_by_hand_is_drift_and_is_recreated_with_refresh(tiny, tamper):
    tiny.up()
    subprocess.run(["docker", *tamper, f"{tiny.prefix}-app-g1"], check=True, capture_output=True)
    result = tiny.up(refresh=True)
    assert [urn.rsplit("::", 1)[1] for urn in result.ops("drift")] == ["app-g1"]
    assert tiny.container()["State"]["Health"]["Status"] == "healthy"


def test_the_load_generator_counts_outcomes_by_kind_and_refuses_other_hosts():
    import http.server
    import threading

    from tests.applier.loadgen import run_load

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response({"/ok": 200, "/moved": 308}.get(self.path, 503))
            self.send_header("Location", "http://192.0.2.1/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        ok = run_load(f"{base}/ok", rps=40, seconds=1)
        assert ok.total >= 35 and ok.ok == ok.total
        moved = run_load(f"{base}/moved", rps=20, seconds=10, max_requests=5)
        assert (moved.total, moved.ok) == (5, 5)   # 3xx is success, and the redirect is not followed
        failing = run_load(f"{base}/down", rps=20, seconds=0.5)
        assert failing.failures_by_kind == {"http_503": failing.total}
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="refusing"):
        run_load("http://192.0.2.1/", rps=1, seconds=1)


SSH_PROGRAM = '''
import pulumi, pulumi_docker as docker
from pulumi_command import remote
cfg = pulumi.Config()
p, port, work = cfg.require("prefix"), cfg.require_int("port"), cfg.require("work")
conn = remote.ConnectionArgs(host="127.0.0.1", port=port, user="root", host_key=cfg.get("hostKey"),
                             private_key=cfg.require_secret("privateKey"))
hello = remote.Command("hello", connection=conn, create="echo hello-$WST_APL_WHO; cat", stdin="from-stdin",
                       environment={"WST_APL_WHO": "env"}, delete=f"touch {work}/deleted")
copy = remote.CopyToRemote("copy", connection=conn, source=pulumi.FileAsset("payload.txt"),
                           remote_path=f"{work}/copied.txt")
engine = docker.Provider("over-ssh", host=f"ssh://root@127.0.0.1:{port}", ssh_opts=[
    "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={work}/known_hosts",
    "-o", "IdentitiesOnly=yes", "-i", cfg.require("keyPath")])
net = docker.Network("net", name=f"{p}-ssh-net", opts=pulumi.ResourceOptions(provider=engine))
pulumi.export("stdout", hello.stdout)
'''


@live
def test_remote_steps_go_over_ssh_with_the_pinned_host_key_only(tmp_path, apl_prefix, local_sshd):
    work = tmp_path / "remote"
    work.mkdir()
    (work / "known_hosts").write_text(f"[127.0.0.1]:{local_sshd['port']} {local_sshd['hostKey']}\n")
    project = write_program(tmp_path / "program", "wstapl", SSH_PROGRAM)
    (project / "payload.txt").write_text("payload\n")
    config = {"wstapl:prefix": apl_prefix, "wstapl:port": local_sshd["port"], "wstapl:work": str(work),
              "wstapl:keyPath": local_sshd["keyPath"]}

    def deployment(host_key):
        overrides = {**config, **({"wstapl:hostKey": host_key} if host_key else {})}
        return Deployment(project, "test", tmp_path / "state", config_overrides=overrides,
                          secret_overrides={"wstapl:privateKey": local_sshd["privateKey"]})

    with pytest.raises(ApplyFailed, match="hostKey is not set"):
        deployment(None).up()
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq3nR7m2eM0K9kq8m1dJmS0Vn8r3vQ2yq4l2QJf0b7c"
    with pytest.raises(ApplyFailed, match="(?i)host key"):
        deployment(other_key).up()
    result = deployment(local_sshd["hostKey"]).up()
    assert result.outputs["stdout"] == "hello-env\nfrom-stdin"
    assert (work / "copied.txt").read_text() == "payload\n"
    assert inspect("network", f"{apl_prefix}-ssh-net") is not None   # created through ssh://
    deployment(local_sshd["hostKey"]).destroy()
    assert (work / "deleted").exists() and inspect("network", f"{apl_prefix}-ssh-net") is None


def test_the_program_s_own_virtualenv_is_never_reimported(tmp_path, monkeypatch):
    # CI keeps the venv inside the project (Pulumi.yaml's `virtualenv: venv`); purging it re-imported pulumi
    # itself, leaving the program with an empty config and a run that never finished.
    from tests.applier.runtime import _program_modules
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "wst_apl_fake_sdk.py").write_text("")
    (tmp_path / "wst_apl_fake_component.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(tmp_path))
    import wst_apl_fake_component  # noqa: F401
    import wst_apl_fake_sdk  # noqa: F401
    modules = _program_modules(tmp_path)
    assert "wst_apl_fake_component" in modules and "wst_apl_fake_sdk" not in modules


def test_invalid_settings_fail_the_run_at_once_and_change_nothing(tmp_path):
    import signal

    def too_slow(*_):
        raise TimeoutError("the applier did not return within 60 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(60)
    try:
        deployment = Deployment(PROJECT_DIR, "dev", tmp_path, config_overrides={"webstack:httpPort": "99999"})
        with pytest.raises(ApplyFailed, match="webstack:httpPort") as failed:
            deployment.up()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert failed.value.operations == []
