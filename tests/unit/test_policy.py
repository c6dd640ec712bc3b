"""The policy pack's rules (policy/rules.py), each on a hardened container and on one that breaks it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi_policy import EnforcementLevel

from components import contract

PACK = Path(__file__).resolve().parents[2] / "policy"
spec = importlib.util.spec_from_file_location("webstack_policy_rules", PACK / "rules.py")
rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rules)


def container(role: str = "backend", **changes) -> dict:
    props = {"user": "1001:1001", "readOnly": True, "capabilities": {"drops": ["ALL"]},
             "securityOpts": ["no-new-privileges:true"], "memory": 256,
             "labels": [{"label": "webstack.role", "value": role}], "mounts": []}
    props.update(changes)
    return props


def violations(resource_type: str, props: dict, protect: bool = False) -> list[str]:
    args = SimpleNamespace(resource_type=resource_type, props=props, name="res", opts=SimpleNamespace(protect=protect))
    found: list[str] = []
    for policy in rules.POLICIES:
        policy.validate(args, lambda message, urn=None: found.append(f"{policy.name}: {message}"))
    return found


def test_a_hardened_container_of_each_role_passes_every_rule():
    for role in ("database", "backend", "web", "edge"):
        assert violations(rules.CONTAINER, container(role)) == []


@pytest.mark.parametrize("change, policy", [
    ({"user": None}, "containers-run-as-non-root"),
    ({"user": "root"}, "containers-run-as-non-root"),
    ({"user": "0:0"}, "containers-run-as-non-root"),
    ({"readOnly": False}, "containers-read-only-root"),
    ({"capabilities": {"drops": ["NET_RAW"]}}, "containers-drop-all-capabilities"),
    ({"capabilities": {"drops": ["ALL"], "adds": ["NET_ADMIN"]}}, "containers-drop-all-capabilities"),
    ({"securityOpts": []}, "containers-no-new-privileges"),
    ({"memory": None}, "containers-memory-limit"),
    ({"mounts": [{"type": "volume", "source": "webstack-dev-pgsocket", "target": "/var/run/postgresql"}]},
     "socket-volume-db-and-backend-only"),
])
def test_a_web_container_breaking_one_rule_is_reported_by_that_rule_alone(change, policy):
    found = violations(rules.CONTAINER, container("web", **change))
    assert [f.split(":", 1)[0] for f in found] == [policy], found


def test_the_database_may_mount_the_socket_but_never_publish_a_port():
    socket = [{"type": "volume", "source": "webstack-dev-pgsocket", "target": contract.SOCKET_DIR}]
    assert violations(rules.CONTAINER, container("database", mounts=socket)) == []
    found = violations(rules.CONTAINER, container("database", ports=[{"internal": 5432, "external": 5432}]))
    assert [f.split(":", 1)[0] for f in found] == ["database-port-not-published"]


def test_the_data_volume_must_be_protected_and_other_volumes_need_not():
    assert violations(rules.VOLUME, {"name": "webstack-prod-pgdata"}, protect=True) == []
    assert violations(rules.VOLUME, {"name": "webstack-prod-pgsocket"}, protect=False) == []
    found = violations(rules.VOLUME, {"name": "webstack-prod-pgdata"}, protect=False)
    assert len(found) == 1 and "protect=True" in found[0]


@pytest.mark.parametrize("ssh_opts", [
    ["-o", "StrictHostKeyChecking=no"], ["-oStrictHostKeyChecking=no"], ["-o", "stricthostkeychecking off"],
    '["-o", "StrictHostKeyChecking=no"]',    # provider inputs reach the engine JSON-encoded
])
def test_a_docker_provider_that_skips_host_key_checking_is_reported(ssh_opts):
    found = violations(rules.DOCKER_PROVIDER, {"host": "ssh://deploy@h", "sshOpts": ssh_opts})
    assert [f.split(":", 1)[0] for f in found] == ["ssh-host-key-checking"], found


def test_a_docker_provider_with_pinned_host_keys_passes():
    pinned = '["-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/k"]'
    assert violations(rules.DOCKER_PROVIDER, {"host": "ssh://deploy@h", "sshOpts": pinned}) == []


def test_the_pack_repeats_the_program_facts_it_checks():
    assert rules.SOCKET_DIR == contract.SOCKET_DIR


def web(**changes) -> tuple[str, dict]:
    return rules.CONTAINER, container("web", **changes)


def bind(source: str, target: str = "/mnt") -> list[dict]:
    return [{"type": "bind", "source": source, "target": target}]


def provider(ssh_opts) -> tuple[str, dict]:
    return rules.DOCKER_PROVIDER, {"host": "ssh://deploy@h", "sshOpts": ssh_opts}


def remote(resource_type: str = "command:remote:Command", **connection) -> tuple[str, dict]:
    return resource_type, {"connection": {"host": "203.0.113.10", "user": "deploy", **connection},
                           "create": "docker ps"}


PINNED_SSH = ["-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/k"]
NO_NEW_PRIVILEGES_THEN_FALSE = ["no-new-privileges:true", "no-new-privileges:false"]

# Issue 19, finding 6: each of these passed every rule of the pack.
SLIPS = [
    # (case, (resource type, inputs), the policy that must stop it)
    ("uid 0 spelled 00", web(user="00"), "containers-run-as-non-root"),
    ("uid 0 spelled 00 with a group", web(user="00:1001"), "containers-run-as-non-root"),
    ("uid and gid 0", web(user="0:0"), "containers-run-as-non-root"),
    ("root by name", web(user="root:root"), "containers-run-as-non-root"),
    ("gid 0", web(user="1001:0"), "containers-run-as-non-root"),
    ("a uid alone runs with gid 0", web(user="1001"), "containers-run-as-non-root"),
    ("a user name the image may map to 0", web(user="toor:toor"), "containers-run-as-non-root"),
    ("privileged", web(privileged=True), "containers-not-privileged"),
    ("host network", web(networkMode="host"), "containers-not-privileged"),
    ("host network in capitals", web(networkMode=" HOST"), "containers-not-privileged"),
    ("host PID namespace", web(pidMode="host"), "containers-not-privileged"),
    ("host IPC namespace", web(ipcMode="host"), "containers-not-privileged"),
    ("host user namespace", web(usernsMode="host"), "containers-not-privileged"),
    ("seccomp unconfined", web(securityOpts=["no-new-privileges:true", "seccomp=unconfined"]),
     "containers-not-privileged"),
    ("no-new-privileges turned off after on", web(securityOpts=NO_NEW_PRIVILEGES_THEN_FALSE),
     "containers-no-new-privileges"),
    ("no-new-privileges turned off with = and 0", web(securityOpts=["no-new-privileges", "no-new-privileges=0"]),
     "containers-no-new-privileges"),
    ("docker.sock bound through mounts", web(mounts=bind("/var/run/docker.sock")), "docker-socket-never-mounted"),
    ("docker.sock under /run", web(mounts=bind("/run/docker.sock")), "docker-socket-never-mounted"),
    ("a rootless docker.sock", web(mounts=bind("/run/user/1000/docker.sock")), "docker-socket-never-mounted"),
    ("docker.sock spelled with slashes", web(mounts=bind("//var/run//docker.sock/")), "docker-socket-never-mounted"),
    ("the directory holding docker.sock", web(mounts=bind("/var/run")), "docker-socket-never-mounted"),
    ("the host's root", web(mounts=bind("/")), "docker-socket-never-mounted"),
    ("docker.sock through volumes hostPath",
     web(volumes=[{"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock"}]),
     "docker-socket-never-mounted"),
    ("docker.sock through volumes volumeName",
     web(volumes=[{"volumeName": "/var/run/docker.sock", "containerPath": "/d.sock"}]), "docker-socket-never-mounted"),
    ("a local volume binding /run", (rules.VOLUME, {"name": "v", "driverOpts": {"o": "bind", "device": "/run"}}),
     "docker-socket-never-mounted"),
    ("the database socket through volumes",
     web(volumes=[{"volumeName": "webstack-dev-pgsocket", "containerPath": "/var/run/postgresql"}]),
     "socket-volume-db-and-backend-only"),
    ("the database socket dir with a trailing slash",
     web(mounts=[{"type": "volume", "source": "other", "target": "/var/run/postgresql/"}]),
     "socket-volume-db-and-backend-only"),
    ("StrictHostKeyChecking=false", provider(["-o", "StrictHostKeyChecking=false"]), "ssh-host-key-checking"),
    ("StrictHostKeyChecking=accept-new", provider(["-o", "StrictHostKeyChecking=accept-new"]),
     "ssh-host-key-checking"),
    ("StrictHostKeyChecking no, quoted and spaced", provider(["-o", "stricthostkeychecking = 'NO'"]),
     "ssh-host-key-checking"),
    ("StrictHostKeyChecking off as separate words", provider('["-o", "StrictHostKeyChecking", "off"]'),
     "ssh-host-key-checking"),
    ("StrictHostKeyChecking=no after yes", provider([*PINNED_SSH, "-oStrictHostKeyChecking=\"no\""]),
     "ssh-host-key-checking"),
    ("an ssh provider that leaves checking to ~/.ssh/config", provider([]), "ssh-host-key-checking"),
    ("a local command's ssh", ("command:local:Command", {"create": "ssh -o StrictHostKeyChecking=accept-new h true"}),
     "ssh-host-key-checking"),
    ("a command's environment", ("command:local:Command", {
        "create": "git pull", "environment": {"GIT_SSH_COMMAND": "ssh -oStrictHostKeyChecking=no"}}),
     "ssh-host-key-checking"),
    ("a remote command without a host key", remote(), "remote-commands-pin-host-key"),
    ("a remote command with an empty host key", remote(hostKey=" "), "remote-commands-pin-host-key"),
    ("a copy to a remote host without a host key", remote("command:remote:CopyToRemote"),
     "remote-commands-pin-host-key"),
]


@pytest.mark.parametrize("case, resource, policy", SLIPS, ids=[s[0] for s in SLIPS])
def test_finding_6_each_way_past_the_pack_is_a_mandatory_violation(case, resource, policy):
    found = violations(*resource)
    assert [f.split(":", 1)[0] for f in found] == [policy], found


def test_finding_6_every_rule_is_mandatory():
    assert "enforcement_level=EnforcementLevel.MANDATORY" in (PACK / "__main__.py").read_text()
    assert all(p.enforcement_level in (None, EnforcementLevel.MANDATORY) for p in rules.POLICIES)


LEGITIMATE = [
    ("another unprivileged uid:gid", web(user="101:101")),
    ("no-new-privileges turned on last", web(securityOpts=["no-new-privileges:false", "no-new-privileges"])),
    ("no network at all", web(networkMode="none")),
    ("a tmpfs at /run inside the container", web(mounts=[{"type": "tmpfs", "target": "/run"}])),
    ("a named volume and an app directory bound", web(mounts=[
        {"type": "volume", "source": "webstack-dev-media", "target": "/app/media"},
        *bind("/srv/webstack/static", "/app/static")])),
    ("a local engine", (rules.DOCKER_PROVIDER, {"host": "unix:///var/run/docker.sock"})),
    ("an ssh provider pinning the key", provider(PINNED_SSH)),
    ("a local command that checks host keys", ("command:local:Command",
                                               {"create": "ssh -o StrictHostKeyChecking=yes -o BatchMode=yes h"})),
    ("a remote command with a host key", remote(hostKey="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdj")),
]


@pytest.mark.parametrize("case, resource", LEGITIMATE, ids=[c[0] for c in LEGITIMATE])
def test_legitimate_configurations_still_pass_every_rule(case, resource):
    assert violations(*resource) == []


@pytest.mark.parametrize("program", ["dev", "prod"])
def test_every_resource_the_program_declares_passes_every_rule(program, request):
    run = request.getfixturevalue(program)
    found = {r.name: violations(r.type, r.inputs, protect=r.protect) for r in run.resources}
    assert {name: v for name, v in found.items() if v} == {}
    assert run.of_type("command:remote:Command") or program == "dev"   # prod's remote commands were checked
