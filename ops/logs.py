"""`python -m ops logs --stack NAME [SERVICE ...] [--since 10m] [--follow] [--grep TEXT]`: the services' logs."""

from __future__ import annotations

import argparse
import queue
import re
import threading

from ops import stack as stacks
from ops.errors import OpsError
from ops.target import Target, settings_of

SERVICES = ("database", "backend", "web", "edge", "backup")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("logs", help="the logs of all or some services")
    parser.add_argument("--stack", required=True)
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)")
    parser.add_argument("--since", help="only newer lines: a duration (10m, 2h) or a timestamp, as docker logs")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    parser.add_argument("--grep", help="only lines matching this regular expression")
    parser.add_argument("--tail", type=int, help="lines per container before following (default: all lines --since "
                                                  "asks for, else the last 200)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.services) - set(SERVICES))
    if unknown:
        raise OpsError(f"unknown service {', '.join(unknown)}: choose from {', '.join(SERVICES)}")
    try:
        pattern = re.compile(args.grep) if args.grep else None
    except re.error as exc:
        raise OpsError(f"--grep {args.grep!r} is not a regular expression: {exc}") from None
    target = Target(settings_of(stacks.select(args.stack)))
    wanted = set(args.services or SERVICES)
    containers = [(c["Config"]["Labels"].get("webstack.role"), c["Name"].lstrip("/")) for c in target.containers()
                  if c["State"]["Status"] == "running"]
    containers = sorted((role, name) for role, name in containers if role in wanted)
    if not containers:
        raise OpsError(f"no running container of {', '.join(sorted(wanted))} in stack {args.stack}")
    lines: "queue.Queue[tuple[str, str] | None]" = queue.Queue()
    tail = args.tail if args.tail is not None else (None if args.since else 200)
    options = [*([f"--tail={tail}"] if tail is not None else []), *([f"--since={args.since}"] if args.since else []),
               *(["--follow"] if args.follow else [])]

    def pump(name: str) -> None:
        process = target.popen("logs", *options, name)
        for line in process.stdout:
            lines.put((name, line.rstrip("\n")))
        process.wait()
        lines.put(None)

    for _, name in containers:
        threading.Thread(target=pump, args=(name,), daemon=True).start()
    width = max(len(name) for _, name in containers)
    running = len(containers)
    while running:
        item = lines.get()
        if item is None:
            running -= 1
            continue
        name, line = item
        if pattern is None or pattern.search(line):
            print(f"{name.ljust(width)} | {line}", flush=True)
    return 0
