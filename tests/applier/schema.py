"""Tables of the input fields the applier carries out, per resource type, and the check that enforces them.

Each table maps a camelCase wire name (as inputs arrive under mocks) to ANY (a scalar or list of scalars the
handler uses), MAP (a free-form mapping passed through whole) or a nested table (an object, or a list of
objects). A declared field missing from its type's table fails the run: nothing is silently ignored.
Three listed fields need no action by nature: Image.buildOnPreview (there is no preview here), a provider's
`version` (plugin selection) and Command.logging (what the CLI would display).
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import Unsupported

ANY = "any"
MAP = "map"
FREE = {}   # marker for types whose inputs are defined by their own provider (dynamic resources)

_LABELS = {"label": ANY, "value": ANY}

CONTAINER: dict[str, Any] = {
    "image": ANY, "name": ANY, "envs": ANY, "command": ANY, "entrypoints": ANY, "user": ANY, "groupAdds": ANY,
    "readOnly": ANY, "capabilities": {"adds": ANY, "drops": ANY}, "securityOpts": ANY, "memory": ANY,
    "memorySwap": ANY, "restart": ANY, "maxRetryCount": ANY, "logDriver": ANY, "logOpts": MAP,
    "labels": _LABELS, "uploads": {"file": ANY, "content": ANY, "contentBase64": ANY, "source": ANY,
                                   "executable": ANY, "permissions": ANY},
    "mounts": {"type": ANY, "target": ANY, "source": ANY, "readOnly": ANY,
               "bindOptions": {"propagation": ANY},
               "volumeOptions": {"noCopy": ANY, "labels": _LABELS, "driverName": ANY, "driverOptions": MAP},
               "tmpfsOptions": {"sizeBytes": ANY, "mode": ANY}},
    "volumes": {"containerPath": ANY, "hostPath": ANY, "volumeName": ANY, "readOnly": ANY, "fromContainer": ANY},
    "tmpfs": MAP, "ports": {"internal": ANY, "external": ANY, "ip": ANY, "protocol": ANY},
    "networksAdvanced": {"name": ANY, "aliases": ANY, "ipv4Address": ANY, "ipv6Address": ANY},
    "networkMode": ANY,
    "healthcheck": {"tests": ANY, "interval": ANY, "timeout": ANY, "startPeriod": ANY, "retries": ANY},
    "wait": ANY, "waitTimeout": ANY, "init": ANY, "stopSignal": ANY, "stopTimeout": ANY,
    "destroyGraceSeconds": ANY, "mustRun": ANY, "start": ANY, "removeVolumes": ANY, "hostname": ANY,
    "workingDir": ANY, "shmSize": ANY, "ulimits": {"name": ANY, "soft": ANY, "hard": ANY},
    "hosts": {"host": ANY, "ip": ANY}, "cpuShares": ANY, "cpuSet": ANY, "dns": ANY, "dnsOpts": ANY,
    "dnsSearch": ANY, "sysctls": MAP, "privileged": ANY, "tty": ANY, "stdinOpen": ANY,
}
NETWORK = {"name": ANY, "internal": ANY, "labels": _LABELS, "options": MAP, "driver": ANY, "attachable": ANY,
           "ipv6": ANY, "ipamConfigs": {"subnet": ANY, "gateway": ANY, "ipRange": ANY}}
VOLUME = {"name": ANY, "driver": ANY, "driverOpts": MAP, "labels": _LABELS}
IMAGE = {"imageName": ANY, "skipPush": ANY, "buildOnPreview": ANY,
         "build": {"context": ANY, "dockerfile": ANY, "args": MAP, "target": ANY, "network": ANY,
                   "addHosts": ANY, "builderVersion": ANY}}
REMOTE_IMAGE = {"name": ANY, "keepLocally": ANY, "forceRemove": ANY}
PROVIDER = {"host": ANY, "sshOpts": ANY, "disableDockerDaemonCheck": ANY, "version": ANY}
_CONNECTION = {"host": ANY, "port": ANY, "user": ANY, "privateKey": ANY, "hostKey": ANY, "agentSocketPath": ANY,
               "dialErrorLimit": ANY, "perDialTimeout": ANY}
LOCAL_COMMAND = {"create": ANY, "update": ANY, "delete": ANY, "dir": ANY, "environment": MAP, "interpreter": ANY,
                 "stdin": ANY, "triggers": ANY, "addPreviousOutputInEnv": ANY, "logging": ANY}
REMOTE_COMMAND = {"connection": _CONNECTION, "create": ANY, "update": ANY, "delete": ANY, "environment": MAP,
                  "stdin": ANY, "triggers": ANY, "addPreviousOutputInEnv": ANY, "logging": ANY}
COPY_TO_REMOTE = {"connection": _CONNECTION, "source": ANY, "remotePath": ANY, "triggers": ANY}
RANDOM_PASSWORD = {"length": ANY, "special": ANY, "overrideSpecial": ANY, "upper": ANY, "lower": ANY,
                   "numeric": ANY, "number": ANY, "minUpper": ANY, "minLower": ANY, "minNumeric": ANY,
                   "minSpecial": ANY, "keepers": MAP}


def check_fields(type_: str, inputs: Mapping[str, Any], table: Mapping[str, Any]) -> None:
    """Raise Unsupported naming the type and the field path of the first input the table does not cover."""
    if table is FREE:
        return
    _check(type_, inputs, table, "")


def _check(type_: str, value: Mapping[str, Any], table: Mapping[str, Any], prefix: str) -> None:
    for key, item in value.items():
        path = f"{prefix}{key}"
        if key not in table:
            raise Unsupported(f"{type_}: input field '{path}' is not carried out by the test applier "
                              f"(tests/applier/schema.py lists the handled fields); implement it there")
        spec = table[key]
        if isinstance(spec, dict) and item is not None:
            for index, element in enumerate(item if isinstance(item, list) else [item]):
                where = f"{path}[{index}]." if isinstance(item, list) else f"{path}."
                if isinstance(element, Mapping):
                    _check(type_, element, spec, where)
