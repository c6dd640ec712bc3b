"""Issue 22: with no webstack:release, the release is the project's git commit (as Kamal does)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.git_release import git_release
from components.settings_loader import ConfigError, load_settings

pytestmark = pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                                reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "app.py").write_text("print('one')\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_a_clean_checkout_is_released_as_its_commit(repo):
    assert git_release(repo) == git(repo, "rev-parse", "--short=12", "HEAD")


def test_a_new_commit_is_a_new_release(repo):
    first = git_release(repo)
    (repo / "app.py").write_text("print('two')\n")
    git(repo, "commit", "-q", "-am", "two")
    assert git_release(repo) not in (first, "") and git_release(repo) == git(repo, "rev-parse", "--short=12", "HEAD")


def test_changed_and_untracked_files_make_a_dirty_release_named_after_the_changes(repo):
    commit = git_release(repo)
    (repo / "app.py").write_text("print('changed')\n")
    changed = git_release(repo)
    assert changed.startswith(f"{commit}-dirty-") and len(changed) == len(commit) + 15
    (repo / "new.py").write_text("x = 1\n")
    with_new_file = git_release(repo)
    (repo / "new.py").write_text("x = 2\n")
    assert len({changed, with_new_file, git_release(repo)}) == 3   # other changes, other releases
    assert git_release(repo) == git_release(repo)                  # and the same tree, the same release


def test_the_stack_files_are_config_not_code(repo):
    (repo / "Pulumi.dev.yaml").write_text("config: {webstack:domain: example.com}\n")
    (repo / "Pulumi.prod.yaml").write_text("config: {}\n")
    assert git_release(repo) == git(repo, "rev-parse", "--short=12", "HEAD")


def test_an_unset_release_outside_git_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings({}, set(), "test", tmp_path)
    problems = dict(error.value.problems)
    assert "cannot be the git commit" in problems["release"]
    assert "pulumi config set webstack:release v1" in problems["release"]


def test_an_explicit_release_wins_over_git(repo):
    from tests.stack_config import PROJECT_DIR
    assert load_settings({"release": "v7"}, set(), "test", PROJECT_DIR).release == "v7"
    assert load_settings({"release": ""}, set(), "test", PROJECT_DIR).release == git_release(PROJECT_DIR)


def entry_of(config: dict, environment: dict):
    from pulumi import automation as auto
    return auto.UpdateSummary(kind="update", start_time=None, message="", environment=environment,
                              config={k: {"value": v, "secret": False} for k, v in config.items()},
                              result="succeeded", end_time=None, version=1, deployment=None, resource_changes=None)


HEAD = "0123456789ab" + "0" * 28


@pytest.mark.parametrize("config, environment, on_target, expected", [
    ({"webstack:release": "v3"}, {"git.head": HEAD}, set(), "v3"),
    ({}, {"git.head": HEAD, "git.dirty": "false"}, {"0123456789ab", "v1"}, "0123456789ab"),
    # Pulumi's git.dirty counts the stack file, the release does not: the target's one release of the commit.
    ({}, {"git.head": HEAD, "git.dirty": "true"}, {"0123456789ab", "v1"}, "0123456789ab"),
    ({"webstack:release": ""}, {"git.head": HEAD, "git.dirty": "true"}, {"0123456789ab-dirty-00ff00ff"},
     "0123456789ab-dirty-00ff00ff"),
    ({}, {"git.head": HEAD, "git.dirty": "false"}, {"0123456789ab", "0123456789ab-dirty-00ff00ff"}, "0123456789ab"),
])
def test_a_rollback_finds_the_release_of_a_version_that_released_its_commit(config, environment, on_target,
                                                                            expected):
    from ops.rollback import release_of
    assert release_of(entry_of(config, environment), 1, on_target) == expected


@pytest.mark.parametrize("environment, on_target, words", [
    ({}, set(), "recorded no git commit"),
    ({"git.head": HEAD}, {"v1"}, "no release of it is on the target"),
    ({"git.head": HEAD, "git.dirty": "true"}, {"0123456789ab", "0123456789ab-dirty-00ff00ff"}, "several releases"),
])
def test_a_rollback_refuses_a_version_whose_release_it_cannot_name(environment, on_target, words):
    from ops.errors import OpsError
    from ops.rollback import release_of
    with pytest.raises(OpsError, match=words):
        release_of(entry_of({}, environment), 4, on_target)


def summary(version: int, release: str, result: str = "succeeded", head: str = "") -> "auto.UpdateSummary":
    from pulumi import automation as auto
    return auto.UpdateSummary(kind="update", start_time=None, message="", result=result, end_time=None,
                              environment={"git.head": head} if head else {}, version=version, deployment=None,
                              config={"webstack:release": {"value": release, "secret": False}},
                              resource_changes=None)


def test_the_default_rollback_target_ran_another_release_not_a_no_change_up():
    """Issue 22: after two no-change `pulumi up`s (successful updates too), `ops rollback --yes` "rolled back" to
    the same release. Newest first, as `pulumi stack history` lists them."""
    from ops.rollback import choose
    history = [summary(5, "r2"), summary(4, "r2"), summary(3, "r2"), summary(2, "r1", "failed"), summary(1, "r1")]
    number, entry = choose(history, None)
    assert (number, entry.config["webstack:release"].value) == (1, "r1")


def test_with_the_release_from_git_another_commit_is_another_version():
    from ops.rollback import choose
    history = [summary(3, "", head="b" * 40), summary(2, "", head="b" * 40), summary(1, "", head="a" * 40)]
    assert choose(history, None)[0] == 1


def test_a_history_of_one_release_has_nothing_to_roll_back_to():
    from ops.errors import OpsError
    from ops.rollback import choose
    with pytest.raises(OpsError, match="another release or config"):
        choose([summary(2, "r1"), summary(1, "r1")], None)
