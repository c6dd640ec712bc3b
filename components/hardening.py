"""The hardened defaults every webstack container gets (CIS Docker Benchmark section 5).

One function so that no component can forget one: non-root user, read-only root filesystem, every capability
dropped, no-new-privileges, memory and CPU limits, log rotation, a restart policy and labels.
"""

from __future__ import annotations

import pulumi_docker as docker

from .settings import Settings

LOG_OPTS = {"max-size": "10m", "max-file": "3"}
# `unless-stopped` restarts after a daemon or host restart, `on-failure` does not; CIS 5.15 accepts both.
RESTART = "unless-stopped"
CPU_SHARES = 512   # CIS 5.12: a CPU priority below the default 1024 for every container
CPU_PERIOD_US = 100_000
# The quota is cpus * period: one CPU unless the service's `cpus` setting says otherwise (the database: no cap).
# The nproc ulimit caps the processes and threads of the container's uid, counted host-wide for that uid; the
# per-container PIDs cgroup limit (CIS 5.29), which the provider has no input for, is set by pids_limits.py.
NPROC_LIMIT = 4096


def labels(settings: Settings, role: str, release: str | None = None) -> list[docker.ContainerLabelArgs]:
    values = {"webstack.stack": settings.stack, "webstack.role": role}
    if release:
        values["webstack.release"] = release
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(values.items())]


# A container that never turns healthy is unhealthy START_PERIOD + INTERVAL * RETRIES seconds after it starts:
# the release gate (release_gate.py) fails on that, so these numbers bound how long a bad release takes to fail.
START_PERIOD_SECONDS = 10
HEALTH_INTERVAL_SECONDS = 2
HEALTH_RETRIES = 3


def healthcheck(command: list[str], start_period: str = f"{START_PERIOD_SECONDS}s") -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(tests=["CMD", *command], interval=f"{HEALTH_INTERVAL_SECONDS}s",
                                           timeout="3s", start_period=start_period, retries=HEALTH_RETRIES)


def cpu_limit(cpus: float | None) -> dict:
    """The CFS quota for `cpus` CPUs; none for None (the CPU shares below still give it a lower priority)."""
    if cpus is None:
        return {}
    return dict(cpu_period=CPU_PERIOD_US, cpu_quota=round(cpus * CPU_PERIOD_US))


def hardened(settings: Settings, role: str, *, user: str, memory_mb: int, release: str | None = None,
             tmpfs: dict[str, str] | None = None, wait_timeout: int = 60, grace_seconds: int = 30,
             wait: bool = True, cpus: float | None = 1.0) -> dict:
    """Keyword arguments for docker.Container shared by every container webstack runs."""
    return dict(
        user=user,
        read_only=True,
        tmpfs={"/tmp": "rw,noexec,nosuid,size=64m", **(tmpfs or {})},
        capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        security_opts=["no-new-privileges:true"],
        memory=memory_mb,
        memory_swap=memory_mb,   # equal to memory: no swap, so the limit is a real limit
        cpu_shares=CPU_SHARES,
        **cpu_limit(cpus),
        ulimits=[docker.ContainerUlimitArgs(name="nproc", soft=NPROC_LIMIT, hard=NPROC_LIMIT)],
        restart=RESTART,
        log_driver="json-file",
        log_opts=LOG_OPTS,
        labels=labels(settings, role, release),
        must_run=True,
        # Long-lived containers wait for healthy in the provider; a release's containers (wait=False) are
        # watched by the release gate, which fails faster and says why.
        wait=wait,
        wait_timeout=wait_timeout,
        destroy_grace_seconds=grace_seconds,
    )
