"""Values set with --secret stay secret: in container inputs and in every configuration error."""

from __future__ import annotations

import json

import pytest

from components.settings_loader import ConfigError, load_settings
from tests.program import is_secret, run_program
from tests.stack_config import PROJECT_DIR


def refused(values: dict, secrets: set[str]) -> str:
    raw = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in {"release": "v1", **values}.items()}
    with pytest.raises(ConfigError) as error:
        load_settings(raw, secrets, "test", PROJECT_DIR)
    return str(error.value)


@pytest.mark.parametrize("case,values,secrets", [
    ("a number where the env wants a string", {"backend": {"env": {"API_TOKEN": 73519462}}}, {"backend"}),
    ("a secret top-level key that is not an integer", {"httpPort": "73519462x"}, {"httpPort"}),
    ("a secret object that is not an object", {"database": "73519462"}, {"database"}),
    ("a secret value a validator rejects", {"release": "73519462 !"}, {"release"}),
    ("a secret private key given as a number", {"target": {"privateKey": 73519462}}, {"target"}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_no_value_of_a_secret_key_is_echoed_in_an_error(case, values, secrets):
    message = refused(values, secrets)
    assert "73519462" not in message, message


def test_a_plain_value_is_still_echoed_to_help_the_user():
    assert "'73519462x'" in refused({"httpPort": "73519462x"}, set())


def test_backend_env_set_with_secret_reaches_the_containers_as_a_secret():
    run = run_program("dev", secret_overrides={"webstack:generationKey": "k" * 64,
                                               "webstack:backend": {"env": {"API_TOKEN": "s3cr3t-value"}}})
    for backend in run.containers()["backend"]:
        assert is_secret(backend.secret_inputs["envs"]), backend.secret_inputs["envs"]


def test_plain_backend_env_stays_readable_in_the_plan():
    run = run_program("dev", overrides={"webstack:backend": {"env": {"LOG_LEVEL": "debug"}}})
    for backend in run.containers()["backend"]:
        assert "LOG_LEVEL=debug" in backend.secret_inputs["envs"]
