"""The policy pack's rules (policy/rules.py), each on a hardened container and on one that breaks it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

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
