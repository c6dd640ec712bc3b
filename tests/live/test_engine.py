"""The real Pulumi engine (tools/pulumi-toolchain) runs a Python program of ours, end to end.

What only the engine has is checked here on a program small enough to need no provider plugin: webstack's own
SelfSignedCertificate (a dynamic resource, served by the SDK's pulumi-python provider) under a component, and
a test-only dynamic resource that takes a bounded time to create (to hold the stack's lock). It runs through
the CLI we build and our language host: cold `up`, a no-change `up` (0 changes in the engine's summary), a
`preview` that names exactly the resource that changes, `stack history` with each update's config, secrets
only as ciphertext in the state, a concurrent `up` refused by the lock, a program error that fails the update
without a Python traceback of ours, and destroy.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.live.engine import PROJECT_DIR, TOOLCHAIN_BIN, EngineFailed, EngineRun, EngineStack

pytestmark = pytest.mark.live

PROGRAM = '''
import time
import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider
from components.self_signed import SelfSignedCertificate


class Slow(ResourceProvider):
    def create(self, props):
        time.sleep(float(props["seconds"]))   # bounded: the test sets a few seconds
        return CreateResult(f"slow-{props['token']}", props)


class SlowResource(Resource):
    def __init__(self, name, seconds, token):
        super().__init__(Slow(), name, {"seconds": seconds, "token": token})


class Site(pulumi.ComponentResource):
    def __init__(self, name, domain):
        super().__init__("webstack:test:Site", name, None, None)
        self.certificate = SelfSignedCertificate(f"{name}-cert", domain, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


config = pulumi.Config()
site = Site("site", config.require("domain"))
if config.get("slowToken"):
    SlowResource("slow", config.require("slowSeconds"), config.require("slowToken"))
if config.get_bool("fail"):
    raise pulumi.RunError("webstack:fail is set: this is the program refusing, with a clear message")
pulumi.export("certificate", site.certificate.cert_pem)
pulumi.export("key", site.certificate.key_pem)
pulumi.export("token", config.get_secret("token"))
'''


def require_toolchain() -> None:
    missing = [name for name in ("pulumi", "pulumi-language-python", "pulumi-resource-pulumi-python")
               if not (TOOLCHAIN_BIN / name).exists()]
    if missing:
        message = f"the Pulumi toolchain is not built ({', '.join(missing)} missing in {TOOLCHAIN_BIN}): " \
                  "run bash tools/pulumi-toolchain/build.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        print(f"SKIPPED: {message}")
        pytest.skip(message)


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory) -> Path:
    require_toolchain()
    directory = tmp_path_factory.mktemp("engine-program")
    (directory / "Pulumi.yaml").write_text("name: enginetest\nruntime:\n  name: python\n  options:\n"
                                           "    virtualenv: venv\n")
    (directory / "__main__.py").write_text(PROGRAM)
    (directory / "components").symlink_to(PROJECT_DIR / "components")
    (directory / "templates").symlink_to(PROJECT_DIR / "templates")
    (directory / "venv").symlink_to(PROJECT_DIR / "venv")
    return directory


@pytest.fixture(scope="module")
def stack(program_dir, tmp_path_factory) -> EngineStack:
    return EngineStack(program_dir, "dev", tmp_path_factory.mktemp("engine-state"), copy=False,
                       config={"enginetest:domain": "one.example.test"},
                       secrets={"enginetest:token": "s3cr3t-token-value"})


def test_1_cold_up_then_a_no_change_up_reports_zero_changes(stack):
    cold = stack.up()
    assert cold.changes == {"create": 3}, cold.changes     # the stack, the component, the certificate
    assert cold.outputs["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    again = stack.up()
    assert again.changed == 0 and again.changes == {"same": 3}, again.changes
    assert again.outputs["certificate"] == cold.outputs["certificate"]   # generated once, kept in state


def test_2_secrets_are_only_ciphertext_in_the_state_and_marked_secret_in_output(stack):
    files = stack.checkpoint_files()
    assert files
    for path in files:
        text = path.read_text(errors="replace")
        assert "s3cr3t-token-value" not in text and "PRIVATE KEY" not in text, path
    assert "ciphertext" in json.dumps(stack.export())
    run = stack.preview()
    assert "s3cr3t-token-value" not in run.output and "PRIVATE KEY" not in run.output


def test_3_preview_of_a_change_names_exactly_the_resource_that_changes(stack):
    plan = stack.preview(**{"enginetest:domain": "two.example.test"})
    assert plan.names("replace") == ["site-cert"], plan.steps
    assert plan.names("same") == ["enginetest-dev", "site"], plan.steps
    assert plan.changes.get("replace") == 1


def test_4_history_has_one_entry_per_update_with_its_config(stack):
    stack.up(**{"enginetest:domain": "two.example.test"})
    updates = [h for h in stack.history() if h.kind == "update"]
    assert len(updates) == 3, [(h.version, h.kind, h.result) for h in updates]
    newest, oldest = updates[0], updates[-1]
    assert newest.config["enginetest:domain"].value == "two.example.test"
    assert oldest.config["enginetest:domain"].value == "one.example.test"
    assert newest.config["enginetest:token"].secret   # the SDK asks for --show-secrets; at rest see test_2


def second_up_while_the_first_runs(stack: EngineStack, other: EngineStack, overrides: dict,
                                   lock_taken) -> tuple[EngineRun, EngineFailed]:
    """Start `up` on `stack` (a slow one); once `lock_taken()` sees the backend's lock, run `up` on `other` (the same
    stack in another workspace). Returns the first run and the second one's failure."""
    first: dict = {}
    runner = threading.Thread(target=lambda: first.setdefault("run", stack.up(**overrides)))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not lock_taken():
            time.sleep(0.1)
        assert lock_taken(), "the first up never took the lock"
        with pytest.raises(EngineFailed) as refused:
            other.up(**overrides)
    finally:
        runner.join(timeout=120)
    return first["run"], refused.value


def test_5_a_second_up_while_one_runs_is_refused_by_the_lock(stack, tmp_path):
    other = EngineStack(stack.work_dir, "dev", tmp_path, copy=False, backend_url=stack.backend_url,
                        passphrase=stack.passphrase)
    slow = {"enginetest:slowSeconds": "8", "enginetest:slowToken": "t1"}
    run, refused = second_up_while_the_first_runs(
        stack, other, slow, lambda: bool(list(Path(stack.backend_url[7:]).rglob("locks/**/*.json"))))
    assert "currently locked" in refused.message, refused.message
    assert run.names("create") == ["slow"]


def test_6_a_program_error_fails_the_update_with_its_message_and_changes_nothing(stack):
    before = stack.export()
    with pytest.raises(EngineFailed) as failed:
        stack.up(**{"enginetest:fail": "true"})
    assert "this is the program refusing, with a clear message" in failed.value.message
    assert "Traceback" not in failed.value.message
    assert [r["urn"] for r in stack.export()["resources"]] == [r["urn"] for r in before["resources"]]


def test_7_destroy_removes_everything(stack):
    stack.destroy()
    assert not stack.export().get("resources")


def test_invalid_webstack_settings_fail_preview_and_up_at_once_with_the_key_and_no_traceback(tmp_path):
    """The real program on the real engine: a user mistake is one clear error before anything exists."""
    bad = EngineStack(PROJECT_DIR, "badconfig", tmp_path,
                      config={"webstack:release": "r1", "webstack:httpPort": 99999})
    for command in (bad.preview, bad.up):
        with pytest.raises(EngineFailed) as failed:
            command()
        assert "webstack:httpPort" in failed.value.message, failed.value.message
        assert "Traceback" not in failed.value.message, failed.value.message
    assert not (bad.export().get("resources") or [])[1:]   # nothing but (at most) the stack itself
