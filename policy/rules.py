"""webstack's hardening rules, checked by the engine on every resource a preview or update declares.

The rules read the resource's inputs as the engine sees them (camelCase wire names: readOnly, securityOpts,
capabilities.drops). They live apart from __main__.py (which serves the pack and never returns) so that the unit
tests can call each rule directly. The pack cannot import the program: a user's change to components/ must not
be able to loosen a rule, so the few facts it needs are repeated here and tests/unit/test_policy.py keeps them
equal to components/contract.py.

Each rule names one way out of the container or past the host's identity, and reads every input that can
express it: a bind via mounts[] or volumes[], a uid however it is spelled, the last no-new-privileges option
(Docker applies them in order), StrictHostKeyChecking in any resource's inputs (a provider's sshOpts, a
command's script or environment), a pinned host key on every pulumi_command remote resource.

Not checked, because the engine does not show it to a policy: `retainOnDelete` (the analyzer's resource options
carry protect, ignoreChanges, deleteBeforeReplace, additionalSecretOutputs, aliases, customTimeouts and parent
only; tests/unit cover retain_on_delete on the program). No pids limit either: pulumi-docker 5.2.0's Container
has no such input (its schema has pidMode and ulimits only).
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any, Callable, Iterator

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
DOCKER_PROVIDER = "pulumi:providers:docker"
# pulumi_command.remote's resources (components/remote_host.py): each opens its own SSH connection.
REMOTE_COMMANDS = ("command:remote:Command", "command:remote:CopyToRemote", "command:remote:CopyFile")
SOCKET_DIR = "/var/run/postgresql"                # components/contract.py SOCKET_DIR
SOCKET_ROLES = ("database", "backend", "backup")  # the only roles that may reach PostgreSQL's socket
DATA_VOLUME_SUFFIX = "-pgdata"                    # webstack-<stack>-pgdata, the database's data
# uid:gid as numbers: a name may be uid 0 in the image's /etc/passwd, and a uid alone runs with gid 0.
NUMERIC_USER = re.compile(r"([0-9]+):([0-9]+)\Z")
# The engine's socket is root on the host: no bind of it, nor of a directory it lives in.
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
HOST_NAMESPACES = ("networkMode", "pidMode", "ipcMode", "usernsMode", "cgroupnsMode")
# ssh takes `StrictHostKeyChecking=no`, `StrictHostKeyChecking no`, `"..."`, in any case; only yes/true check.
HOST_KEY_CHECK = re.compile(r"stricthostkeychecking\s*(?:=\s*|\s+)[\"']?([a-z-]*)", re.IGNORECASE)
HOST_KEY_CHECKED = ("yes", "true")


def _role(props: dict) -> str:
    return next((l.get("value", "") for l in props.get("labels") or [] if l.get("label") == "webstack.role"), "")


def _who(args: ResourceValidationArgs) -> str:
    role = _role(args.props)
    return f"container {args.name}" + (f" (role {role})" if role else "")


def non_root_user(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    user = str(args.props.get("user") or "")
    ids = NUMERIC_USER.match(user)
    if not ids or 0 in (int(ids.group(1)), int(ids.group(2))):
        report(f"{_who(args)} runs as {repr(user) if user else 'the image default (root)'}: set user to a "
               "numeric uid:gid, neither of them 0 (e.g. 1001:1001)")


def not_privileged(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    if args.props.get("privileged"):
        report(f"{_who(args)} is privileged: remove privileged (it is root on the host)")
    for mode in HOST_NAMESPACES:
        if str(args.props.get(mode) or "").strip().lower() == "host":
            report(f"{_who(args)} shares the host's namespace ({mode}: host): use the container's own")
    for option in args.props.get("securityOpts") or []:
        if re.fullmatch(r"\s*(seccomp|apparmor)\s*[=:]\s*unconfined\s*", str(option), re.IGNORECASE):
            report(f"{_who(args)} runs {option}: keep Docker's default seccomp and AppArmor profiles")


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
    # Docker applies each no-new-privileges option in turn (a bare one means true): the last one decides.
    enabled = False
    for option in (str(o).replace(" ", "").lower() for o in args.props.get("securityOpts") or []):
        name, _, value = option.replace("=", ":", 1).partition(":")
        if name == "no-new-privileges":
            enabled = value in ("", "true", "1", "t")
    if not enabled:
        report(f"{_who(args)} may gain privileges (setuid): security_opts must end with no-new-privileges:true "
               "(and never set it to false)")


def memory_limited(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    memory = args.props.get("memory")
    if not isinstance(memory, (int, float)) or memory <= 0:
        report(f"{_who(args)} has no memory limit: set memory (MB)")


def database_not_published(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER and _role(args.props) == "database" and args.props.get("ports"):
        report(f"{_who(args)} publishes ports {args.props['ports']}: PostgreSQL is reached only through its socket")


def _mounts(props: dict) -> Iterator[tuple[str, str]]:
    """(source, target) of every mount, whichever input declares it: mounts[] or the older volumes[]."""
    for mount in props.get("mounts") or []:
        yield str(mount.get("source") or ""), str(mount.get("target") or "")
    for volume in props.get("volumes") or []:
        yield str(volume.get("hostPath") or volume.get("volumeName") or ""), str(volume.get("containerPath") or "")


def _reaches_docker_socket(host_path: str) -> bool:
    """The host path is a docker.sock, or a directory that holds the engine's socket ('/', '/run', '/var')."""
    if not host_path.startswith("/"):
        return host_path.endswith("docker.sock")   # a volume name; Docker reads "/..." as a host path
    path = posixpath.normpath("/" + host_path.lstrip("/")).rstrip("/")
    return path.endswith("docker.sock") or any(socket.startswith(path + "/") for socket in DOCKER_SOCKETS)


def socket_only_for_database_and_backend(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER or _role(args.props) in SOCKET_ROLES:
        return
    for source, target in _mounts(args.props):
        if posixpath.normpath(target or "/") == SOCKET_DIR or source.endswith("-pgsocket"):
            report(f"{_who(args)} mounts the database socket volume: only {', '.join(SOCKET_ROLES)} may")


def no_docker_socket(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        for source, _ in _mounts(args.props):
            if _reaches_docker_socket(source):
                report(f"{_who(args)} mounts {source}, which reaches Docker's socket (root on the host): "
                       "remove the mount")
    if args.resource_type == VOLUME:   # a local volume can bind a host path (driver_opts o=bind, device=PATH)
        device = str((args.props.get("driverOpts") or {}).get("device") or "")
        if device and _reaches_docker_socket(device):
            report(f"volume {args.name} binds {device}, which reaches Docker's socket: remove driver_opts.device")


def data_volume_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != VOLUME or not str(args.props.get("name") or "").endswith(DATA_VOLUME_SUFFIX):
        return
    if not (args.opts and args.opts.protect):
        report(f"volume {args.name} holds the database's data: declare it with protect=True "
               "(and retain_on_delete=True, which the engine does not show to policies)")


def _text(value: Any) -> str:
    """Every string in an input, argv lists joined by spaces; provider inputs reach the engine JSON-encoded."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value) if value.lstrip()[:1] in ("[", "{") else value
        except ValueError:
            decoded = value
        return value if isinstance(decoded, str) else _text(decoded)
    if isinstance(value, dict):
        return " ".join(_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return ""


def ssh_host_keys_checked(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # Anywhere: a provider's sshOpts, a command's script or environment. ssh uses the first value it reads, so an
    # ssh:// provider states yes itself (a ~/.ssh/config can say no).
    values = [v.lower() for v in HOST_KEY_CHECK.findall(_text(args.props))]
    loose = [v for v in values if v not in HOST_KEY_CHECKED]
    if loose:
        report(f"{args.resource_type} {args.name} turns off SSH host key checking (StrictHostKeyChecking="
               f"{loose[0] or '?'}): pin the host key (StrictHostKeyChecking=yes with a known_hosts file)")
    elif args.resource_type == DOCKER_PROVIDER and str(args.props.get("host") or "").startswith("ssh://") \
            and not values:
        report(f"docker provider {args.name} reaches {args.props['host']} without StrictHostKeyChecking=yes in "
               "ssh_opts: pin the host key (-o StrictHostKeyChecking=yes -o UserKnownHostsFile=FILE)")


def remote_commands_pin_the_host_key(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in REMOTE_COMMANDS:
        return
    connection = args.props.get("connection") or {}
    if not str(connection.get("hostKey") or "").strip():
        report(f"remote command {args.name} connects to {connection.get('host') or 'its host'} without a pinned "
               "host key (any server would be trusted): set connection.host_key")


def _policy(name: str, description: str, validate: Callable) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description, validate=validate)


POLICIES = [
    _policy("containers-run-as-non-root", "Every container runs as an unprivileged user.", non_root_user),
    _policy("containers-not-privileged", "No container is privileged, shares a host namespace or runs unconfined.",
            not_privileged),
    _policy("containers-read-only-root", "Every container has a read-only root filesystem.", read_only_root),
    _policy("containers-drop-all-capabilities", "Every container drops all capabilities.", all_capabilities_dropped),
    _policy("containers-no-new-privileges", "Every container sets no-new-privileges.", no_new_privileges),
    _policy("containers-memory-limit", "Every container has a memory limit.", memory_limited),
    _policy("database-port-not-published", "The database publishes no port.", database_not_published),
    _policy("socket-volume-db-and-backend-only", "Only the database, backend and backup job mount the socket volume.",
            socket_only_for_database_and_backend),
    _policy("docker-socket-never-mounted", "No container mounts Docker's socket or a directory holding it.",
            no_docker_socket),
    _policy("data-volume-protected", "The database's data volume is protected.", data_volume_protected),
    _policy("ssh-host-key-checking", "Nothing disables SSH host key checking; an ssh:// docker provider pins it.",
            ssh_host_keys_checked),
    _policy("remote-commands-pin-host-key", "Every remote command pins its host's key.",
            remote_commands_pin_the_host_key),
]
