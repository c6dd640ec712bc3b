"""`python -m ops run --stack NAME [--it] -- COMMAND...`: a one-off command in a container of the current release.

The container is made like the release's backends (image, user, groups, socket, volumes, networks, environment
with its secrets, hardening), from the running backend's own `docker inspect`, so it is exactly what the release
runs: a `manage.py createsuperuser`, a console (`--it -- sh`), a data fix. Its output is streamed, its exit code
is this command's, and it is removed afterwards. The environment reaches the target on stdin, never in an argv.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from components import rendering
from components.hardening import NPROC_LIMIT
from components.pids_limits import PIDS_LIMIT
from components.release_command import env_lines
from ops import stack as stacks
from ops.errors import OpsError
from ops.target import Target, running, settings_of


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run a one-off command in a container of the current release")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--it", action="store_true", help="interactive, with a terminal (e.g. -- sh)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                        help="the command and its arguments, after --; the image's entrypoint runs them")
    parser.set_defaults(func=run)


def running_backend(containers: list[dict]) -> dict:
    """The `docker inspect` of a running backend of the stack: the release that serves."""
    backends = running(containers, "backend")
    if not backends:
        raise OpsError("no backend container runs: deploy the stack first (pulumi up), or see python -m ops status")
    return backends[0]


def mount_flag(mount: dict) -> str:
    if mount["Type"] != "volume":
        raise OpsError(f"the backend has a {mount['Type']} mount at {mount['Destination']}, which webstack never "
                       "creates: the container was changed by hand")
    return f"type=volume,src={mount['Name']},dst={mount['Destination']}" + ("" if mount["RW"] else ",readonly")


def create_script(backend: dict, container: str, command: list[str], interactive: bool) -> str:
    """The script that creates the one-off container like `backend` (pure: tests assert on it)."""
    config, host = backend["Config"], backend["HostConfig"]
    labels = config["Labels"] or {}
    cpus = (host.get("CpuQuota") or 0) / (host.get("CpuPeriod") or 100_000)
    return rendering.render(
        "host/ops-run-create.sh.j2", container=container, command=command, image=backend["Image"],
        user=config["User"], group=",".join(host.get("GroupAdd") or []) or "0",
        networks=sorted(backend["NetworkSettings"]["Networks"]), mounts=[mount_flag(m) for m in backend["Mounts"]],
        memory_mb=(host.get("Memory") or 0) // (1 << 20) or 256, cpus=f"{cpus:g}" if cpus else "1",
        pids=PIDS_LIMIT, nproc=NPROC_LIMIT, stack=labels.get("webstack.stack", ""),
        release=labels.get("webstack.release", ""), create_flags="--interactive --tty " if interactive else "")


def environment(backend: dict) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in backend["Config"]["Env"] or [] if "=" in entry)


def run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise OpsError("no command: python -m ops run --stack NAME -- COMMAND [ARGS...]")
    target = Target(settings_of(stacks.select(args.stack)))
    backend = running_backend(target.containers())
    container = f"{target.settings.name_prefix}-run-{time.strftime('%Y%m%dT%H%M%S')}"
    script = create_script(backend, container, command, args.it)
    created = subprocess.run(target.shell(script), input=env_lines(environment(backend)), text=True,
                             capture_output=True)
    if created.returncode != 0:
        raise OpsError(f"could not create the one-off container: {created.stderr.strip()[-1000:]}")
    try:
        # `docker start -a` streams the output and exits with the container's exit code.
        started = subprocess.run(target.command(["start", "--attach", *(["--interactive"] if args.it else []),
                                                 container], tty=args.it))
        return started.returncode
    finally:
        subprocess.run(target.command(["rm", "-f", container]), capture_output=True)
