"""Turns the stack's Pulumi configuration into Settings, or into one ConfigError listing every problem.

Runs before the first resource is declared, so bad input changes nothing. Each problem names the key path
(`webstack:backend.replicas`), what is wrong and how to fix it. Secret values are never echoed.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import typing
from pathlib import Path
from typing import Any, Mapping

import pulumi
import yaml
from pydantic import ValidationError

from .git_release import NoGitRelease, git_release
from .settings import GENERATION_KEY_FIX, FieldProblem, Settings, check_build, check_provided_tls, provided_tls_warnings

NAMESPACE = "webstack"
OBJECT_KEYS = ("target", "tls", "database", "backend", "frontend", "images", "edge")
SCALAR_KEYS = ("release", "domain", "httpPort", "httpsPort", "publishAddress", "baseImage", "baseImageMaxAgeDays",
               "generationKey")
SECRET_SCALARS = ("generationKey",)
INTEGER_KEYS = ("httpPort", "httpsPort", "baseImageMaxAgeDays")
SECRET_FIELDS = {"target": ("privateKey",), "tls": ("certificate", "privateKey"),
                 "database": ("offsite.accessKeyId", "offsite.secretAccessKey")}
EXAMPLES = {"release": "v1", "target.hostKey": "\"$(ssh-keyscan -t ed25519 HOST | cut -d' ' -f2-)\"", "httpPort": "8080", "httpsPort": "8443", "domain": "example.com",
            "publishAddress": "127.0.0.1", "baseImage": "debian:bookworm-slim", "baseImageMaxAgeDays": "7", "target.kind": "ssh", "target.host": "203.0.113.10",
            "tls.mode": "self-signed", "backend.replicas": "2", "backend.port": "8000",
            "backend.pathPrefix": "/api", "backend.egress": "true", "backend.stripPrefix": "false",
            "frontend.enabled": "false", "edge.maxBodyMb": "20", "edge.readTimeoutSeconds": "60",
            "edge.sendTimeoutSeconds": "60", "edge.streamTimeoutSeconds": "3600", "edge.writeRatePerSecond": "10",
            "edge.writeBurst": "20"}
# Keys that hold a list, with an example element: set one element at a time (`key[0]`, `key[1]`...).
LIST_EXAMPLES = {"edge.websocketPaths": "/api/ws", "edge.streamingPaths": "/api/events",
                 "edge.trustedProxies": "10.0.0.0/8", "edge.aliases": "app.example.org",
                 "edge.redirects": "www.example.com"}


class ConfigError(pulumi.RunError):
    """Invalid configuration. RunError makes Pulumi print the message alone, without a traceback."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"  {NAMESPACE}:{path}: {message}" for path, message in problems]
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"invalid webstack configuration ({count}):\n" + "\n".join(lines))


def set_command(path: str, value: str = "<value>", secret: bool = False) -> str:
    flags = (" --secret" if secret else "") + (" --path" if "." in path else "")
    key = f"'{NAMESPACE}:{path}'" if "[" in path else f"{NAMESPACE}:{path}"   # a shell would glob key[0]
    return f"pulumi config set{flags} {key} {value}"


def key_path(loc: tuple) -> str:
    """A pydantic error location as the user writes the key: `edge.trustedProxies[1]`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def without_index(path: str) -> str:
    """`edge.aliases[1]` -> `edge.aliases`: the key whose example fits one element."""
    return re.sub(r"\[\d+\]$", "", path)


def is_secret_path(path: str) -> bool:
    """A field that holds key material: its fix reads the value from a file."""
    top, _, field = path.partition(".")
    return field in SECRET_FIELDS.get(top, ())


def hide(message: str, value: Any) -> str:
    """The message without the value: a secret key's value is never echoed, whatever its type."""
    for text in {repr(value), str(value)} - {""}:
        message = message.replace(text, "<secret>")
    return message


# Keys that hold a list or a map are set one element at a time: their fix shows one element.
ELEMENT_FIXES = {
    "backend.env": f"pulumi config set --path {NAMESPACE}:backend.env.NAME value",
    "backend.secrets": f"pulumi config set --secret --path {NAMESPACE}:backend.secrets.NAME value",
    "backend.generatedSecrets": f"pulumi config set --path '{NAMESPACE}:backend.generatedSecrets[0]' NAME",
    "backend.releaseCommand": f"pulumi config set --path '{NAMESPACE}:backend.releaseCommand[0]' program "
                              "(then [1], [2]... for its arguments)",
    "backend.volumes": f"pulumi config set --path {NAMESPACE}:backend.volumes.media /app/media",
    "generationKey": GENERATION_KEY_FIX,
    **{key: f"{set_command(f'{key}[0]', example)} (then [1], [2]... for more)"
       for key, example in LIST_EXAMPLES.items()},
}


def with_fix(path: str, message: str, secret: bool = False) -> str:
    if path in ELEMENT_FIXES:
        return f"{message}. Fix: {ELEMENT_FIXES[path]}"
    if secret:
        return f"{message}. Fix: cat FILE | {set_command(path, '', secret=True).rstrip()}"
    example = EXAMPLES.get(path) or LIST_EXAMPLES.get(without_index(path), "<value>")
    return f"{message}. Fix: {set_command(path, example)}"


def unknown_key(path: str, known: list[str]) -> tuple[str, str]:
    leaf = path.rsplit(".", 1)[-1]
    guess = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
    hint = f"did you mean '{path[: len(path) - len(leaf)]}{guess[0]}'? " if guess else f"known keys: {', '.join(known)}. "
    flag = " --path" if "." in path else ""
    return path, f"unknown setting; {hint}Fix: pulumi config rm{flag} {NAMESPACE}:{path}"


def parse_raw(key: str, raw: Any, secret: bool = False) -> tuple[Any, str | None]:
    """Config arrives as strings (objects as JSON); return (value, problem)."""
    got = "" if secret else f", got {raw!r}"
    if key in OBJECT_KEYS:
        value = json.loads(raw) if isinstance(raw, str) and raw.strip().startswith("{") else raw
        if not isinstance(value, dict):
            return None, (f"must be an object{got}. Fix: set its fields with --path, "
                          f"e.g. pulumi config set --path {NAMESPACE}:{key}.<field> <value>")
        return value, None
    if key in INTEGER_KEYS:
        try:
            return int(raw), None
        except (TypeError, ValueError):
            return None, with_fix(key, f"must be an integer{got}")
    return raw, None


def describe(error: dict, secret_keys: set[str] = frozenset()) -> tuple[str, str]:
    """One pydantic error as (key path, message). secret_keys: the top-level keys set with --secret, whose
    values (any part of them, any type) never appear in the message."""
    path = key_path(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldProblem):
        path = f"{path}.{cause.path}" if path else cause.path
        return path, with_fix(path, str(cause), secret=is_secret_path(path))
    key_material = is_secret_path(path)
    secret = key_material or path.split(".")[0] in secret_keys
    if error["type"] == "extra_forbidden":
        return unknown_key(path, known_fields(error["loc"]))
    if error["type"] == "missing":
        return path, with_fix(path, "is required")
    message = error["msg"].removeprefix("Value error, ")
    if secret:
        message = hide(message, error.get("input"))
    elif error["type"] != "value_error" and not isinstance(error.get("input"), dict):
        message += f", got {error.get('input')!r}"
    return path, with_fix(path, message, key_material)


def plaintext_app_secrets(data: Mapping[str, Any], secret_keys: set[str]) -> list[tuple[str, str]]:
    """backend.secrets set without --secret: refused, naming each key (never its value) and the fix."""
    backend = data.get("backend")
    secrets = backend.get("secrets") if isinstance(backend, dict) else None
    if "backend" in secret_keys or not isinstance(secrets, dict):
        return []
    return [(f"backend.secrets.{name}", "is stored in plain text; it must be a secret. Fix: "
             f"pulumi config rm --path {NAMESPACE}:backend.secrets.{name} and set it again with "
             f"`{set_command(f'backend.secrets.{name}', 'VALUE', secret=True)}`") for name in sorted(secrets)]


def known_fields(loc: tuple | str) -> list[str]:
    """The fields allowed next to the last part of `loc` (a pydantic error location, or a dotted path)."""
    parts = loc.split(".") if isinstance(loc, str) else [str(part) for part in loc]
    model: Any = Settings
    for part in parts[:-1]:
        annotation = model.model_fields[part].annotation
        # Optional[Model] -> Model
        model = next((a for a in (*typing.get_args(annotation), annotation) if hasattr(a, "model_fields")), annotation)
    return [name for name in model.model_fields if name not in ("stack", "project", "projectDir", "secretKeys")]


def nested(value: Any, dotted: str) -> Any:
    """value["a"]["b"] for "a.b", None where a part is missing or not an object."""
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# Keys an earlier webstack read, with what took their place. Refused, not mapped: the new keys split what the old
# one meant, so carrying its value over silently would keep a setting the operator never chose.
REPLACED_KEYS = {
    "database.backupsToKeep": (
        "was replaced by database.backups.keepScheduled (default 7: scheduled and manual backups) and "
        "database.backups.keepPreDeploy (default 5): each kind of backup is now kept by its own count, on the "
        "target and offsite, so a day of releases no longer pushes out every scheduled backup",
        "database.backups.keepScheduled"),
}


def replaced_keys(data: Mapping[str, Any], secret_keys: set[str]) -> list[tuple[str, str]]:
    """Keys REPLACED_KEYS names, each refused with its successor and the commands that move the value over."""
    problems = []
    for path, (message, successor) in REPLACED_KEYS.items():
        top, _, field = path.partition(".")
        value = nested(data.get(top), field)
        if value is None:
            continue
        shown = "N" if top in secret_keys or isinstance(value, (dict, list)) else value
        problems.append((path, f"{message}. Fix: pulumi config rm --path {NAMESPACE}:{path}, then "
                               f"{set_command(successor, str(shown))}"))
    return problems


@functools.lru_cache(maxsize=16)   # read once per process: settings are loaded many times (ops, tests)
def project_name(project_dir: Path) -> str:
    """The `name:` of the project's Pulumi.yaml: what pulumi.get_project() says in the program, for callers outside
    it (the operator commands, tests). The file is there: Pulumi found the project by it."""
    return str(yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"])


def load_settings(values: Mapping[str, Any], secret_keys: set[str], stack: str, project_dir: Path,
                  project: str | None = None) -> Settings:
    """values: the webstack namespace's config, key without namespace -> raw value as Pulumi passes it.
    project: the Pulumi project's name (the program passes pulumi.get_project()); default the one in project_dir."""
    problems: list[tuple[str, str]] = []
    data: dict[str, Any] = {}
    for key, raw in sorted(values.items()):
        if key not in OBJECT_KEYS + SCALAR_KEYS:
            problems.append(unknown_key(key, list(OBJECT_KEYS + SCALAR_KEYS)))
            continue
        if key in SECRET_SCALARS and raw == "":   # Pulumi.yaml's default: unset (a key without one is required)
            continue
        try:
            value, problem = parse_raw(key, raw, secret=key in secret_keys)
        except json.JSONDecodeError as exc:
            value, problem = None, (f"is not valid JSON ({exc.msg}). Fix: set it field by field, "
                                    f"e.g. pulumi config set --path {NAMESPACE}:{key}.<field> <value>")
        if problem:
            problems.append((key, problem))
        else:
            data[key] = value
    for top, fields in SECRET_FIELDS.items():
        for field in fields:
            if nested(data.get(top), field) is not None and top not in secret_keys:
                problems.append((f"{top}.{field}", "is stored in plain text; it must be a secret. Fix: "
                                 f"pulumi config rm {NAMESPACE}:{top} and set it again with "
                                 f"`cat FILE | {set_command(f'{top}.{field}', '', secret=True).rstrip()}`"))
    problems += [(key, f"is stored in plain text; it must be a secret. Fix: pulumi config rm {NAMESPACE}:{key}, "
                       f"then {GENERATION_KEY_FIX}") for key in SECRET_SCALARS if key in data and key not in secret_keys]
    problems += plaintext_app_secrets(data, secret_keys)
    problems += replaced_keys(data, secret_keys)
    if not data.get("release"):   # unset (Pulumi.yaml's default is empty): the project's git commit
        try:
            data["release"] = git_release(project_dir)
        except NoGitRelease as reason:
            problems.append(("release", f"is not set, and it cannot be the git commit: {reason}. Fix: "
                                        f"{set_command('release', 'v1')} (or deploy from a git checkout)"))
    if problems:
        raise ConfigError(problems)
    try:
        settings = Settings(stack=stack, project=project or project_name(project_dir), projectDir=project_dir,
                            secretKeys=frozenset(secret_keys), **data)
    except ValidationError as exc:
        raise ConfigError([describe(e, secret_keys) for e in exc.errors(include_url=False)]) from None
    problems = check_build(settings, "backend") + check_provided_tls(settings)
    if settings.frontend.enabled:
        problems = check_build(settings, "frontend") + problems
    if problems:
        raise ConfigError([(path, with_fix(path, message, is_secret_path(path))) for path, message in problems])
    return settings


def read_pulumi_config() -> tuple[dict[str, Any], set[str]]:
    """The raw webstack:* values and which of them are secret, as the language host passed them."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    secret = set(runtime_config.get_config_secret_keys_env())
    prefix = f"{NAMESPACE}:"
    values = {k[len(prefix):]: runtime_config.get_config(k) for k in keys if k.startswith(prefix)}
    secrets = {k[len(prefix):] for k in keys if k.startswith(prefix) and (runtime_config.is_config_secret(k) or k in secret)}
    return values, secrets


def settings_from_pulumi(project_dir: Path) -> Settings:
    values, secrets = read_pulumi_config()
    settings = load_settings(values, secrets, pulumi.get_stack(), project_dir, pulumi.get_project())
    for warning in provided_tls_warnings(settings):
        pulumi.log.warn(warning)
    return settings
