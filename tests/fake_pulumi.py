"""A stand-in `pulumi` for the operator commands' unit tests: `config set --secret ... --config-file FILE KEY`
stores stdin (less the one trailing newline the real CLI drops) as `secure: fake:<base64>` in FILE, adding an
encryptionsalt where FILE has none, as the passphrase provider does; every call's argv and stdin go to calls.jsonl
beside it. `pulumi config --json` of a stack file is imitated by config_json()."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from tests.stack_config import load_stack_config

SCRIPT = """\
import base64, json, sys
import yaml
argv, stdin = sys.argv[1:], sys.stdin.read()
with open({log!r}, "a") as log:
    log.write(json.dumps([argv, stdin]) + "\\n")
path, key = argv[argv.index("--config-file") + 1], argv[-1]
with open(path) as file:
    document = yaml.safe_load(file) or {{}}
value = base64.b64encode(stdin.removesuffix("\\n").encode()).decode()
if not document.get("config"):
    document["config"] = {{}}
document["config"][key] = {{"secure": "fake:" + value}}
document.setdefault("encryptionsalt", "v1:fake-salt")
with open(path, "w") as file:
    yaml.safe_dump(document, file)
"""


def fake_pulumi(directory: Path) -> Path:
    script = directory / "pulumi"
    script.write_text(f"#!{sys.executable}\n" + SCRIPT.format(log=str(directory / "calls.jsonl")))
    script.chmod(0o755)
    return script


def calls(directory: Path) -> list[tuple[list[str], str]]:
    log = directory / "calls.jsonl"
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()] if log.exists() else []


def ciphertext(plaintext: str) -> str:
    return "fake:" + base64.b64encode(plaintext.encode()).decode()


def decrypted(value: Any) -> tuple[Any, bool]:
    """A stack file's value with its fake ciphertexts decrypted, and whether it held any."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        return base64.b64decode(value["secure"].removeprefix("fake:")).decode(), True
    if isinstance(value, dict):
        pairs = {key: decrypted(item) for key, item in value.items()}
        return {key: plain for key, (plain, _) in pairs.items()}, any(secret for _, secret in pairs.values())
    if isinstance(value, list):
        pairs = [decrypted(item) for item in value]
        return [plain for plain, _ in pairs], any(secret for _, secret in pairs)
    return value, False


def config_json(project_dir: Path, stack: str) -> dict[str, auto.ConfigValue]:
    """What `pulumi config --show-secrets --json` (stack.get_all_config()) says of a stack file: Pulumi.yaml's
    defaults, then the file's values, each as a string (objects as JSON), secrets decrypted."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    document = (yaml.safe_load(stack_file.read_text()) if stack_file.exists() else None) or {}
    plain = {key: decrypted(value) for key, value in (document.get("config") or {}).items()}
    config, secrets = load_stack_config(stack, secret_overrides={key: value for key, (value, secret) in plain.items()
                                                                 if secret}, project_dir=project_dir)
    return {key: auto.ConfigValue(value, secret=key in secrets) for key, value in config.items()}
