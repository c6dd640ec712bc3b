"""`python -m ops rollback --stack NAME [--to VERSION] [--yes]`: run an earlier stack version again.

Takes the config of stack version N from `pulumi stack history` (default: the newest successful update that ran
another release or config than the one that runs now), finds that release's backend and web images on the target
(their labels name the release), pins their image IDs (`images.pinned`) so that nothing is rebuilt from the working
tree, and writes into the stack file only the values that differ from it (ops/config_diff.py), in place
(ops/stack_file.py): comments and every other line stay. It prints those changes and applies them as an ordinary
release (new containers, health-gated, then the edge switches): with --yes in one `pulumi up`, else after a
preview and a question.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from pydantic import ValidationError
from pulumi import automation as auto

from components.images import RELEASE_ROLES, release_roles
from components.settings import Frontend
from components.settings_loader import NAMESPACE
from ops import config_diff, stack as stacks, stack_file
from ops.config_diff import Change, Value, canonical, parsed, values_of
from ops.errors import OpsError
from ops.pulumi_cli import Cli, Encrypter, engine
from ops.target import Target, settings_from

RELEASE_KEY = f"{NAMESPACE}:release"
IMAGES_KEY = f"{NAMESPACE}:images"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rollback", help="run the release and config of an earlier stack version again")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--to", type=int, metavar="VERSION",
                        help="the stack version, counted from the oldest update (1), as --list shows; "
                             "default: the newest successful update that ran another release or config")
    parser.add_argument("--list", action="store_true", help="list the stack's versions and exit")
    parser.add_argument("--yes", action="store_true",
                        help="apply at once, in one `pulumi up` after the stack file's changes are printed "
                             "(default: a preview, then a question)")
    parser.set_defaults(func=run)


def numbered(history: list[auto.UpdateSummary]) -> list[tuple[int, auto.UpdateSummary]]:
    """Stack versions, newest first, numbered from the oldest entry (1). The DIY backends' history carries no
    version numbers of its own, so webstack counts them, the same way every time."""
    return [(len(history) - i, entry) for i, entry in enumerate(history)]


def version_of(history: list[auto.UpdateSummary], release: str) -> int:
    """The newest successful update that ran `release`."""
    for number, entry in numbered(history):
        if entry.kind == "update" and entry.result == "succeeded" and \
                (entry.config or {}).get(RELEASE_KEY, auto.ConfigValue("")).value == release:
            return number
    raise OpsError(f"no successful update ran release {release!r}")


def what_ran(entry: auto.UpdateSummary) -> tuple[str, str]:
    """What a version ran, to compare two: its release (the config's, else the commit Pulumi recorded, whose
    release it was) and the rest of its config. The pinned image IDs are left out: they are the release's own,
    which a rollback pins. Pulumi's git.head counts only where no release is set: a no-change `up` of release v3
    from a newer commit runs v3 all the same."""
    config = {key: value.data for key, value in values_of(entry.config or {}).items()}
    release = config.pop(RELEASE_KEY, "") or (entry.environment or {}).get("git.head", "")[:12]
    if isinstance(config.get(IMAGES_KEY), dict):
        config[IMAGES_KEY] = {k: v for k, v in config[IMAGES_KEY].items() if k != "pinned"}
    return release, canonical(config)


def choose(history: list[auto.UpdateSummary], version: int | None) -> tuple[int, auto.UpdateSummary]:
    if version is not None:
        return requested(history, version)
    updates = [(n, h) for n, h in numbered(history) if h.kind == "update" and h.result == "succeeded"]
    if not updates:
        raise OpsError("the stack has no successful update: there is nothing to roll back to")
    # The newest successful update runs now; no-change `pulumi up`s are successful updates too, and rolling back
    # to one of them would change nothing.
    current_number, current = updates[0]
    runs_now = what_ran(current)
    for number, entry in updates[1:]:
        if what_ran(entry) != runs_now:
            return number, entry
    raise OpsError(f"no earlier successful update ran another release or config than version {current_number} "
                   f"(release {runs_now[0] or 'unknown'}), which runs now: there is nothing to roll back to "
                   "(`python -m ops rollback --list` lists the versions)")


def requested(history: list[auto.UpdateSummary], version: int) -> tuple[int, auto.UpdateSummary]:
    chosen = next((h for n, h in numbered(history) if n == version), None)
    if chosen is None:
        raise OpsError(f"the stack has no version {version}: `python -m ops rollback --list` lists them")
    if chosen.kind != "update" or chosen.result != "succeeded":
        raise OpsError(f"version {version} is a {chosen.result} {chosen.kind}, not a successful update: pick "
                       "another version from `python -m ops rollback --list`")
    return version, chosen


def release_of(entry: auto.UpdateSummary, number: int, on_target: set[str]) -> str:
    """The release that version ran: its config's, or, where the release was the git commit (no release set), the
    release on the target that Pulumi's recorded commit (`git.head`) names. Pulumi's own `git.dirty` counts the
    stack file, which the release does not (components/git_release.py), so the target's images decide between
    `<commit>` and `<commit>-dirty-<digest>`."""
    value = (entry.config or {}).get(RELEASE_KEY)
    if value is not None and value.value:
        return value.value
    head = (entry.environment or {}).get("git.head", "")[:12]
    if not head:
        raise OpsError(f"version {number} sets no {NAMESPACE}:release and recorded no git commit: roll back to "
                       "another version (`python -m ops rollback --list`)")
    releases = sorted(r for r in on_target if r == head or r.startswith(f"{head}-dirty-"))
    if len(releases) > 1 and head in releases and (entry.environment or {}).get("git.dirty") != "true":
        return head
    if len(releases) == 1:
        return releases[0]
    if not releases:
        raise OpsError(f"version {number} ran commit {head}, and no release of it is on the target any more (only "
                       "the newest images.keep releases are kept): check that commit out and deploy it")
    raise OpsError(f"version {number} ran commit {head}, which ran as several releases ({', '.join(releases)}): "
                   f"set the one you want, `pulumi config set {NAMESPACE}:release RELEASE`, and `pulumi up`")


def stack_images(target: Target) -> list[tuple[str, str, str]]:
    """(image ID, release, role) of every image of this stack on the target that names a release, newest first
    (as `docker image ls` sorts them)."""
    ids = target.docker("image", "ls", "-q", "--no-trunc", "--filter",
                        f"label=webstack.stack={target.settings.stack}").split()
    if not ids:
        return []
    lines = target.docker("image", "inspect", "-f", '{{.Id}}\t{{index .Config.Labels "webstack.release"}}\t'
                          '{{index .Config.Labels "webstack.role"}}', *ids).splitlines()
    return [(image_id, release, role) for image_id, release, role in (line.split("\t") for line in lines if line)
            if release and release != "<no value>"]


def release_images(target: Target, images: list[tuple[str, str, str]], release: str,
                   roles: tuple[str, ...] = RELEASE_ROLES) -> dict[str, str]:
    """The image IDs of `release` among the stack's `images` on the target, per role in `roles`; refuses when one
    is gone."""
    found: dict[str, str] = {}
    for image_id, image_release, role in images:
        if image_release == release:
            found.setdefault(role, image_id)   # the newest, as `docker image ls` sorts them
    missing = [role for role in roles if role not in found]
    if missing:
        raise OpsError(f"the {' and '.join(missing)} image(s) of release {release!r} are no longer on the target "
                       f"(only the newest images.keep={target.settings.images.keep} releases are kept): check out "
                       "that release's code and deploy it under a new release name instead")
    return {role: found[role] for role in roles}


def run(args: argparse.Namespace) -> int:
    stack = stacks.select(args.stack)
    history = stack.history(page_size=10_000, page=1, show_secrets=True)
    if args.list:
        for number, entry in numbered(history):
            release = (entry.config or {}).get(RELEASE_KEY, auto.ConfigValue("-")).value
            print(f"{number:>4}  {entry.start_time:%Y-%m-%d %H:%M:%S}  {entry.kind:<8} {entry.result:<10} release {release}")
        return 0
    number, chosen = choose(history, args.to)
    version = values_of(chosen.config or {})
    config_diff.refuse_undecryptable(version)
    config = stack.get_all_config()
    target = Target(settings_from(stack.name, config))
    on_target = stack_images(target)
    release = release_of(chosen, number, {image_release for _, image_release, _ in on_target})
    from_git = RELEASE_KEY not in version or not version[RELEASE_KEY].data
    images = release_images(target, on_target, release, release_roles(frontend_of(chosen.config or {})))
    print(f"rolling back stack {args.stack} to version {number} (release {release}, "
          + ", ".join(f"{role} {image[7:19]}" for role, image in images.items()) + ")", flush=True)

    path = stacks.PROJECT_DIR / f"Pulumi.{stack.name}.yaml"
    before = path.read_text() if path.exists() else None
    declared = config_diff.project_config(stacks.PROJECT_DIR)
    changes = rollback_changes(before or "", config, declared, {**version, RELEASE_KEY: Value(release, False)},
                               {"release": release, **images})
    print_changes(path.name, changes)
    after = written(stack, before or "", changes, declared)
    try:
        path.write_text(after)
        if not args.yes:
            if engine(stack, "preview") != 0:
                raise OpsError("the preview failed (see above): nothing was applied; the stack file is unchanged")
            if not confirmed():
                raise OpsError("not applied; the stack file is unchanged")
        started = time.monotonic()
        if engine(stack, "up", "--yes", "--skip-preview", "--message",
                  f"python -m ops rollback to version {number} (release {release})") != 0:
            raise OpsError(f"the rollback's update failed (see above), so the stack file is put back as it was; "
                           f"`python -m ops status --stack {args.stack}` shows what serves")
    except BaseException:
        # Not applied (declined, or the preview/update failed): put the stack file back as it was, so that the
        # stack's config keeps describing what runs.
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(before)
        raise
    print(f"rolled back to release {release} (version {number}): the update took {time.monotonic() - started:.1f} s",
          flush=True)
    if from_git:
        print(f"the stack file now names release {release}: to release commits again, fix forward with a new "
              f"commit and `pulumi config rm {RELEASE_KEY} --stack {stack.name}`", flush=True)
    return 0


def rollback_changes(text: str, config: dict[str, auto.ConfigValue], declared: dict[str, dict],
                     version: dict[str, Value], pinned: dict[str, str]) -> list[Change]:
    """The edits that make the stack file (`text`; `config`: the stack's values as `pulumi config --json` decrypts
    them; `declared`: Pulumi.yaml's config) run `version` again, with the release's images `pinned`."""
    current = config_diff.file_config(text, config)
    desired = config_diff.desired_config(current, version, config_diff.defaults_of(declared))
    return config_diff.changes(current, with_pinned(desired, pinned))


def with_pinned(desired: dict[str, Value], pinned: dict[str, str]) -> dict[str, Value]:
    """`images.pinned` set on top of the images config the rollback keeps (as `pulumi config set --path` would),
    so that a stack file without one gets `images: {pinned: ...}`, not Pulumi.yaml's default written out."""
    images = desired.get(IMAGES_KEY, Value({}, False))
    fields = images.data if isinstance(images.data, dict) else {}
    return {**desired, IMAGES_KEY: Value({**fields, "pinned": pinned}, images.secret)}


def print_changes(file_name: str, changes: list[Change]) -> None:
    if not changes:
        print(f"{file_name} already holds that version's config", flush=True)
        return
    print(f"changes to {file_name} (every other line stays as it is):", flush=True)
    for change in changes:
        print(change.describe(), flush=True)


def written(stack: auto.Stack, text: str, changes: list[Change], declared: dict[str, dict]) -> str:
    """The stack file's text with the changes made, secrets encrypted as the stack's own."""
    with tempfile.TemporaryDirectory(prefix="webstack-rollback-") as scratch:
        encrypt = Encrypter(Cli.of(stack), text, Path(scratch))
        text = config_diff.applied(text, changes, declared, encrypt)
        for key, value in encrypt.added_keys().items():
            text = stack_file.edited(text, (key,), value)
    return text


def frontend_of(config: dict[str, auto.ConfigValue]) -> Frontend:
    """The version's frontend settings, read by the settings' own model (a backend-only app has no web image to
    pin). Config it cannot read counts as the default, a frontend: then both images are pinned, or it says which
    is gone."""
    key = f"{NAMESPACE}:frontend"
    try:
        return Frontend.model_validate(parsed(config[key].value) if key in config else {})
    except ValidationError:
        return Frontend()


def confirmed() -> bool:
    if not sys.stdin.isatty():
        raise OpsError("the preview is above; run again with --yes to apply it (there is no terminal to ask on)")
    return input("apply this rollback? [y/N] ").strip().lower() in ("y", "yes")
