"""Every container the program declares carries the CIS section-5 defaults."""

from __future__ import annotations

import pytest

ROLES = ["database", "backend", "web", "edge"]
HOLDER = "edge-ports"   # holds the edge's ports and runs only `sleep`: hardened alike, but nothing to health-check


def containers(run, role):
    regs = run.containers()[role]
    assert regs
    return [r.inputs for r in regs]


@pytest.mark.parametrize("role", [*ROLES, HOLDER])
def test_container_runs_as_a_non_root_user(prod, role):
    for c in containers(prod, role):
        assert c["user"].split(":")[0] not in ("", "0", "root")


@pytest.mark.parametrize("role", [*ROLES, HOLDER])
def test_container_root_filesystem_is_read_only_with_a_tmpfs(prod, role):
    for c in containers(prod, role):
        assert c["readOnly"] is True and "/tmp" in c["tmpfs"]


@pytest.mark.parametrize("role", [*ROLES, HOLDER])
def test_container_drops_every_capability_and_gains_none(prod, role):
    for c in containers(prod, role):
        assert c["capabilities"]["drops"] == ["ALL"] and not c["capabilities"].get("adds")
        assert "no-new-privileges:true" in c["securityOpts"]
        assert not c.get("privileged")


@pytest.mark.parametrize("role", [*ROLES, HOLDER])
def test_container_has_memory_cpu_restart_and_log_limits(prod, role):
    for c in containers(prod, role):
        assert c["memory"] > 0 and c["memorySwap"] == c["memory"] and c["cpuShares"] > 0
        assert c["restart"] == "unless-stopped"
        assert c["logDriver"] == "json-file" and c["logOpts"] == {"max-size": "10m", "max-file": "3"}


@pytest.mark.parametrize("role", ROLES)
def test_container_is_health_checked_and_awaited(prod, role):
    for c in containers(prod, role):
        # The backend's image may hold no shell or curl: the release gate probes it from the edge instead
        # (test_program_graph.test_backend_health_gate_probes_the_configured_path_from_the_edge).
        assert role == "backend" or c["healthcheck"]["tests"][0] == "CMD"
        assert c["destroyGraceSeconds"] >= 30
        # A release's containers are awaited by the release gate; the long-lived ones by the provider.
        assert c["wait"] is (role not in ("backend", "web")), c
        assert c["waitTimeout"] > 0


@pytest.mark.parametrize("role", ROLES)
def test_container_shares_no_host_namespace(prod, role):
    for c in containers(prod, role):
        if role == "edge":   # the holder's namespace (test_program_graph): never the host's
            assert c["networkMode"].startswith("container:") and not c.get("networksAdvanced")
        else:
            assert c.get("networkMode") in (None, "bridge") and c["networksAdvanced"]
        assert not {"pidMode", "ipcMode", "usernsMode"} & set(c)
        assert "docker.sock" not in str(c.get("mounts", ""))


@pytest.mark.parametrize("role", ["backend", "web", "edge"])
def test_container_has_a_cpu_quota(prod, role):
    for c in containers(prod, role):
        assert c["cpuPeriod"] == 100_000 and c["cpuQuota"] == 100_000   # cpus 1.0 by default


def test_the_database_has_no_cpu_cap_by_default_and_every_service_takes_its_cpus_setting(prod):
    """Issue 22: every container was capped at one CPU, PostgreSQL included, with no setting."""
    from tests.program import run_program
    (database,) = containers(prod, "database")
    assert "cpuQuota" not in database and database["cpuShares"] > 0   # CIS 5.12 still holds by the shares
    run = run_program("dev", {"webstack:database": {"cpus": 1.5}, "webstack:backend": {"cpus": 0.5},
                              "webstack:frontend": {"cpus": 2}})
    quotas = {role: [c["cpuQuota"] for c in containers(run, role)] for role in ("database", "backend", "web")}
    assert quotas == {"database": [150_000], "backend": [50_000], "web": [200_000]}
    release_command = run_program("dev", {"webstack:backend": {"cpus": 0.5, "releaseCommand": ["migrate"]}})
    assert "--cpus 0.5 " in release_command.named(
        next(r.name for r in release_command.resources if r.name.startswith("release-command-"))).inputs["create"]


@pytest.mark.parametrize("role", ROLES)
def test_container_has_a_process_limit(prod, role):
    """pulumi-docker 5.2.0 has no pids_limit input: the nproc ulimit (per uid) stands in for it."""
    for c in containers(prod, role):
        nproc = [u for u in c.get("ulimits", []) if u["name"] == "nproc"]
        assert nproc and 0 < nproc[0]["hard"] <= 4096 and nproc[0]["soft"] == nproc[0]["hard"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_finding_16_every_container_gets_a_pids_cgroup_limit(request, stack):
    """Issue 19, finding 16 (CIS 5.29): the nproc ulimit is per uid and shared across containers, so every
    container the program runs gets `docker update --pids-limit` on its id, after it exists."""
    from components.pids_limits import PIDS_LIMIT
    run = request.getfixturevalue(stack)
    update = run.named("pids-limits-update")
    every = [c for regs in run.containers().values() for c in regs]
    assert {"database", "backend", "edge"} <= set(run.containers())
    assert f"docker update --pids-limit {PIDS_LIMIT} " in update.inputs["create"]
    for container in every:
        assert container.urn in update.dependencies, container.name
    assert len(update.inputs["triggers"]) == len(every)


def test_the_socket_directory_lets_the_backend_connect_but_not_unlink():
    from tests.stack_config import PROJECT_DIR
    dockerfile = (PROJECT_DIR / "containers/db/Dockerfile").read_text()
    entrypoint = (PROJECT_DIR / "containers/db/entrypoint.sh").read_text()
    assert "-m 2750 /var/run/postgresql" in dockerfile and "2770" not in dockerfile
    assert 'chmod 2750 "$SOCKET_DIR"' in entrypoint   # a volume created from an older image is fixed too
