"""App volumes come back with the database (issue 21): containers/backup/webstack_backup.py archives each app volume
into the backup set and restores it entry by entry, keeping the previous entries, refusing anything in an archive
that is not a file or a directory under the volume's own name. Real files in a temporary directory; the job's code
runs unchanged with /backups and /volumes pointed there."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from tests.unit.test_backups import tool  # noqa: F401 - the fixture

NAME = "20261203T101500Z-manual"


@pytest.fixture
def job(tool, tmp_path, monkeypatch):
    volumes = tmp_path / "volumes"
    (volumes / "media" / "avatars").mkdir(parents=True)
    (volumes / "media" / "avatars" / "a.png").write_bytes(b"original a")
    (volumes / "media" / "notes.txt").write_text("original notes")
    monkeypatch.setattr(tool, "VOLUMES", volumes)
    monkeypatch.setenv("WEBSTACK_VOLUMES", "media")
    monkeypatch.setenv("WEBSTACK_VOLUME_OWNER", f"{os.getuid()}:{os.getgid()}")
    return tool


def backup_set(tool, files: dict[str, bytes] | None = None) -> None:
    """A complete backup set holding the app volume, as dump() writes it (files: a hand-made archive instead)."""
    partial = tool.BACKUPS / f".partial-{NAME}"
    partial.mkdir()
    if files is None:
        relatives = tool.archive_volumes(partial)
    else:
        (partial / "volumes").mkdir()
        with tarfile.open(partial / "volumes/media.tar", "w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                if data is None:
                    info.type = tarfile.SYMTYPE
                    info.linkname = "/etc/passwd"
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        relatives = ["volumes/media.tar"]
    manifest = {"name": NAME, "project": "webstack", "stack": "dev", "reason": "manual",
                "created": "2026-12-03T10:15:00+00:00", "files": tool.file_entries(partial, relatives)}
    tool.seal(partial, tool.BACKUPS / NAME, manifest, None)


def contents(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not str(p.relative_to(root)).startswith(".webstack-")}


def test_a_volume_comes_back_as_it_was_and_the_replaced_entries_are_kept(job):
    backup_set(job)
    media = job.VOLUMES / "media"
    before = contents(media)
    (media / "notes.txt").write_text("changed after the backup")
    (media / "avatars" / "a.png").unlink()
    (media / "new.txt").write_text("written after the backup")
    done = job.restore_volumes(NAME, ["media"], job.BACKUPS, "webstack", "dev")
    assert contents(media) == before
    kept = media / done["kept"]
    assert (kept / "notes.txt").read_text() == "changed after the backup" and (kept / "new.txt").exists()
    assert done["volumes"] == {"media": 4}   # the volume's directory, avatars/, avatars/a.png, notes.txt
    assert not list(media.glob(".webstack-restore-*"))


def test_what_a_restore_set_aside_is_not_archived_again(job):
    (job.VOLUMES / "media" / ".webstack-pre-restore-20260101T000000Z").mkdir()
    (job.VOLUMES / "media" / ".webstack-pre-restore-20260101T000000Z" / "old.bin").write_bytes(b"x" * 100)
    backup_set(job)
    with tarfile.open(job.BACKUPS / NAME / "volumes/media.tar") as tar:
        assert not [n for n in tar.getnames() if ".webstack-" in n], tar.getnames()


@pytest.mark.parametrize("hostile", [{"media/link": None}, {"media/../escape.txt": b"x"}, {"other/x.txt": b"x"},
                                     {"/media/abs.txt": b"x"}])
def test_an_archive_entry_that_is_no_file_under_the_volume_is_refused_and_nothing_changes(job, hostile):
    backup_set(job, {"media/ok.txt": b"fine", **hostile})
    before = contents(job.VOLUMES / "media")
    with pytest.raises(job.Refused, match="refused, nothing of the volume was changed"):
        job.restore_volumes(NAME, ["media"], job.BACKUPS, "webstack", "dev")
    assert contents(job.VOLUMES / "media") == before
    assert not (job.VOLUMES / "escape.txt").exists()


def test_a_set_without_the_volume_or_a_corrupted_archive_is_refused(job):
    backup_set(job)
    with pytest.raises(job.Refused, match="holds no copy of app volume"):
        job.restore_volumes(NAME, ["uploads"], job.BACKUPS, "webstack", "dev")
    with open(job.BACKUPS / NAME / "volumes/media.tar", "r+b") as archive:
        archive.seek(600)
        archive.write(b"tampered")
    with pytest.raises(job.Refused, match="is corrupted"):
        job.restore_volumes(NAME, ["media"], job.BACKUPS, "webstack", "dev")


def test_a_restore_point_names_its_volume_set_for_a_restore_by_time(job):
    backup_set(job)
    import datetime as dt
    late = dt.datetime(2026, 12, 3, 11, 0, tzinfo=dt.timezone.utc)
    early = dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.timezone.utc)
    assert job.volume_set_before(late, job.BACKUPS, "webstack", "dev").name == NAME
    assert job.volume_set_before(early, job.BACKUPS, "webstack", "dev") is None
    assert job.volumes_in(json.loads((job.BACKUPS / NAME / "manifest.json").read_text())) == ["media"]
