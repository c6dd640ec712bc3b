"""The operator's ssh: no user ssh_config, the deploy key outside the project, nothing written at preview."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from components.local_files import SshAccess
from components.remote_host import ssh_access
from components.settings_loader import load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import HOST_KEY

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"


def ssh_settings(project: Path, stack: str = "prod"):
    target = {"kind": "ssh", "host": "203.0.113.10", "hostKey": HOST_KEY, "privateKey": KEY}
    return load_settings({"release": "v1", "target": json.dumps(target)}, {"target"}, stack, project)


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder with its Pulumi.yaml (the project's name) and the build contexts the settings check for."""
    (tmp_path / "Pulumi.yaml").write_text("name: webstack\nruntime: python\n")
    for context in ("containers/backend", "containers/web"):
        (tmp_path / context).mkdir(parents=True)
        (tmp_path / context / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def test_every_ssh_connection_ignores_the_users_ssh_config():
    options = SshAccess(host="h", port=22, user="deploy", known_hosts=Path("/k")).options
    assert options[:2] == ["-F", "/dev/null"]   # ForwardAgent, ProxyCommand, KnownHostsCommand: none apply


def test_ssh_with_these_options_reads_no_user_config(tmp_path):
    """The real ssh (-G prints the configuration it would use) with a config that forwards the agent."""
    import shutil
    import subprocess
    if not shutil.which("ssh"):
        pytest.skip("no ssh client")
    options = SshAccess(host="h", port=22, user="deploy", known_hosts=tmp_path / "k").options
    config = tmp_path / "config"
    config.write_text("Host *\n  ForwardAgent yes\n  ProxyCommand nc %h %p\n")
    # The user's config is given as -F first; our -F /dev/null must win (ssh takes the last -F).
    result = subprocess.run(["ssh", "-F", str(config), *options, "-G", "h"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "forwardagent no" in result.stdout and "proxycommand" not in result.stdout


def test_the_private_key_is_never_written_into_the_project(project):
    access = ssh_access(ssh_settings(project))
    assert access.identity is not None and access.identity.read_text() == KEY
    assert not access.identity.resolve().is_relative_to(project.resolve())
    assert not [p for p in project.rglob("*") if p.is_file() and "PRIVATE KEY" in p.read_text(errors="ignore")]
    assert stat.S_IMODE(access.identity.stat().st_mode) == 0o600
    assert stat.S_IMODE(access.identity.parent.stat().st_mode) == 0o700


def test_the_key_path_is_stable_across_runs_so_the_provider_sees_no_change(project):
    assert ssh_access(ssh_settings(project)).identity == ssh_access(ssh_settings(project)).identity


def test_two_stacks_never_share_a_key_file(project):
    assert ssh_access(ssh_settings(project, "prod")).identity != ssh_access(ssh_settings(project, "staging")).identity


def test_nothing_is_written_at_preview(project, monkeypatch):
    import pulumi
    monkeypatch.setattr(pulumi.runtime, "is_dry_run", lambda: True)
    access = ssh_access(ssh_settings(project, "previewonly"))
    assert access.identity is not None and not access.identity.exists()
    assert not (project / ".webstack").exists()
