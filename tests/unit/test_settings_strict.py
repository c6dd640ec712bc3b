"""Settings refuse what a shell, a known_hosts file or a path could misread (review findings of issue 12)."""

from __future__ import annotations

import json
import shlex

import pytest

from components.settings_loader import ConfigError, load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import HOST_KEY


def load(values: dict, secrets: set[str] = frozenset(), stack: str = "test"):
    raw = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in {"release": "v1", **values}.items()}
    return load_settings(raw, set(secrets), stack, PROJECT_DIR)


def refused_path(values: dict, secrets: set[str] = frozenset(), stack: str = "test") -> str:
    with pytest.raises(ConfigError) as error:
        load(values, secrets, stack)
    return str(error.value)


SSH = {"kind": "ssh", "hostKey": HOST_KEY}
REFUSED = [
    ("docker host with a command substitution", {"target": {"dockerHost": "unix:///var/run/docker.sock $(touch /tmp/pwned) #"}}, "webstack:target.dockerHost"),
    ("docker host with a newline", {"target": {"dockerHost": "unix:///var/run/docker.sock\nid"}}, "webstack:target.dockerHost"),
    ("docker host over tcp without TLS", {"target": {"dockerHost": "tcp://10.0.0.5:2375"}}, "webstack:target.dockerHost"),
    ("release with a trailing newline", {"release": "v1\n"}, "webstack:release"),
    ("database name with a trailing newline", {"database": {"name": "appdb\n"}}, "webstack:database.name"),
    ("database user with a trailing newline", {"database": {"user": "app\n"}}, "webstack:database.user"),
    ("deploy user with a trailing newline", {"target": {"user": "deploy\n"}}, "webstack:target.user"),
    ("domain with a trailing newline", {"domain": "example.com\n"}, "webstack:domain"),
    ("health path with a trailing newline", {"backend": {"healthPath": "/ready\n"}}, "webstack:backend.healthPath"),
    ("env name with a trailing newline", {"backend": {"env": {"NAME\n": "x"}}}, "webstack:backend.env"),
    ("host key with a trailing newline in the middle", {"target": {**SSH, "host": "h", "hostKey": HOST_KEY + "\n"}}, None),
    ("ssh host with an IPv6 zone id", {"target": {**SSH, "host": "fe80::1%*"}}, "webstack:target.host"),
    ("publish address with an IPv6 zone id", {"publishAddress": "fe80::1%eth0"}, "webstack:publishAddress"),
]


@pytest.mark.parametrize("case,values,path", [c for c in REFUSED if c[2]], ids=[c[0] for c in REFUSED if c[2]])
def test_values_a_shell_or_ssh_could_misread_are_refused(case, values, path):
    assert f"{path}:" in refused_path(values)


@pytest.mark.parametrize("stack", ["..", ".", "../prod", "a/b", "dev\n", "-x", ".hidden", "a b", ""])
def test_a_stack_name_that_is_not_a_simple_name_is_refused(stack):
    assert "stack" in refused_path({}, stack=stack)


@pytest.mark.parametrize("stack", ["dev", "prod", "staging-2", "eu_west.1"])
def test_simple_stack_names_are_accepted(stack):
    assert load({}, stack=stack).stack == stack


def test_a_unix_socket_docker_host_is_accepted():
    assert load({"target": {"dockerHost": "unix:///run/user/1000/docker.sock"}}).target.dockerHost == \
        "unix:///run/user/1000/docker.sock"


def test_the_docker_host_reaches_the_local_shell_quoted(tmp_path):
    """Even a value that slipped past validation is one word to the shell: it never runs as a command."""
    import shlex

    import pulumi
    from pulumi.runtime.sync_await import _sync_await

    from components.remote_host import RemoteHost
    from tests.program import ProgramMocks

    marker = tmp_path / "pwned"
    settings = load({})
    hostile = settings.model_copy(update={"target": settings.target.model_copy(
        update={"dockerHost": f"unix:///var/run/docker.sock $(touch {marker}) #"})})
    pulumi.runtime.set_mocks(ProgramMocks(), project="webstack", stack="test", preview=False)
    host = RemoteHost("host", hostile)
    command = host.run("probe", create="info", stdin="", triggers=[], opts=pulumi.ResourceOptions())
    create = _sync_await(command.create.future())
    assert shlex.split(create) == ["docker", "-H", hostile.target.dockerHost, "info"]


def test_values_in_the_bootstrap_script_are_shell_quoted():
    from components import rendering

    settings = load({})
    hostile = settings.model_copy(update={"target": settings.target.model_copy(update={"user": 'x"; touch /tmp/p; "'})})
    script = rendering.render_bootstrap(hostile, "20.10")
    assert f"deploy_user={shlex.quote(hostile.target.user)}\n" in script
