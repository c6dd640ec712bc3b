"""Finding 7 (issue 19): the base image is refreshed at the first `up` of each ISO week, and every long-lived image
whose base changed is rebuilt on that `up` (components/base_image.py, components/images.py).

Under the mocks the refresh and the release images' guards print tests.program.BASE_IMAGE_ID, as the real scripts
print the base image's ID on their last line; templates/host/base-image.sh.j2 itself runs in
test_base_image_script.py.
"""

from __future__ import annotations

import datetime as dt

import pulumi
import pytest

from components.base_image import base_image_id, iso_week, utc_today
from tests.program import BASE_IMAGE_ID, ProgramRun, run_program

IMAGE = "docker:index/remoteImage:RemoteImage"
MOCK_IMAGE_ID = "sha256:" + "0" * 64   # what the mocks give every RemoteImage as imageId
LONG_LIVED = ("db", "edge", "backup")
ACME = {"webstack:domain": "app.example.com", "webstack:tls": {"mode": "acme", "acmeEmail": "ops@example.com"}}


@pytest.fixture(scope="module")
def acme() -> ProgramRun:
    return run_program("dev", overrides=ACME)


def weeks_of_this_run() -> set[str]:
    """Today's ISO week, and tomorrow's in case the run crossed midnight of a Sunday (UTC)."""
    today = utc_today()
    return {iso_week(today), iso_week(today + dt.timedelta(days=1))}


@pytest.mark.parametrize("day, week", [
    (dt.date(2026, 12, 3), "2026-W49"),
    (dt.date(2027, 1, 1), "2026-W53"),      # a Friday: the week of the year's first Thursday decides
    (dt.date(2024, 12, 30), "2025-W01"),
    (dt.date(2026, 1, 5), "2026-W02"),
])
def test_the_iso_week_names_the_year_of_its_thursday(day, week):
    assert iso_week(day) == week


def test_the_refresh_runs_again_each_iso_week_and_when_its_settings_change(dev):
    refresh = dev.named("base-image-refresh")
    week, image, max_age = refresh.inputs["triggers"]
    assert week in weeks_of_this_run()
    assert (image, max_age) == ("debian:bookworm-slim", 7)
    changed = run_program("dev", overrides={"webstack:baseImage": "localhost/base:2",
                                            "webstack:baseImageMaxAgeDays": "3"}).named("base-image-refresh")
    assert changed.inputs["triggers"][1:] == ["localhost/base:2", 3]
    assert changed.inputs["environment"]["WEBSTACK_BASE_MAX_AGE_DAYS"] == "3"
    assert changed.inputs["environment"]["WEBSTACK_IMAGE"] == "localhost/base:2"


def test_a_rollback_never_starts_the_weekly_refresh(dev):
    """A rollback (images pinned by ops rollback) stays fast: the refresh it would start could rebuild the
    long-lived images and replace the database. The next release's `up` compares the triggers again."""
    pinned = {"release": "dev-1", "backend": "sha256:" + "a" * 64, "web": "sha256:" + "b" * 64}
    rollback = run_program("dev", overrides={"webstack:images": {"keep": 5, "pinned": pinned}})
    assert rollback.named("base-image-refresh").ignore_changes == ["triggers"]
    assert dev.named("base-image-refresh").ignore_changes == []


def test_a_local_target_refreshes_its_own_engine_with_the_build_script(dev):
    refresh = dev.named("base-image-refresh")
    env = refresh.inputs["environment"]
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert env["WEBSTACK_BUILD_SCRIPT"].endswith("/containers/base/build-base-image.sh")
    assert "WEBSTACK_SSH_OPTS" not in env
    assert refresh.inputs["addPreviousOutputInEnv"] is False


def test_a_host_that_provides_its_base_image_is_only_read_over_ssh(prod):
    refresh = prod.named("base-image-refresh")
    env = refresh.inputs["environment"]
    assert "WEBSTACK_BUILD_SCRIPT" not in env and "DOCKER_HOST" not in env    # nothing built on this machine
    assert "StrictHostKeyChecking=yes" in env["WEBSTACK_SSH_OPTS"].split("\n")
    assert "docker save" not in refresh.inputs["create"]


def test_finding_7_every_long_lived_image_is_rebuilt_when_the_base_image_changes(dev, acme):
    for run, roles in ((dev, LONG_LIVED), (acme, (*LONG_LIVED, "acme"))):
        refresh = run.named("base-image-refresh")
        for role in roles:
            image = run.named(f"images-{role}")
            assert image.inputs["triggers"]["base"] == BASE_IMAGE_ID, role
            assert image.inputs["triggers"]["context"] == image.inputs["build"]["labels"]["webstack.context"]
            assert image.inputs["build"]["labels"]["webstack.base"] == BASE_IMAGE_ID, role
            assert refresh.urn in image.dependencies, role      # built only once the base is refreshed


def test_finding_7_the_containers_of_long_lived_images_run_the_image_id_so_a_rebuild_replaces_them(dev, acme):
    """A rebuild on a new base keeps the tag: a container that named the tag would never be replaced."""
    containers = dev.containers()
    for role in ("database", "edge", "backup"):
        [container] = containers[role]
        assert container.inputs["image"] == MOCK_IMAGE_ID, role
    [lego] = acme.containers()["acme"]
    assert lego.inputs["image"] == MOCK_IMAGE_ID
    # The holder of the edge's ports runs only `sleep` and never changes with the edge image (ignore_changes).
    holder = dev.named("edge-ports")
    assert holder.inputs["image"].startswith("webstack-dev-edge:") and "image" in holder.ignore_changes


def test_finding_7_a_release_image_records_the_base_its_guard_found_and_a_refresh_never_rebuilds_a_release(dev):
    refresh = dev.named("base-image-refresh")
    for role in ("backend", "web"):
        image, guard = dev.named(f"images-{role}"), dev.named(f"images-{role}-guard")
        assert image.inputs["triggers"]["base"] == BASE_IMAGE_ID
        assert image.inputs["build"]["labels"]["webstack.base"] == BASE_IMAGE_ID
        assert refresh.urn in guard.dependencies          # it reads the base after the refresh
        # The guard runs once per release (its tag and code): not again because the base changed, so the base
        # its image records stays the release's.
        assert BASE_IMAGE_ID not in str(guard.inputs["triggers"])
        assert "webstack.base" in guard.inputs["create"]


def test_a_running_release_on_another_base_than_the_long_lived_images_is_warned_of(monkeypatch):
    said = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: said.append(message))
    run_program("dev")
    assert not said
    older = "sha256:" + "01d" * 21 + "0"
    run_program("dev", base_ids={"-guard": older})
    assert len(said) == 1
    assert f"release dev-1's images were built on base image {older}, the long-lived images on {BASE_IMAGE_ID}" \
        in said[0]
    assert "with the next release" in said[0]


def test_the_pre_deploy_backup_runs_before_a_rebuilt_database_image_replaces_the_container(dev):
    backup, database = dev.named("backups-pre-deploy"), dev.named("database-postgres")
    assert MOCK_IMAGE_ID in backup.inputs["triggers"]        # the database image's ID
    assert dev.named("images-db").urn in backup.dependencies
    assert backup.urn in database.dependencies


def test_pruning_runs_again_on_a_new_base_after_the_long_lived_containers_and_removes_what_they_left(dev):
    prune = dev.named("images-prune")
    assert BASE_IMAGE_ID in prune.inputs["triggers"]
    for name in ("database-postgres", "backups-schedule"):
        assert dev.named(name).urn in prune.dependencies, name
    assert dev.named("webstack-dev-edge").urn in prune.dependencies
    assert "--filter dangling=true" in prune.inputs["create"]


def test_a_no_change_up_has_the_same_triggers_as_the_last_one(dev):
    """Between two weekly refreshes the base ID comes from the refresh's stdout in the state: two runs of the
    program in one week declare the same triggers everywhere, so the engine sees no change."""
    again = run_program("dev")
    for image in dev.of_type(IMAGE):
        assert again.named(image.name).inputs["triggers"] == image.inputs["triggers"]
    assert again.named("base-image-refresh").inputs == dev.named("base-image-refresh").inputs


@pytest.mark.parametrize("stdout, found", [
    (f"base image debian built 2026-12-01 (2 day(s) ago); nothing to do\n{BASE_IMAGE_ID}\n", BASE_IMAGE_ID),
    (f"{BASE_IMAGE_ID}", BASE_IMAGE_ID),
    (f"ok\n{BASE_IMAGE_ID}\n\n", BASE_IMAGE_ID),
])
def test_the_base_image_id_is_the_last_line_of_the_refresh(stdout, found):
    assert base_image_id(stdout) == found


@pytest.mark.parametrize("stdout", ["", "nothing to do\n", f"{BASE_IMAGE_ID}\nwarning: something after it\n",
                                    "sha256:abc\n"])
def test_a_refresh_that_printed_no_id_last_fails_the_update_with_what_it_printed(stdout):
    with pytest.raises(ValueError, match="not the base image's ID"):
        base_image_id(stdout)

