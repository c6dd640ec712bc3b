"""RemoteHost under mocks: host keys are pinned everywhere, and the host is prepared in the right order.

The scan looks at every declared resource's inputs as the engine receives them, so an insecure ssh option
added anywhere in the program (a Provider's sshOpts, a command line, a script) fails here, not in production.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from components import rendering
from components.local_files import SshAccess
from components.base_image import refresh_script
from components.remote_host import bootstrap_command, preflight_script
from components.settings_loader import ConfigError, load_settings
from tests.program import ProgramRun, Registration, run_program
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import HOST_KEY, prod_secrets

INSECURE = [re.compile(r"StrictHostKeyChecking\s*[= ]\s*[\"']?(no|off|accept-new)\b", re.I),
            re.compile(r"UserKnownHostsFile\s*[= ]\s*[\"']?/dev/null", re.I),
            re.compile(r"InsecureIgnoreHostKey", re.I)]


def strings(value: Any) -> Iterator[str]:
    """Every string in an input; JSON-encoded lists (provider config) are decoded; lists also joined, so that
    `["-o", "StrictHostKeyChecking=no"]` and "-o StrictHostKeyChecking=no" both surface."""
    if isinstance(value, str):
        yield value
        if value[:1] in "[{":
            try:
                yield from strings(json.loads(value))
            except ValueError:
                pass
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        yield " ".join(str(item) for item in value)
        for item in value:
            yield from strings(item)


def connections(value: Any) -> Iterator[dict]:
    """Every remote connection in an input: an object with a host and a user (pulumi-command's shape)."""
    if isinstance(value, dict):
        if "host" in value and "user" in value and isinstance(value.get("host"), str) and "://" not in value["host"]:
            yield value
        for item in value.values():
            yield from connections(item)
    elif isinstance(value, list):
        for item in value:
            yield from connections(item)


def insecure_findings(run: ProgramRun) -> list[str]:
    findings = []
    for resource in run.resources:
        for text in strings(resource.inputs):
            findings += [f"{resource.name}: {pattern.pattern}" for pattern in INSECURE if pattern.search(text)]
        for connection in connections(resource.inputs):
            if not connection.get("hostKey"):
                findings.append(f"{resource.name}: remote connection to {connection['host']} without hostKey")
    return findings


def with_target(tls: dict, **fields) -> dict:
    secrets = prod_secrets(tls)
    secrets["webstack:target"] = {**secrets["webstack:target"], **fields}
    return secrets


@pytest.fixture(scope="module")
def prod_operator_image(prod_tls) -> ProgramRun:
    return run_program("prod", secret_overrides=with_target(prod_tls, baseImageSource="operator"))


def provider(run: ProgramRun) -> Registration:
    return next(r for r in run.resources if r.type == "pulumi:providers:docker")


def ssh_opts(run: ProgramRun) -> list[str]:
    return json.loads(provider(run).inputs["sshOpts"])


def option(opts: list[str], name: str) -> list[str]:
    return [opts[i + 1].split("=", 1)[1] for i, o in enumerate(opts[:-1]) if o == "-o" and opts[i + 1].startswith(name + "=")]


# --- no option anywhere turns host key checking off ---------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod", "prod_operator_image"])
def test_no_declared_input_turns_host_key_checking_off(stack, request):
    assert insecure_findings(request.getfixturevalue(stack)) == []


def test_the_scan_finds_insecure_options_and_unpinned_connections():
    """The scan itself works: otherwise the test above would pass whatever the program declares."""
    def registration(name: str, inputs: dict) -> Registration:
        return Registration(urn=name, type="t", name=name, inputs=inputs, secret_inputs={}, parent="", provider="",
                            protect=False, retain_on_delete=False, dependencies=[], custom=True)
    run = ProgramRun(resources=[
        registration("opts", {"sshOpts": json.dumps(["-o", "StrictHostKeyChecking=no"])}),
        registration("file", {"create": "ssh -o UserKnownHostsFile=/dev/null h"}),
        registration("spaced", {"args": ["-o", "StrictHostKeyChecking", "accept-new"]}),
        registration("conn", {"connection": {"host": "h", "user": "deploy", "port": 22.0}}),
        registration("fine", {"connection": {"host": "h", "user": "deploy", "hostKey": HOST_KEY},
                              "sshOpts": json.dumps(["-o", "StrictHostKeyChecking=yes"])})])
    assert {finding.split(":")[0] for finding in insecure_findings(run)} == {"opts", "file", "spaced", "conn"}


def test_every_remote_command_pins_the_configured_host_key(prod):
    remote_commands = prod.of_type("command:remote:Command")
    assert remote_commands
    for command in remote_commands:
        assert command.inputs["connection"]["hostKey"] == HOST_KEY, command.name


def test_provider_pins_exactly_the_configured_key_with_strict_checking(prod):
    opts = ssh_opts(prod)
    assert provider(prod).inputs["host"] == "ssh://deploy@203.0.113.10:22"
    assert option(opts, "StrictHostKeyChecking") == ["yes"]
    assert option(opts, "BatchMode") == ["yes"]
    assert option(opts, "GlobalKnownHostsFile") == ["/dev/null"]   # no second source of accepted keys
    [known_hosts] = option(opts, "UserKnownHostsFile")
    assert Path(known_hosts).read_text() == rendering.render_known_hosts("203.0.113.10", 22, HOST_KEY)
    assert stat.S_IMODE(Path(known_hosts).stat().st_mode) == 0o600


def test_private_key_reaches_ssh_as_a_0600_file_never_as_a_plain_input(prod):
    opts = ssh_opts(prod)
    key_file = Path(opts[opts.index("-i") + 1])
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and "PRIVATE KEY" in key_file.read_text()
    assert "IdentitiesOnly=yes" in opts
    for resource in prod.resources:
        if resource.type.startswith("command:local:") or resource.type.startswith("pulumi:providers:"):
            assert not any("PRIVATE KEY" in text for text in strings(resource.inputs)), resource.name


# --- order: preflight, bootstrap, (base image), then the Provider ---------------------------------------------

def test_preflight_runs_locally_with_the_providers_exact_ssh_options(prod):
    preflight = prod.named("host-preflight")
    assert preflight.type == "command:local:Command"
    env = preflight.inputs["environment"]
    assert env["WEBSTACK_SSH_OPTS"].split("\n") == ssh_opts(prod)
    assert (env["WEBSTACK_HOST"], env["WEBSTACK_PORT"], env["WEBSTACK_USER"]) == ("203.0.113.10", "22", "deploy")
    assert env["WEBSTACK_MIN_DOCKER_VERSION"] == "20.10"
    assert preflight.inputs["create"] == preflight_script()


def test_bootstrap_runs_after_the_preflight_and_the_provider_after_the_bootstrap(prod):
    bootstrap, preflight = prod.named("host-bootstrap"), prod.named("host-preflight")
    assert bootstrap.type == "command:remote:Command"
    assert preflight.urn in bootstrap.dependencies
    assert provider(prod).dependencies == [bootstrap.urn]


@pytest.mark.parametrize("stack", ["prod", "prod_operator_image"])
def test_the_base_image_is_refreshed_after_the_bootstrap_over_the_providers_ssh_and_before_any_image(stack, request):
    run = request.getfixturevalue(stack)
    refresh = run.named("base-image-refresh")
    assert refresh.type == "command:local:Command"
    assert run.named("host-bootstrap").urn in refresh.dependencies
    assert refresh.inputs["environment"]["WEBSTACK_IMAGE"] == "debian:bookworm-slim"
    assert refresh.inputs["environment"]["WEBSTACK_SSH_OPTS"].split("\n") == ssh_opts(run)
    for image in run.of_type("docker:index/remoteImage:RemoteImage"):
        assert refresh.urn in image.dependencies or \
            refresh.urn in run.named(f"{image.name}-guard").dependencies, image.name


def test_connect_timeout_reaches_every_ssh_client(prod_tls):
    run = run_program("prod", secret_overrides=with_target(prod_tls, connectTimeout=4))
    assert option(ssh_opts(run), "ConnectTimeout") == ["4"]
    assert run.named("host-bootstrap").inputs["connection"]["perDialTimeout"] == 4
    assert run.named("host-preflight").inputs["environment"]["WEBSTACK_CONNECT_TIMEOUT"] == "4"


def test_dev_declares_no_ssh_at_all(dev):
    assert not [r for r in dev.resources if r.name.startswith("host-") and r.type.startswith("command:")]
    assert "sshOpts" not in provider(dev).inputs


# --- settings -------------------------------------------------------------------------------------------------

def test_base_image_source_is_host_or_operator():
    with pytest.raises(ConfigError) as error:
        load_settings({"release": "r", "target": {"kind": "ssh", "host": "h", "hostKey": HOST_KEY,
                                                  "baseImageSource": "registry"}}, set(), "prod", PROJECT_DIR)
    assert "webstack:target.baseImageSource" in str(error.value)


# --- the scripts -------------------------------------------------------------------------------------------

def test_operator_scripts_are_valid_posix_shell(tmp_path):
    operator = load_settings({"release": "r", "target": {"kind": "ssh", "host": "h", "hostKey": HOST_KEY,
                                                         "baseImageSource": "operator"}}, set(), "prod", PROJECT_DIR)
    for name, text in {"preflight": preflight_script(), "base image": refresh_script(operator)}.items():
        (tmp_path / name).write_text(text)
        result = subprocess.run(["sh", "-n", str(tmp_path / name)], capture_output=True, text=True)
        assert result.returncode == 0, (name, result.stderr)


def test_bootstrap_command_runs_the_script_under_sh_whatever_the_login_shell():
    settings = load_settings({"release": "r"}, set(), "prod", PROJECT_DIR)
    command = bootstrap_command(settings)
    assert command.startswith("sh -c '#!/bin/sh")
    # The login shell (bash here) hands sh exactly the rendered script.
    result = subprocess.run(["bash", "-c", command.replace("sh -c ", "printf %s ", 1)], capture_output=True, text=True)
    script = rendering.render_bootstrap(settings, "20.10")
    assert result.stdout == script + "webstack-bootstrap"      # printf also prints the $0 argument
    assert subprocess.run(["sh", "-n", "-c", script]).returncode == 0


def test_ssh_options_quote_paths_with_spaces_and_percent_signs():
    access = SshAccess(host="h", port=2222, user="deploy", known_hosts=Path("/a b/%h"), identity=Path("/k"))
    assert option(access.options, "UserKnownHostsFile") == ['"/a b/%%h"']
    assert access.docker_host == "ssh://deploy@h:2222"
    assert access.options[-2:] == ["-i", "/k"]


def test_finding_14_no_remote_command_carries_the_previous_output_into_its_command_line(prod):
    """sshd refuses environment variables it was not told to accept, and the command provider then writes them
    as `export NAME='value';` in front of the remote command line: the previous output (which may hold what a
    script printed) would be in the host's process list. Every remote command turns that off."""
    commands = prod.of_type("command:remote:Command")
    assert {c.name for c in commands} >= {"host-bootstrap", "pids-limits-update"}
    assert all(c.inputs.get("addPreviousOutputInEnv") is False for c in commands), \
        [c.name for c in commands if c.inputs.get("addPreviousOutputInEnv") is not False]
