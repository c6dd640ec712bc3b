"""`python -m ops rollback --stack NAME [--to VERSION] [--yes]`: run an earlier stack version again.

Takes the config of stack version N from `pulumi stack history` (default: the newest successful update that ran
another release or config than the current one), finds that release's backend and web images on the target (their labels name the release), pins
their image IDs into the config (`images.pinned`) so that nothing is rebuilt from the working tree, shows the
preview, and applies it as an ordinary release: new containers, health-gated, then the edge switches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import yaml
from pydantic import ValidationError
from pulumi import automation as auto

from components.images import RELEASE_ROLES, release_roles
from components.settings import Frontend
from components.settings_loader import NAMESPACE
from ops import stack as stacks
from ops.errors import OpsError
from ops.target import Target, settings_of

def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rollback", help="run the release and config of an earlier stack version again")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--to", type=int, metavar="VERSION",
                        help="the stack version, counted from the oldest update (1), as --list shows; "
                             "default: the newest successful update that ran another release or config")
    parser.add_argument("--list", action="store_true", help="list the stack's versions and exit")
    parser.add_argument("--yes", action="store_true", help="apply without asking after the preview")
    parser.set_defaults(func=run)


def numbered(history: list[auto.UpdateSummary]) -> list[tuple[int, auto.UpdateSummary]]:
    """Stack versions, newest first, numbered from the oldest entry (1). The DIY backends' history carries no
    version numbers of its own, so webstack counts them, the same way every time."""
    return [(len(history) - i, entry) for i, entry in enumerate(history)]


def version_of(history: list[auto.UpdateSummary], release: str) -> int:
    """The newest successful update that ran `release`."""
    for number, entry in numbered(history):
        if entry.kind == "update" and entry.result == "succeeded" and \
                (entry.config or {}).get(f"{NAMESPACE}:release", auto.ConfigValue("")).value == release:
            return number
    raise OpsError(f"no successful update ran release {release!r}")


def what_ran(entry: auto.UpdateSummary) -> tuple[dict[str, tuple[str, bool]], str | None]:
    """A version's config and the git commit Pulumi recorded with it (the release, where none is set)."""
    return ({key: (value.value, value.secret) for key, value in (entry.config or {}).items()},
            (entry.environment or {}).get("git.head"))


def choose(history: list[auto.UpdateSummary], version: int | None) -> tuple[int, auto.UpdateSummary]:
    updates = [(n, h) for n, h in numbered(history) if h.kind == "update" and h.result == "succeeded"]
    if version is None:
        # The newest successful update that ran other config (a release is config, or the git commit Pulumi
        # recorded): no-change `pulumi up`s are successful updates too, and rolling back to one changes nothing.
        current = what_ran(updates[0][1]) if updates else None
        for number, entry in updates[1:]:
            if what_ran(entry) != current:
                return number, entry
        raise OpsError("there is no earlier successful update with another release or config to roll back to "
                       "(`python -m ops rollback --list`)")
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
    value = (entry.config or {}).get(f"{NAMESPACE}:release")
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
            release = (entry.config or {}).get(f"{NAMESPACE}:release", auto.ConfigValue("-")).value
            print(f"{number:>4}  {entry.start_time:%Y-%m-%d %H:%M:%S}  {entry.kind:<8} {entry.result:<10} release {release}")
        return 0
    number, chosen = choose(history, args.to)
    config = dict(chosen.config or {})
    release_key = f"{NAMESPACE}:release"
    target = Target(settings_of(stack))
    on_target = stack_images(target)
    release = release_of(chosen, number, {image_release for _, image_release, _ in on_target})
    from_git = not config.get(release_key, auto.ConfigValue("")).value
    config[release_key] = auto.ConfigValue(release)
    images = release_images(target, on_target, release, release_roles(frontend_of(config)))
    pinned = {"release": release, **images}
    images_key = f"{NAMESPACE}:images"
    previous_images = parsed(config[images_key].value) if images_key in config else {}
    config[images_key] = auto.ConfigValue(json.dumps({**previous_images, "pinned": pinned}))
    print(f"rolling back stack {args.stack} to version {number} (release {release}, "
          + ", ".join(f"{role} {image[7:19]}" for role, image in images.items()) + ")", flush=True)

    stack_file = stacks.PROJECT_DIR / f"Pulumi.{stack.name}.yaml"
    before = stack_file.read_text() if stack_file.exists() else None
    try:
        write_config(stack, stack_file, config)
        if engine(stack, "preview") != 0:
            raise OpsError("the preview failed (see above): nothing was applied; the stack's config is unchanged")
        if not args.yes and not confirmed():
            raise OpsError("not applied; the stack's config is unchanged")
        started = time.monotonic()
        if engine(stack, "up", "--yes", "--skip-preview") != 0:
            raise OpsError(f"the rollback's update failed (see above), so the stack's config is put back as it was; "
                           f"`python -m ops status --stack {args.stack}` shows what serves")
    except BaseException:
        # Not applied (declined, or the preview/update failed): put the stack file back as it was, so that the
        # stack's config keeps describing what runs.
        if before is None:
            stack_file.unlink(missing_ok=True)
        else:
            stack_file.write_text(before)
        raise
    print(f"rolled back to release {release} (version {number}): the update took {time.monotonic() - started:.1f} s",
          flush=True)
    if from_git:
        print(f"the stack file now names release {release}: to release commits again, fix forward with a new "
              f"commit and `pulumi config rm {release_key} --stack {stack.name}`", flush=True)
    return 0


def engine(stack: auto.Stack, *command: str) -> int:
    """`pulumi preview` or `pulumi up` for the stack, through the CLI itself with its output streamed. Not the
    Automation API's preview()/up(): after the engine is done they read the stack's outputs and history again
    (about 1.5 s more), which a rollback does not need; the CLI's own output says what changed."""
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace)
    return subprocess.run([workspace.pulumi_command.command, *command, "--stack", stack.name, "--color", "never"],
                          cwd=workspace.work_dir, env={**os.environ, **(workspace.env_vars or {})}).returncode


def frontend_of(config: dict[str, auto.ConfigValue]) -> Frontend:
    """The version's frontend settings, read by the settings' own model (a backend-only app has no web image to
    pin). Config it cannot read counts as the default, a frontend: then both images are pinned, or it says which
    is gone."""
    key = f"{NAMESPACE}:frontend"
    try:
        return Frontend.model_validate(parsed(config[key].value) if key in config else {})
    except ValidationError:
        return Frontend()


def parsed(value: str):
    """History holds every value as a string; objects and lists as JSON."""
    if value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def leaves(value, path: str):
    """(dotted path, scalar) for every leaf of an object, as `pulumi config set --path` names them."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def write_config(stack: auto.Stack, stack_file, config: dict[str, auto.ConfigValue]) -> None:
    """Make the stack's config exactly `config`, as `pulumi config set` would have written it: plain values (objects
    as objects: Pulumi.yaml types them) into the stack file, secrets encrypted by the engine, leaf by leaf."""
    declared = (yaml.safe_load((stacks.PROJECT_DIR / "Pulumi.yaml").read_text()).get("config") or {})
    integers = {f"{NAMESPACE}:{k}" for k, spec in declared.items() if isinstance(spec, dict) and spec.get("type") == "integer"}
    document = (yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None) or {}
    document["config"] = {key: int(value.value) if key in integers else parsed(value.value)
                          for key, value in config.items() if not value.secret}
    stack_file.write_text(yaml.safe_dump(document, sort_keys=True))
    workspace = stack.workspace
    assert isinstance(workspace, auto.LocalWorkspace)
    for argv, value in secret_set_commands(workspace.pulumi_command.command, stack.name, config):
        done = subprocess.run(argv, input=value, text=True, capture_output=True, cwd=workspace.work_dir,
                              env={**os.environ, **(workspace.env_vars or {})})
        if done.returncode != 0:
            raise OpsError(f"`{' '.join(argv)}` failed: {done.stderr.strip()[-500:]}")


def secret_set_commands(pulumi: str, stack: str, config: dict[str, auto.ConfigValue]) -> list[tuple[list[str], str]]:
    """(argv, stdin) of each `pulumi config set --secret` that puts the version's secrets back, leaf by leaf.
    The value goes on stdin, never in an argv (which any user of the machine can read in /proc): the Automation
    API's set_config passes it as an argument."""
    commands = []
    for key, value in config.items():
        if not value.secret:
            continue
        content = parsed(value.value)
        pairs = ([(path, leaf if isinstance(leaf, str) else json.dumps(leaf)) for path, leaf in leaves(content, key)]
                 if isinstance(content, (dict, list)) else [(key, value.value)])
        for path, text in pairs:
            flags = ["--path"] if path != key or "." in key.partition(":")[2] else []
            # The CLI drops one trailing newline of what it reads: the value's own newlines all stay.
            commands.append(([pulumi, "config", "set", "--secret", *flags, "--stack", stack, path], text + "\n"))
    return commands


def confirmed() -> bool:
    if not sys.stdin.isatty():
        raise OpsError("the preview is above; run again with --yes to apply it (there is no terminal to ask on)")
    return input("apply this rollback? [y/N] ").strip().lower() in ("y", "yes")
