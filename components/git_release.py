"""The release when `webstack:release` is not set: the project's git commit, as Kamal does.

`<12 hex of HEAD>`, or `<12 hex>-dirty-<8 hex>` when the project's files differ from that commit (the digest of
the changes and of the untracked files, so two different dirty trees are two releases and the image guard still
holds). Stack files (`Pulumi.<stack>.yaml`) do not count: they are config, which Pulumi's history keeps, not code.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

STACK_FILES = ":(exclude,glob)Pulumi.*.yaml"


class NoGitRelease(Exception):
    """The release cannot come from git: the message says why."""


def _git(project_dir: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(project_dir), *args], capture_output=True, timeout=60)
    except FileNotFoundError:
        raise NoGitRelease("git is not installed") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise NoGitRelease(f"{project_dir} is not in a git checkout with a commit ({reason[-1] if reason else 'git failed'})")
    return done.stdout


def git_release(project_dir: Path) -> str:
    commit = _git(project_dir, "rev-parse", "--short=12", "HEAD").decode().strip()
    changes = _git(project_dir, "diff", "HEAD", "--binary", "--", ".", STACK_FILES)
    untracked = sorted(p for p in _git(project_dir, "ls-files", "--others", "--exclude-standard", "-z", "--",
                                       ".", STACK_FILES).split(b"\0") if p)
    if not changes and not untracked:
        return commit
    digest = hashlib.sha256(changes)
    for path in untracked:
        file = project_dir / path.decode()
        digest.update(b"\0" + path + b"\0" + (file.read_bytes() if file.is_file() else b""))
    return f"{commit}-dirty-{digest.hexdigest()[:8]}"
