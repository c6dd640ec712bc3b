"""containers/base/build-base-image.sh, run for real with fake debootstrap/chroot/docker on PATH that record
what they were asked: signatures are checked, the image's apt sources have updates and security, packages are
upgraded from them, the image is labelled with its build date, and an image older than the limit is rebuilt."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest

from tests.stack_config import PROJECT_DIR

SCRIPT = PROJECT_DIR / "containers" / "base" / "build-base-image.sh"

FAKES = {
    # `docker image inspect -f LABEL` answers the fake image's build date; `import` records its options.
    "docker": '''#!/bin/sh
echo "docker $*" >> "$RECORD/calls"
case "$1 $2" in
  "image inspect")
    [ -n "$FAKE_BUILT" ] || exit 1
    case "$*" in *webstack.base.built*) echo "$FAKE_BUILT" ;; *Size*) echo 123456789 ;; esac ;;
  "import "*) cat > /dev/null ;;
esac
exit 0
''',
    "debootstrap": '''#!/bin/sh
echo "debootstrap $*" >> "$RECORD/calls"
for last in "$@"; do :; done
eval "root=\\${$(($# - 1))}"
mkdir -p "$root/etc/apt/sources.list.d" "$root/var/cache/apt/archives" "$root/var/lib/apt/lists"
''',
    "id": '''#!/bin/sh
echo "${FAKE_UID:-0}"
''',
    "chroot": '''#!/bin/sh
echo "chroot $*" >> "$RECORD/calls"
cp "$1/etc/apt/sources.list.d/debian.sources" "$RECORD/sources"
''',
}


@pytest.fixture
def fake(tmp_path: Path):
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    for name, text in FAKES.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    keyring = tmp_path / "keyring.gpg"
    keyring.write_text("not empty")

    def run(built: str = "", *args: str, max_age: str = "7", uid: str = "0") -> tuple[subprocess.CompletedProcess, str]:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record), "FAKE_BUILT": built,
               "DEBIAN_KEYRING": str(keyring), "DEBIAN_MIRROR": "http://mirror.test/debian",
               "DEBIAN_SECURITY_MIRROR": "http://security.test/debian-security",
               "WEBSTACK_BASE_MAX_AGE_DAYS": max_age, "FAKE_UID": uid}
        result = subprocess.run(["bash", str(SCRIPT), *args, "webstack-test-base:x"], capture_output=True, text=True,
                                env=env, timeout=60)
        calls = (record / "calls").read_text() if (record / "calls").exists() else ""
        return result, calls
    run.record, run.keyring = record, keyring
    return run


def days_ago(days: int) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_debootstrap_checks_signatures_against_the_archive_keyring(fake):
    result, calls = fake()
    assert result.returncode == 0, result.stderr
    debootstrap = next(line for line in calls.splitlines() if line.startswith("debootstrap "))
    assert f"--keyring {fake.keyring}" in debootstrap and "--force-check-gpg" in debootstrap


def test_the_image_sources_have_updates_and_security_and_packages_are_upgraded_from_them(fake):
    result, calls = fake()
    assert result.returncode == 0, result.stderr
    sources = (fake.record / "sources").read_text()
    assert "Suites: bookworm bookworm-updates" in sources and "Suites: bookworm-security" in sources
    assert "URIs: http://security.test/debian-security" in sources
    assert sources.count("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg") == 2
    assert "apt-get -q -y upgrade" in next(line for line in calls.splitlines() if line.startswith("chroot "))


def test_the_image_is_labelled_with_its_build_date(fake):
    _, calls = fake()
    imported = next(line for line in calls.splitlines() if line.startswith("docker import "))
    assert "LABEL webstack.base.built=" + dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d") in imported


def test_a_recent_image_is_kept(fake):
    result, calls = fake(days_ago(2))
    assert result.returncode == 0 and "nothing to do" in result.stdout
    assert "debootstrap" not in calls


@pytest.mark.parametrize("built", [days_ago(8), ""], ids=["older than the limit", "missing"])
def test_an_old_or_missing_image_is_rebuilt(fake, built):
    result, calls = fake(built)
    assert result.returncode == 0, result.stderr
    assert "debootstrap " in calls


def test_an_unlabelled_image_from_an_older_script_is_rebuilt(fake):
    result, calls = fake("<no value>")
    assert "no build date" in result.stdout and "debootstrap " in calls


def test_force_rebuilds_a_recent_image(fake):
    _, calls = fake(days_ago(0), "--force")
    assert "debootstrap " in calls


def test_a_rebuild_without_root_says_to_run_it_as_root_before_debootstrap_starts(fake):
    """`pulumi up` runs this script for a local target and for baseImageSource operator: debootstrap's own
    failure as a user is buried in its log."""
    result, calls = fake(days_ago(8), uid="1000")
    assert result.returncode == 1
    assert "error: building the base image webstack-test-base:x needs root (debootstrap and chroot)" in result.stderr
    assert "sudo " in result.stderr and "build-base-image.sh webstack-test-base:x" in result.stderr
    assert "debootstrap " not in calls


def test_a_young_image_needs_no_root(fake):
    result, calls = fake(days_ago(1), uid="1000")
    assert result.returncode == 0 and "nothing to do" in result.stdout
