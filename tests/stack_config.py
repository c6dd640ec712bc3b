"""A stack's configuration as the Pulumi CLI would hand it to the program: Pulumi.yaml defaults, then
Pulumi.<stack>.yaml, then overrides. Values become strings (objects as JSON), keys gain the namespace.

`secure:` values cannot be decrypted without the CLI; tests pass them through `secret_overrides`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent


def as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)   # objects, arrays, numbers and booleans, as the CLI serialises them


def load_stack_config(stack: str, overrides: Mapping[str, Any] | None = None,
                      secret_overrides: Mapping[str, Any] | None = None,
                      project_dir: Path = PROJECT_DIR) -> tuple[dict[str, str], list[str]]:
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    namespace = project["name"]
    values: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        if isinstance(spec, dict) and "default" in spec:
            values[key if ":" in key else f"{namespace}:{key}"] = spec["default"]
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if stack_file.exists():
        for key, value in ((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}).items():
            if isinstance(value, dict) and set(value) == {"secure"}:
                continue   # ciphertext: only the CLI can decrypt it
            values[key] = value
    values.update(overrides or {})
    values.update(secret_overrides or {})
    config = {key: as_config_string(value) for key, value in values.items() if value is not None}
    return config, sorted(secret_overrides or {})
