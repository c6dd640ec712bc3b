"""The base image every Dockerfile starts FROM: refreshed once a week, and its ID handed to every image build.

One local.Command on the operator's machine, `base-image-refresh`, runs templates/host/base-image.sh.j2 before any
image builds. Its triggers are the ISO week of the day the program runs (UTC) and the settings that shape it, so
it runs at the first `pulumi up` of each week (a preview shows it) and on no other: between two weekly runs its
stdout, and with it every image's triggers, come from the state, and a no-change `up` stays a no-change `up`.

- local target: the target's engine is this machine's; the base image there is refreshed
  (containers/base/build-base-image.sh rebuilds it once older than `baseImageMaxAgeDays`; one from a registry is
  pulled again), then its ID is printed;
- ssh target, `target.baseImageSource: operator`: the same refresh on this machine's own engine, then the host gets
  the image when its copy's ID differs (docker save | ssh docker load), then the ID is printed;
- ssh target, `target.baseImageSource: host`: the host keeps its base image current itself; its ID is read there
  over the same pinned ssh as the preflight (and a base older than the limit is reported).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional

import pulumi
from pulumi_command import local

from . import rendering
from .local_files import SshAccess
from .remote_host import RemoteHost
from .settings import IMAGE_ID, Settings

BUILD_SCRIPT = "containers/base/build-base-image.sh"


def iso_week(day: dt.date) -> str:
    """The ISO 8601 week of `day`, e.g. 2026-W49: the base image's refresh runs once per value."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def source(settings: Settings) -> str:
    """Where the target's base image comes from: `local` (the target's engine is this machine's), or the ssh
    target's `baseImageSource` (`operator`: sent from this machine's engine; `host`: the host's own)."""
    return "local" if settings.target.kind == "local" else settings.target.baseImageSource


def refresh_script(settings: Settings) -> str:
    """Runs on the operator's machine; its parameters come from refresh_environment."""
    return rendering.render("host/base-image.sh.j2", source=source(settings))


def refresh_environment(settings: Settings, access: Optional[SshAccess] = None) -> dict[str, str]:
    """The parameters of refresh_script; `access`: how this machine reaches an ssh target (None for local)."""
    environment = {"WEBSTACK_IMAGE": settings.baseImage,
                   "WEBSTACK_BASE_MAX_AGE_DAYS": str(settings.baseImageMaxAgeDays)}
    kind = source(settings)
    if kind != "host":
        environment["WEBSTACK_BUILD_SCRIPT"] = str(settings.projectDir / BUILD_SCRIPT)
    if kind == "local":
        return {**environment, "DOCKER_HOST": settings.target.dockerHost}
    assert access is not None, "an ssh target's refresh needs its SshAccess"
    return access.environment(**environment)


def base_image_id(stdout: str) -> str:
    """The image ID on the last line of the refresh's stdout (what came before is its progress)."""
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip()]
    if not lines or not IMAGE_ID.fullmatch(lines[-1]):
        last = lines[-1] if lines else "nothing"
        raise ValueError(f"the base-image refresh printed {last!r} on its last line, not the base image's ID "
                         "(sha256:<64 hex digits>); its output above says what went wrong")
    return lines[-1]


@dataclass(frozen=True)
class BaseImageArgs:
    settings: Settings
    host: RemoteHost
    week: str   # iso_week of today: the refresh runs again when it changes


class BaseImage(pulumi.ComponentResource):
    """The weekly refresh of `baseImage` for the target, and its ID (`image_id`): the trigger that rebuilds every
    long-lived image built on it."""

    refresh: local.Command
    image_id: pulumi.Output[str]

    def __init__(self, name: str, args: BaseImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:BaseImage", name, None, opts)
        settings = args.settings
        self.refresh = local.Command(
            f"{name}-refresh", create=refresh_script(settings),
            environment=refresh_environment(settings, args.host.access),
            triggers=[args.week, settings.baseImage, settings.baseImageMaxAgeDays],
            add_previous_output_in_env=False, logging=local.Logging.STDOUT_AND_STDERR,
            # After the host is prepared (preflight, bootstrap): the refresh may send the image there. A rollback
            # (images pinned by `python -m ops rollback`) never starts the weekly refresh: rebuilding the long-lived
            # images and replacing the database would add minutes and a pause to an emergency; the next `up` of
            # another release refreshes.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.host.ready),
                                        ignore_changes=["triggers"] if settings.pinned_images else None))
        self.image_id = self.refresh.stdout.apply(base_image_id)
        self.register_outputs({"imageId": self.image_id})
