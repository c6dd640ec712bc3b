"""Pulumi.yaml documents every setting, and its defaults are the ones the program applies."""

from __future__ import annotations

import yaml

from components.settings import Settings
from components.settings_loader import OBJECT_KEYS, SCALAR_KEYS
from tests.stack_config import PROJECT_DIR

PROJECT = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())


def test_every_setting_is_documented_with_type_and_description():
    config = PROJECT["config"]
    assert set(config) == set(OBJECT_KEYS + SCALAR_KEYS)
    for key, spec in config.items():
        assert spec["type"] in ("string", "integer", "object") and spec["description"], key


def test_pulumi_yaml_defaults_equal_the_program_defaults():
    defaults = Settings(stack="s", project="webstack", projectDir=PROJECT_DIR, release="r")
    for key, spec in PROJECT["config"].items():
        if "default" not in spec or key == "release":   # empty means "the git commit" (test_git_release.py)
            continue
        value = getattr(defaults, key)
        if hasattr(value, "model_dump"):
            value = {k: v for k, v in value.model_dump().items() if v is not None}
        if value is None:   # an optional secret: Pulumi.yaml says "" (a key without a default is required)
            value = ""
        assert value == spec["default"], key


def test_the_project_is_named_webstack():
    assert PROJECT["name"] == "webstack"


def test_stack_files_hold_only_known_settings():
    for stack in ("dev", "prod"):
        config = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert {key.split(":", 1)[1] for key in config} <= set(OBJECT_KEYS + SCALAR_KEYS), stack
