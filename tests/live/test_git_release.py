"""Releases from git through the real engine (issue 22): a project copy in its own git repository, no
webstack:release set. `pulumi up` deploys release = the commit; a new commit with a code change and one `up`
serve the new code; `python -m ops rollback` to the first version serves the old code again."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.live.test_scenarios import TLS, LiveStack, deployed

pytestmark = pytest.mark.live
STACK = "gitrel"
MARKER = '<p id="second-commit">second commit</p>'


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=webstack test",
                           "-c", "user.email=test@webstack.test", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


class GitStack(LiveStack):
    def __init__(self, directory: Path):
        super().__init__(directory, stack=STACK)
        self.engine.base_config.pop("webstack:release", None)
        self.repo = self.engine.work_dir
        git(self.repo, "init", "-q")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "first")

    def head(self) -> str:
        return git(self.repo, "rev-parse", "--short=12", "HEAD")

    def page(self) -> str:
        with urllib.request.urlopen(self.url, context=TLS, timeout=10) as response:
            return response.read().decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    yield from deployed(lambda: GitStack(tmp_path_factory.mktemp("gitrel")), request, "release from git")


def test_1_an_unset_release_deploys_the_commit(stack):
    first = stack.up()
    assert first.outputs["release"] == stack.head()
    assert MARKER not in stack.page()
    stack.figures["first commit"] = f"{first.outputs['release']}: {first.seconds:.1f}s"


def test_2_a_new_commit_and_one_up_serve_the_new_code(stack):
    index = stack.repo / "containers" / "web" / "src" / "index.html"
    index.write_text(index.read_text().replace("</body>", f"{MARKER}\n</body>"))
    git(stack.repo, "commit", "-q", "-am", "second")
    second = stack.up()
    assert second.outputs["release"] == stack.head()
    assert MARKER in stack.page()
    stack.figures["second commit"] = f"{second.outputs['release']}: {second.seconds:.1f}s"


def test_3_a_rollback_serves_the_first_commits_code(stack):
    first = git(stack.repo, "rev-parse", "--short=12", "HEAD~1")
    result = stack.engine.ops("rollback", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"rolled back to release {first}" in result.stdout, result.stdout
    assert "pulumi config rm webstack:release" in result.stdout
    assert MARKER not in stack.page()
