"""`python -m ops <command>`: the operator commands (rollback, status, logs, backup, restore, ...)."""

from __future__ import annotations

import argparse
import importlib
import sys

from pulumi.automation import CommandError

from ops.errors import OpsError

COMMANDS = ("rollback", "status", "logs", "state_bucket", "backup", "restore", "run")   # module names under ops/, each with register(subparsers) -> sets func


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ops", description="webstack operator commands")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ops.{name}").register(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:   # the engine's own failure: its output says why
        print(f"error: the Pulumi engine failed:\n{exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader went away (`ops rollback --list | head`): nothing left to say
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
