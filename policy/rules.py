"""webstack's hardening rules, checked by the engine on every resource a preview or update declares.

The rules read the resource's inputs as the engine sees them (camelCase wire names: readOnly, securityOpts,
capabilities.drops). They live apart from __main__.py (which serves the pack and never returns) so that the unit
tests can call each rule directly. The pack cannot import the program: a user's change to components/ must not
be able to loosen a rule, so the few facts it needs are repeated here and tests/unit/test_policy.py keeps them
equal to components/contract.py.

Not checked, because the engine does not show it to a policy: `retainOnDelete` (the analyzer's resource options
carry protect, ignoreChanges, deleteBeforeReplace, additionalSecretOutputs, aliases, customTimeouts and parent
only; tests/unit cover retain_on_delete on the program). No pids limit either: pulumi-docker 5.2.0's Container
has no such input (its schema has pidMode and ulimits only).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
DOCKER_PROVIDER = "pulumi:providers:docker"
SOCKET_DIR = "/var/run/postgresql"                # components/contract.py SOCKET_DIR
SOCKET_ROLES = ("database", "backend", "backup")  # the only roles that may reach PostgreSQL's socket
DATA_VOLUME_SUFFIX = "-pgdata"                    # webstack-<stack>-pgdata, the database's data
ROOT_USERS = {"", "0", "root"}
NO_HOST_KEY_CHECK = re.compile(r"stricthostkeychecking\s*[= ]\s*[\"']?(no|off)\b", re.IGNORECASE)


def _role(props: dict) -> str:
    return next((l.get("value", "") for l in props.get("labels") or [] if l.get("label") == "webstack.role"), "")


def _who(args: ResourceValidationArgs) -> str:
    role = _role(args.props)
    return f"container {args.name}" + (f" (role {role})" if role else "")


def non_root_user(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    user = str(args.props.get("user") or "")
    if user.split(":", 1)[0].strip() in ROOT_USERS:
        report(f"{_who(args)} runs as {user or 'the image default (root)'}: set user to an unprivileged uid:gid")


def read_only_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER and args.props.get("readOnly") is not True:
        report(f"{_who(args)} has a writable root filesystem: set read_only=True (tmpfs for what must be written)")


def all_capabilities_dropped(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    capabilities = args.props.get("capabilities") or {}
    drops = [str(c).upper() for c in capabilities.get("drops") or []]
    if "ALL" not in drops:
        report(f"{_who(args)} keeps Linux capabilities: drop ALL (capabilities.drops=['ALL'])")
    if capabilities.get("adds"):
        report(f"{_who(args)} adds capabilities {capabilities['adds']}: none may be added back")


def no_new_privileges(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    options = [str(o).replace(" ", "") for o in args.props.get("securityOpts") or []]
    if not any(o in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true") for o in options):
        report(f"{_who(args)} may gain privileges (setuid): add security_opts=['no-new-privileges:true']")


def memory_limited(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    memory = args.props.get("memory")
    if not isinstance(memory, (int, float)) or memory <= 0:
        report(f"{_who(args)} has no memory limit: set memory (MB)")


def database_not_published(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER and _role(args.props) == "database" and args.props.get("ports"):
        report(f"{_who(args)} publishes ports {args.props['ports']}: PostgreSQL is reached only through its socket")


def socket_only_for_database_and_backend(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER or _role(args.props) in SOCKET_ROLES:
        return
    for mount in args.props.get("mounts") or []:
        if mount.get("target") == SOCKET_DIR or str(mount.get("source") or "").endswith("-pgsocket"):
            report(f"{_who(args)} mounts the database socket volume: only {', '.join(SOCKET_ROLES)} may")


def data_volume_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != VOLUME or not str(args.props.get("name") or "").endswith(DATA_VOLUME_SUFFIX):
        return
    if not (args.opts and args.opts.protect):
        report(f"volume {args.name} holds the database's data: declare it with protect=True "
               "(and retain_on_delete=True, which the engine does not show to policies)")


def ssh_host_keys_checked(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != DOCKER_PROVIDER:
        return
    options: Any = args.props.get("sshOpts") or []
    if isinstance(options, str):   # provider inputs reach the engine JSON-encoded
        try:
            options = json.loads(options)
        except ValueError:
            options = [options]
    if NO_HOST_KEY_CHECK.search(" ".join(str(o) for o in options)):
        report(f"docker provider {args.name} turns off SSH host key checking: pin the host key "
               "(StrictHostKeyChecking=yes with a known_hosts file)")


def _policy(name: str, description: str, validate: Callable) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate)


POLICIES = [
    _policy("containers-run-as-non-root", "Every container runs as an unprivileged user.", non_root_user),
    _policy("containers-read-only-root", "Every container has a read-only root filesystem.", read_only_root),
    _policy("containers-drop-all-capabilities", "Every container drops all capabilities.", all_capabilities_dropped),
    _policy("containers-no-new-privileges", "Every container sets no-new-privileges.", no_new_privileges),
    _policy("containers-memory-limit", "Every container has a memory limit.", memory_limited),
    _policy("database-port-not-published", "The database publishes no port.", database_not_published),
    _policy("socket-volume-db-and-backend-only", "Only the database, backend and backup job mount the socket volume.",
            socket_only_for_database_and_backend),
    _policy("data-volume-protected", "The database's data volume is protected.", data_volume_protected),
    _policy("ssh-host-key-checking", "The docker provider never disables SSH host key checking.",
            ssh_host_keys_checked),
]
