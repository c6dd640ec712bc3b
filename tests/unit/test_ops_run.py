"""`python -m ops run` (issue 22): a one-off container made like the running backend, its environment on stdin."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.release_command import env_lines
from ops.errors import OpsError
from ops.run import create_script, environment, mount_flag, running_backend

BACKEND = {
    "Name": "/webstack-prod-backend-v2-1a2b3c4d-1", "Image": "sha256:" + "b" * 64, "State": {"Running": True},
    "Config": {"User": "1001:1001", "Env": ["PGHOST=/var/run/postgresql", "API_TOKEN=t0k3n'$(x)", "PATH=/usr/bin"],
               "Labels": {"webstack.stack": "prod", "webstack.role": "backend", "webstack.release": "v2"}},
    "HostConfig": {"GroupAdd": ["1500"], "Memory": 256 << 20, "CpuQuota": 50_000, "CpuPeriod": 100_000},
    "NetworkSettings": {"Networks": {"webstack-prod-data": {}, "webstack-prod-app": {}}},
    "Mounts": [{"Type": "volume", "Name": "webstack-prod-pgsocket", "Destination": "/var/run/postgresql", "RW": True},
               {"Type": "volume", "Name": "webstack-prod-vol-media", "Destination": "/app/media", "RW": True}],
}


def test_the_container_is_made_like_the_running_backend_and_gets_its_environment_from_stdin(tmp_path):
    record = tmp_path / "create.json"
    recorder = ("import json, os, sys; a = sys.argv[1:]; names = [v for p, v in zip(a, a[1:]) if p == '-e']; "
                f"open({str(record)!r}, 'w').write(json.dumps([a, {{n: os.environ[n] for n in names}}]))")
    fake = tmp_path / "docker"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = create ] && exec {sys.executable} -c \"{recorder}\" \"$@\"\nexit 0\n")
    fake.chmod(0o755)
    command = ["python3", "manage.py", "shell", "-c", "print('$(touch /tmp/x)')"]
    script = create_script(BACKEND, "webstack-prod-run-1", command, interactive=False)
    done = subprocess.run(["/bin/sh", "-c", script], input=env_lines(environment(BACKEND)), text=True,
                          capture_output=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"}, timeout=30)
    assert done.returncode == 0, done.stderr
    argv, env = json.loads(record.read_text())
    assert env == {"PGHOST": "/var/run/postgresql", "API_TOKEN": "t0k3n'$(x)", "PATH": "/usr/bin"}
    assert "t0k3n" not in " ".join(argv) and "t0k3n" not in script
    flags = " ".join(argv[: argv.index(BACKEND["Image"])])
    for expected in ("--name webstack-prod-run-1", "--user 1001:1001", "--group-add 1500", "--read-only",
                     "--cap-drop ALL", "--security-opt no-new-privileges:true", "--memory 256m", "--cpus 0.5",
                     "--pids-limit 1024", "--label webstack.role=run", "--network webstack-prod-app",
                     "--mount type=volume,src=webstack-prod-pgsocket,dst=/var/run/postgresql",
                     "--mount type=volume,src=webstack-prod-vol-media,dst=/app/media"):
        assert expected in flags, expected
    assert argv[argv.index(BACKEND["Image"]) + 1:] == command
    assert "--interactive" not in flags
    assert "--interactive --tty" in create_script(BACKEND, "c", ["sh"], interactive=True)


def test_a_running_backend_is_the_model_and_none_is_a_clear_error():
    stopped = {**BACKEND, "Name": "/a", "State": {"Running": False}}
    assert running_backend([stopped, BACKEND]) is BACKEND
    with pytest.raises(OpsError, match="no backend container runs"):
        running_backend([stopped])


def test_a_bind_mount_is_refused_as_a_change_by_hand():
    with pytest.raises(OpsError, match="changed by hand"):
        mount_flag({"Type": "bind", "Destination": "/etc", "RW": True})
    assert mount_flag({"Type": "volume", "Name": "v", "Destination": "/d", "RW": False}) == \
        "type=volume,src=v,dst=/d,readonly"
