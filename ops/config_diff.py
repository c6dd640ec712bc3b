"""What a rollback changes in the stack file: the values that differ between the file and the version rolled back
to, key by key and field by field (as `pulumi config set --path` names them), and nothing else.

Values are compared in Pulumi's own form (a string, or an object parsed from its JSON) and in plain text: both the
history and `pulumi config --show-secrets` decrypt secrets, while the same secret encrypted twice gives two
ciphertexts. A version's history holds Pulumi.yaml's defaults too (the engine applies them before an update): a key
that only held its default there is left unset, not written out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

import yaml
from pulumi import automation as auto

from ops import stack_file
from ops.errors import OpsError
from ops.stack_file import REMOVE

NOT_SET = object()   # what a key was before the rollback wrote it
UNDECRYPTABLE = "ERROR_UNABLE_TO_DECRYPT"   # what `pulumi stack history --show-secrets` shows for such a secret


class Value(NamedTuple):
    data: Any      # Pulumi's form: a string, or what an object's or list's JSON holds
    secret: bool


def parsed(value: str) -> Any:
    """History and `pulumi config --json` hold every value as a string; objects and lists as JSON."""
    if value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def values_of(config: Mapping[str, auto.ConfigValue]) -> dict[str, Value]:
    return {key: Value(parsed(value.value), value.secret) for key, value in config.items()}


def file_config(text: str, config: Mapping[str, auto.ConfigValue]) -> dict[str, Value]:
    """The values the stack file itself sets, in its order: `config` (`pulumi config --json`) also holds
    Pulumi.yaml's defaults, and decrypts the file's secrets."""
    keys = (yaml.safe_load(text) or {}).get("config") or {}
    values = values_of(config)
    return {key: values[key] for key in keys if key in values}


def project_config(project_dir: Path) -> dict[str, dict]:
    """Pulumi.yaml's declared config, by namespaced key (`release` is `webstack:release`)."""
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    return {key if ":" in key else f"{project['name']}:{key}": spec if isinstance(spec, dict) else {"value": spec}
            for key, spec in (project.get("config") or {}).items()}


def pulumi_form(value: Any) -> Any:
    """A Pulumi.yaml default as the engine passes it: scalars as strings (`true`, `8080`)."""
    if isinstance(value, (dict, list)):
        return value
    return json.dumps(value) if isinstance(value, bool) else str(value)


def defaults_of(declared: Mapping[str, dict]) -> dict[str, Any]:
    return {key: pulumi_form(spec.get("default", spec.get("value"))) for key, spec in declared.items()
            if "default" in spec or "value" in spec}


def canonical(value: Any) -> str:
    """One text per meaning: the engine writes 1.0 as 1, and true is not 1."""
    def integral(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: integral(item) for k, item in v.items()}
        return [integral(item) for item in v] if isinstance(v, list) else v
    return json.dumps(integral(value), sort_keys=True)


def same(a: Any, b: Any) -> bool:
    return canonical(a) == canonical(b)


def refuse_undecryptable(version: Mapping[str, Value]) -> None:
    lost = sorted(key for key, value in version.items() if value.secret and UNDECRYPTABLE in canonical(value.data))
    if lost:
        raise OpsError(f"the history cannot decrypt {', '.join(lost)} of that version (the stack's secrets key or "
                       "passphrase changed since): nothing was changed")


def desired_config(current: Mapping[str, Value], version: Mapping[str, Value],
                   defaults: Mapping[str, Any]) -> dict[str, Value]:
    """The stack file's config after the rollback. A key the version did not set goes; a key whose value it shares
    with the file stays as it is; one it held at Pulumi.yaml's default is unset; the others take its value. A
    secret of that version stays a secret even where the file holds the same value in plain text."""
    desired = {}
    for key in [*current, *(key for key in version if key not in current)]:
        now, wanted = current.get(key), version.get(key)
        if wanted is None:
            continue
        effective = now.data if now else defaults.get(key, NOT_SET)
        if effective is not NOT_SET and same(wanted.data, effective):
            if now:
                desired[key] = Value(now.data, now.secret or wanted.secret)
        elif not (key in defaults and same(wanted.data, defaults[key])):
            desired[key] = wanted
    return desired


@dataclass(frozen=True)
class Change:
    path: tuple[str, ...]    # the key, then the fields inside its object: ("webstack:images", "pinned")
    value: Any               # REMOVE: the key goes
    was: Any                 # NOT_SET: a new key
    secret: bool             # written encrypted: a secret of the version rolled back to
    hidden: bool             # never shown: a secret then or now

    def describe(self) -> str:
        name = self.path[0] + "".join(f".{field}" for field in self.path[1:])
        if self.value is REMOVE:
            return f"  - {name}"
        if self.was is NOT_SET:
            return f"  + {name}: {self.shown(self.value)}"
        return f"  ~ {name}: {self.shown(self.was)} -> {self.shown(self.value)}"

    def shown(self, value: Any) -> str:
        if self.hidden:
            return "[secret]"
        return value if isinstance(value, str) else json.dumps(value)


def changes(current: Mapping[str, Value], desired: Mapping[str, Value]) -> list[Change]:
    """The edits that turn the file's config into `desired`, each as deep as the difference goes."""
    found = [Change((key,), REMOVE, now.data, False, now.secret) for key, now in current.items() if key not in desired]
    for key, wanted in desired.items():
        now = current.get(key)
        if now is None:
            found.append(Change((key,), wanted.data, NOT_SET, wanted.secret, wanted.secret))
            continue
        fields = field_changes((key,), now.data, wanted.data, wanted.secret, now.secret or wanted.secret)
        if wanted.secret and not now.secret and all(change.value is REMOVE for change in fields):
            # That version's secret, which the file holds in plain text: no field of it written encrypted would
            # make it a secret again, so all of it is.
            fields = [Change((key,), wanted.data, now.data, True, True)]
        found += fields
    return found


def field_changes(path: tuple[str, ...], now: Any, wanted: Any, secret: bool, hidden: bool) -> list[Change]:
    if isinstance(now, dict) and isinstance(wanted, dict) and wanted:
        found = [Change(path + (field,), REMOVE, value, secret, hidden)
                 for field, value in now.items() if field not in wanted]
        for field, value in wanted.items():
            found += field_changes(path + (field,), now[field], value, secret, hidden) if field in now else \
                [Change(path + (field,), value, NOT_SET, secret, hidden)]
        return found
    return [] if same(now, wanted) else [Change(path, wanted, now, secret, hidden)]


def file_value(change: Change, declared: Mapping[str, dict], encrypt: Callable[[str], str]) -> Any:
    """The change's value as the stack file holds it: a key Pulumi.yaml types as an integer or boolean unquoted
    (as written by hand), a secret's every field encrypted (`secure: <ciphertext>`)."""
    value = change.value
    if value is REMOVE:
        return value
    if len(change.path) == 1 and isinstance(value, str):
        kind = declared.get(change.path[0], {}).get("type")
        if kind == "integer" and value.lstrip("-").isdigit():
            value = int(value)
        elif kind == "boolean" and value in ("true", "false"):
            value = value == "true"
    return encrypted(value, encrypt) if change.secret else value


def encrypted(value: Any, encrypt: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {key: encrypted(item, encrypt) for key, item in value.items()}
    if isinstance(value, list):
        return [encrypted(item, encrypt) for item in value]
    # A secret is a string: the CLI's `config set --secret` stores a number or a boolean as its text too.
    return {"secure": encrypt(value if isinstance(value, str) else json.dumps(value))}


def applied(text: str, found: list[Change], declared: Mapping[str, dict], encrypt: Callable[[str], str]) -> str:
    """The stack file's text with every change made, each in place."""
    for change in found:
        text = stack_file.edited(text, ("config", *change.path), file_value(change, declared, encrypt))
    return text
