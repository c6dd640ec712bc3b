"""How an operator command reaches a stack's Docker engine: the stack's own settings, the same pinned SSH
options as the program (components.remote_host.ssh_access), and the docker CLI (locally) or the host's docker
(over ssh). Nothing here changes the stack: it only runs `docker` commands the operator asked for."""

from __future__ import annotations

from pulumi import automation as auto

from components.docker_cli import DockerCli
from components.settings import Settings
from components.settings_loader import ConfigError, NAMESPACE, load_settings
from ops.errors import OpsError
from ops.stack import PROJECT_DIR


def settings_of(stack: auto.Stack) -> Settings:
    """The stack's settings, from its config as the engine stores it (secrets decrypted in memory only)."""
    return settings_from(stack.name, stack.get_all_config())


def settings_from(stack: str, config: dict[str, auto.ConfigValue]) -> Settings:
    """The settings of `stack` whose config (`pulumi config --json`, as stack.get_all_config() reads it) is
    `config`."""
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix):]: v.value for k, v in config.items() if k.startswith(prefix)}
    secrets = {k[len(prefix):] for k, v in config.items() if k.startswith(prefix) and v.secret}
    try:
        return load_settings(values, secrets, stack, PROJECT_DIR)
    except ConfigError as exc:
        raise OpsError(str(exc)) from None


def running(containers: list[dict], role: str) -> list[dict]:
    """The running containers of `role` among `docker inspect` results, by name."""
    return sorted((c for c in containers if (c["Config"]["Labels"] or {}).get("webstack.role") == role
                   and c["State"]["Running"]), key=lambda c: c["Name"])


class Target(DockerCli):
    """The stack's engine, for an operator command: a failure is an OpsError (a message, no traceback)."""

    error = OpsError
