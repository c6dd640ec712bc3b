"""Pure translation of a Container's declared inputs into `docker create` arguments and an upload tar.

The real provider calls ContainerCreate with the same settings through the Docker API; the CLI flags below set
the same HostConfig/Config fields. Two places where the CLI cannot say exactly what the API can:
- healthcheck `["CMD", a, b]` becomes `--health-cmd "a b"`, which Docker stores as CMD-SHELL (needs /bin/sh
  in the image; the images here have it);
- `entrypoints` with several elements: the first becomes --entrypoint, the rest lead the command. Docker runs
  entrypoint + cmd, so the process started is the same.
"""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
import time
from pathlib import Path
from typing import Any


def _int(value: Any) -> int:
    return int(float(value))   # numbers arrive as floats under mocks


def _mount(m: dict) -> str:
    parts = [f"type={m['type']}", f"target={m['target']}"]
    if m.get("source"):
        parts.append(f"source={m['source']}")
    if m.get("readOnly"):
        parts.append("readonly")
    if (m.get("bindOptions") or {}).get("propagation"):
        parts.append(f"bind-propagation={m['bindOptions']['propagation']}")
    vo = m.get("volumeOptions") or {}
    if vo.get("noCopy"):
        parts.append("volume-nocopy=true")
    if vo.get("driverName"):
        parts.append(f"volume-driver={vo['driverName']}")
    parts += [f"volume-label={item['label']}={item['value']}" for item in vo.get("labels") or []]
    parts += [f"volume-opt={k}={v}" for k, v in (vo.get("driverOptions") or {}).items()]
    to = m.get("tmpfsOptions") or {}
    if to.get("sizeBytes"):
        parts.append(f"tmpfs-size={_int(to['sizeBytes'])}")
    if to.get("mode"):
        parts.append(f"tmpfs-mode={_int(to['mode']):o}")   # the provider takes os.FileMode as an integer
    return ",".join(parts)


def _health(hc: dict) -> list[str]:
    tests = list(hc.get("tests") or [])
    if not tests or tests[0] == "NONE":
        return ["--no-healthcheck"] if tests else []
    if tests[0] == "CMD-SHELL":
        args = ["--health-cmd", tests[1]]
    elif tests[0] == "CMD":
        args = ["--health-cmd", shlex.join(tests[1:])]
    else:
        raise ValueError(f"healthcheck.tests must start with CMD, CMD-SHELL or NONE, got {tests[0]!r}")
    for key, flag in (("interval", "--health-interval"), ("timeout", "--health-timeout"),
                      ("startPeriod", "--health-start-period")):
        if hc.get(key):
            args += [flag, hc[key]]
    if hc.get("retries"):
        args += ["--health-retries", str(_int(hc["retries"]))]
    return args


def create_args(inputs: dict, name: str) -> list[str]:
    """`docker create` arguments for the container as declared (networksAdvanced is connected afterwards)."""
    i = inputs
    args = ["create", "--name", name]
    args += [a for e in i.get("envs") or [] for a in ("-e", e)]
    if i.get("user"):
        args += ["--user", i["user"]]
    args += [a for g in i.get("groupAdds") or [] for a in ("--group-add", g)]
    if i.get("readOnly"):
        args.append("--read-only")
    caps = i.get("capabilities") or {}
    args += [a for c in caps.get("adds") or [] for a in ("--cap-add", c)]
    args += [a for c in caps.get("drops") or [] for a in ("--cap-drop", c)]
    args += [a for o in i.get("securityOpts") or [] for a in ("--security-opt", o)]
    if i.get("memory"):
        args += ["--memory", f"{_int(i['memory'])}m"]
    if i.get("memorySwap"):
        swap = _int(i["memorySwap"])
        args += ["--memory-swap", f"{swap}m" if swap > 0 else str(swap)]
    restart = i.get("restart") or "no"
    if restart == "on-failure" and i.get("maxRetryCount"):
        restart += f":{_int(i['maxRetryCount'])}"
    args += ["--restart", restart]
    args += ["--log-driver", i.get("logDriver") or "json-file"]
    args += [a for k, v in (i.get("logOpts") or {}).items() for a in ("--log-opt", f"{k}={v}")]
    args += [a for item in i.get("labels") or [] for a in ("--label", f"{item['label']}={item['value']}")]
    args += [a for m in i.get("mounts") or [] for a in ("--mount", _mount(m))]
    for v in i.get("volumes") or []:
        if v.get("fromContainer"):
            args += ["--volumes-from", v["fromContainer"]]
        else:
            spec = f"{v.get('hostPath') or v.get('volumeName') or ''}:{v['containerPath']}".lstrip(":")
            args += ["-v", spec + (":ro" if v.get("readOnly") else "")]
    args += [a for path, opts in (i.get("tmpfs") or {}).items() for a in ("--tmpfs", f"{path}:{opts}" if opts else path)]
    for p in i.get("ports") or []:
        external = str(_int(p["external"])) if p.get("external") else ""
        spec = f"{p.get('ip') or '0.0.0.0'}:{external}:{_int(p['internal'])}/{p.get('protocol') or 'tcp'}"
        args += ["-p", spec]
    if i.get("networkMode"):
        args += ["--network", i["networkMode"]]
    args += _health(i.get("healthcheck") or {})
    for key, flag in (("stopSignal", "--stop-signal"), ("hostname", "--hostname"), ("workingDir", "--workdir"),
                      ("cpuSet", "--cpuset-cpus")):
        if i.get(key):
            args += [flag, str(i[key])]
    for key, flag in (("stopTimeout", "--stop-timeout"), ("cpuShares", "--cpu-shares")):
        if i.get(key) is not None:
            args += [flag, str(_int(i[key]))]
    if i.get("shmSize"):
        args += ["--shm-size", f"{_int(i['shmSize'])}m"]
    args += [a for u in i.get("ulimits") or [] for a in ("--ulimit", f"{u['name']}={_int(u['soft'])}:{_int(u['hard'])}")]
    args += [a for h in i.get("hosts") or [] for a in ("--add-host", f"{h['host']}:{h['ip']}")]
    args += [a for d in i.get("dns") or [] for a in ("--dns", d)]
    args += [a for d in i.get("dnsOpts") or [] for a in ("--dns-option", d)]
    args += [a for d in i.get("dnsSearch") or [] for a in ("--dns-search", d)]
    args += [a for k, v in (i.get("sysctls") or {}).items() for a in ("--sysctl", f"{k}={v}")]
    for key, flag in (("init", "--init"), ("privileged", "--privileged"), ("tty", "-t"), ("stdinOpen", "-i")):
        if i.get(key):
            args.append(flag)
    command = list(i.get("command") or [])
    if any(part == "" for part in command):
        raise ValueError("values for command may not be empty")   # the provider's own check
    entry = list(i.get("entrypoints") or [])
    if entry:
        args += ["--entrypoint", entry[0]]
        command = entry[1:] + command
    return args + [i["image"], *command]


def upload_tar(uploads: list[dict], project_dir: Path) -> bytes:
    """The tar the provider sends to CopyToContainer at "/": one member per upload, as the provider builds it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for up in uploads:
            given = [k for k in ("content", "contentBase64", "source") if up.get(k)]
            if len(given) != 1:
                raise ValueError("error with upload content: exactly one of 'content', 'content_base64', "
                                 f"or 'source' must be set (file {up.get('file')})")
            if up.get("content"):
                data = up["content"].encode()
            elif up.get("contentBase64"):
                data = base64.b64decode(up["contentBase64"])
            else:
                data = (project_dir / up["source"]).read_bytes()
            info = tarfile.TarInfo(up["file"].lstrip("/"))
            info.size, info.mtime = len(data), int(time.time())
            info.mode = int(up["permissions"], 8) if up.get("permissions") else (0o744 if up.get("executable") else 0o644)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
