"""Issue 22, item 7: `python -m ops rollback` writes into the stack file only what differs from the version it
rolls back to, in place; with --yes it is one `pulumi up`; its default version ran another release or config.

The stack, its history and the target are stand-ins; the diff and the edit of the stack file are the real ones,
on real files, and a stand-in `pulumi` (tests/fake_pulumi.py) encrypts.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pulumi import automation as auto

from ops import rollback, stack as stacks
from ops.__main__ import main
from ops.config_diff import Value, project_config
from ops.errors import OpsError
from ops.stack_file import REMOVE, edited
from tests.fake_pulumi import calls, ciphertext, config_json, fake_pulumi
from tests.stack_config import PROJECT_DIR, load_stack_config

GENERATION_KEY = "g" * 64
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
R1_IMAGES = {"backend": "sha256:" + "b1" * 32, "web": "sha256:" + "w1" * 32}

# The stack file as a team keeps it: comments, aligned comments, quotes where YAML needs none, a blank line.
STACK_FILE = f"""\
# The prod stack. Hand-written: the comments, the alignment and the quoting are the team's.
config:
  webstack:release: r2                # set by the deploy job
  webstack:domain: "app.example.com"
  webstack:httpPort: 80               # CIS 5.8 waiver
  webstack:httpsPort: 443
  webstack:generationKey:
    secure: {ciphertext(GENERATION_KEY)}
  webstack:backend:
    replicas: 3         # busy season
    env:
      MODE: 'fast'

  # Our CA's certificate; the key is the operator's.
  webstack:tls:
    mode: provided
    certificate:
      secure: {ciphertext(CERTIFICATE)}
    privateKey:
      secure: {ciphertext("key-2")}
encryptionsalt: v1:fake-salt
"""

# The same stack's config as the engine recorded it with each update (Pulumi.yaml's defaults included).
R2 = {"webstack:release": "r2", "webstack:domain": "app.example.com", "webstack:httpPort": 80,
      "webstack:httpsPort": 443, "webstack:generationKey": GENERATION_KEY,
      "webstack:backend": {"replicas": 3, "env": {"MODE": "fast"}},
      "webstack:tls": {"mode": "provided", "certificate": CERTIFICATE, "privateKey": "key-2"}}
R1 = {**R2, "webstack:release": "r1", "webstack:backend": {"replicas": 2, "env": {"MODE": "fast"}}}
SECRETS = {"webstack:generationKey", "webstack:tls"}


def update(config: dict, secrets: set[str] = SECRETS, result: str = "succeeded", head: str = "c" * 40,
           kind: str = "update") -> auto.UpdateSummary:
    """A history entry of `config`, which the engine recorded with Pulumi.yaml's defaults."""
    recorded, _ = load_stack_config("no-such-stack", overrides=config)   # the defaults, then `config`
    return auto.UpdateSummary(kind=kind, start_time=dt.datetime(2025, 1, 1), message="", result=result,
                              environment={"git.head": head}, config={
                                  key: {"value": value, "secret": key in secrets} for key, value in recorded.items()})


class FakeStack:
    name = "prod"

    def __init__(self, project: Path, history: list[auto.UpdateSummary], pulumi: Path):
        self.project, self.entries = project, history
        self.workspace = SimpleNamespace(pulumi_command=SimpleNamespace(command=str(pulumi)),
                                         work_dir=str(project), env_vars={})

    def history(self, **_) -> list[auto.UpdateSummary]:
        return self.entries

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return config_json(self.project, self.name)


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A project whose prod stack ran r1, then r2, then r2 again (a no-change `up`); the target keeps r1's and
    r2's images. `engine` records each engine run and answers `exit_codes` (0: succeeded)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", project)
    (project / "Pulumi.prod.yaml").write_text(STACK_FILE)
    history = [update(R2, head="d" * 40), update(R2), update(R1, head="b" * 40)]   # newest first
    state = SimpleNamespace(project=project, bin=tmp_path, runs=[], exit_codes={}, answer=True,
                            stack=FakeStack(project, history, fake_pulumi(tmp_path)))
    images = [(R1_IMAGES["backend"], "r1", "backend"), (R1_IMAGES["web"], "r1", "web"),
              ("sha256:" + "b2" * 32, "r2", "backend"), ("sha256:" + "w2" * 32, "r2", "web")]

    def engine(stack, *command):
        state.runs.append(command)
        return state.exit_codes.get(command[0], 0)

    def confirmed():
        state.runs.append(("asked",))
        return state.answer

    monkeypatch.setattr(stacks, "PROJECT_DIR", project)
    monkeypatch.setattr(stacks, "select", lambda name: state.stack)
    monkeypatch.setattr(rollback, "settings_from",
                        lambda name, config: SimpleNamespace(images=SimpleNamespace(keep=5)))
    monkeypatch.setattr(rollback, "Target", lambda settings: SimpleNamespace(settings=settings))
    monkeypatch.setattr(rollback, "stack_images", lambda target: images)
    monkeypatch.setattr(rollback, "engine", engine)
    monkeypatch.setattr(rollback, "confirmed", confirmed)
    return state


def stack_file(state) -> str:
    return (state.project / "Pulumi.prod.yaml").read_text()


PINNED_R1 = f"""\
  webstack:images:
    pinned:
      release: r1
      backend: {R1_IMAGES['backend']}
      web: {R1_IMAGES['web']}
"""


def test_the_rollback_writes_only_the_values_that_differ_and_every_other_byte_stays(deployment, capsys):
    assert main(["rollback", "--stack", "prod", "--yes"]) == 0
    expected = (STACK_FILE.replace("webstack:release: r2 ", "webstack:release: r1 ")
                .replace("replicas: 3 ", "replicas: 2 ")
                .replace("encryptionsalt:", PINNED_R1 + "encryptionsalt:"))
    assert stack_file(deployment) == expected
    out = capsys.readouterr().out
    assert "  ~ webstack:release: r2 -> r1\n" in out and "  ~ webstack:backend.replicas: 3 -> 2\n" in out
    assert f'  + webstack:images: {{"pinned": {{"release": "r1", "backend": "{R1_IMAGES["backend"]}"' in out


def test_pulumi_yaml_defaults_in_the_history_are_not_written_out(deployment):
    main(["rollback", "--stack", "prod", "--yes"])
    written = yaml.safe_load(stack_file(deployment))["config"]
    assert set(written) == set(yaml.safe_load(STACK_FILE)["config"]) | {"webstack:images"}
    assert written["webstack:images"] == {"pinned": {"release": "r1", **R1_IMAGES}}   # not images.keep: 5


def test_with_yes_the_rollback_is_one_engine_run_recorded_with_a_message(deployment):
    main(["rollback", "--stack", "prod", "--yes"])
    assert deployment.runs == [("up", "--yes", "--skip-preview", "--message",
                                "python -m ops rollback to version 1 (release r1)")]


def test_without_yes_it_previews_asks_and_then_applies(deployment):
    assert main(["rollback", "--stack", "prod"]) == 0
    assert [run[0] for run in deployment.runs] == ["preview", "asked", "up"]


@pytest.mark.parametrize("answer, exit_codes, words", [
    (False, {}, "not applied"),
    (True, {"preview": 255}, "the preview failed"),
    (True, {"up": 255}, "the rollback's update failed"),
])
def test_a_rollback_not_applied_puts_the_stack_file_back_byte_for_byte(deployment, capsys, answer, exit_codes,
                                                                       words):
    deployment.answer, deployment.exit_codes = answer, exit_codes
    assert main(["rollback", "--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert stack_file(deployment) == STACK_FILE


def test_a_secret_that_differs_is_written_encrypted_on_stdin_and_one_that_matches_is_left_alone(deployment, capsys):
    """The version's tls.privateKey differs, its certificate and generationKey are the file's (as plain text:
    the file's ciphertexts are not the history's to compare)."""
    r1 = {**R1, "webstack:tls": {**R1["webstack:tls"], "privateKey": "key-1"}}
    deployment.stack.entries[-1] = update(r1, head="b" * 40)
    main(["rollback", "--stack", "prod", "--yes"])
    after = stack_file(deployment)
    assert after.replace(ciphertext("key-1"), ciphertext("key-2")) == \
        STACK_FILE.replace("webstack:release: r2 ", "webstack:release: r1 ").replace("replicas: 3 ", "replicas: 2 ") \
        .replace("encryptionsalt:", PINNED_R1 + "encryptionsalt:")
    [(argv, stdin)] = calls(deployment.bin)
    assert stdin == "key-1\n" and not any("key-1" in arg for arg in argv)
    assert argv[:5] == ["config", "set", "--secret", "--stack", "prod"]
    assert argv[argv.index("--config-file") + 1] != str(deployment.project / "Pulumi.prod.yaml")   # a scratch copy
    out = capsys.readouterr().out
    assert "  ~ webstack:tls.privateKey: [secret] -> [secret]\n" in out and "key-1" not in out


def test_a_secret_of_the_version_stays_secret_where_the_file_holds_it_in_plain_text(deployment):
    (deployment.project / "Pulumi.prod.yaml").write_text(
        STACK_FILE.replace(f"\n    secure: {ciphertext(GENERATION_KEY)}", f" {GENERATION_KEY}"))
    main(["rollback", "--stack", "prod", "--yes"])
    assert yaml.safe_load(stack_file(deployment))["config"]["webstack:generationKey"] == \
        {"secure": ciphertext(GENERATION_KEY)}


def test_a_field_added_to_an_object_that_was_secret_in_that_version_is_encrypted_and_the_rest_stays(deployment):
    """r1's backend held an app secret (so the history marks all of webstack:backend secret); the file's backend,
    in plain text, has the same replicas and env: they stay as they are, the secret comes back encrypted."""
    backend = {"replicas": 3, "env": {"MODE": "fast"}, "secrets": {"TOKEN": "t0k3n"}}
    deployment.stack.entries[-1] = update({**R1, "webstack:backend": backend}, SECRETS | {"webstack:backend"},
                                          head="b" * 40)
    main(["rollback", "--stack", "prod", "--yes"])
    token = f"    secrets:\n      TOKEN:\n        secure: {ciphertext('t0k3n')}\n"
    assert stack_file(deployment) == (STACK_FILE.replace("webstack:release: r2 ", "webstack:release: r1 ")
                                      .replace("      MODE: 'fast'\n", "      MODE: 'fast'\n" + token)
                                      .replace("encryptionsalt:", PINNED_R1 + "encryptionsalt:"))


def test_a_key_the_version_did_not_set_goes_and_one_it_held_at_its_default_is_unset(deployment):
    """r1 ran without webstack:backend (Pulumi.yaml's default, recorded in full) and without a key the file has
    since gained; both go, and the default is not written out."""
    r1 = {key: value for key, value in R1.items() if key != "webstack:backend"}
    deployment.stack.entries[-1] = update(r1, head="b" * 40)
    (deployment.project / "Pulumi.prod.yaml").write_text(
        STACK_FILE.replace("  webstack:httpsPort: 443\n", "  webstack:httpsPort: 443\n  other:flag: 'on'\n"))
    main(["rollback", "--stack", "prod", "--yes"])
    backend = "  webstack:backend:\n    replicas: 3         # busy season\n    env:\n      MODE: 'fast'\n"
    assert stack_file(deployment) == (STACK_FILE.replace("webstack:release: r2 ", "webstack:release: r1 ")
                                      .replace(backend, "").replace("encryptionsalt:", PINNED_R1 + "encryptionsalt:"))


def test_a_stack_file_that_holds_the_version_already_changes_nothing_but_still_runs_the_update(deployment, capsys):
    (deployment.project / "Pulumi.prod.yaml").write_text(
        STACK_FILE.replace("webstack:release: r2 ", "webstack:release: r1 ").replace("replicas: 3 ", "replicas: 2 ")
        .replace("encryptionsalt:", PINNED_R1 + "encryptionsalt:"))
    before = stack_file(deployment)
    assert main(["rollback", "--stack", "prod", "--to", "1", "--yes"]) == 0
    assert stack_file(deployment) == before
    assert "Pulumi.prod.yaml already holds that version's config" in capsys.readouterr().out
    assert [run[0] for run in deployment.runs] == ["up"]


def test_the_first_secret_of_a_stack_file_without_a_salt_brings_the_salt_along(deployment):
    (deployment.project / "Pulumi.prod.yaml").write_text("config:\n  webstack:release: r2  # ci\n")
    r1 = {"webstack:release": "r1", "webstack:generationKey": GENERATION_KEY}
    deployment.stack.entries = [update({"webstack:release": "r2"}, secrets=set()),
                                update(r1, secrets={"webstack:generationKey"})]
    main(["rollback", "--stack", "prod", "--yes"])
    after = yaml.safe_load(stack_file(deployment))
    assert after["encryptionsalt"] == "v1:fake-salt"
    assert after["config"]["webstack:generationKey"] == {"secure": ciphertext(GENERATION_KEY)}
    assert stack_file(deployment).startswith("config:\n  webstack:release: r1  # ci\n")


def test_nothing_to_roll_back_to_is_one_clear_error_and_changes_nothing(deployment, capsys):
    deployment.stack.entries = deployment.stack.entries[:2]   # r2 and a no-change up of it
    assert main(["rollback", "--stack", "prod", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "no earlier successful update ran another release or config than version 2 (release r2)" in err
    assert "Traceback" not in err and deployment.runs == [] and stack_file(deployment) == STACK_FILE


def test_a_secret_the_history_cannot_decrypt_is_refused(deployment, capsys):
    r1 = {**R1, "webstack:generationKey": "ERROR_UNABLE_TO_DECRYPT"}
    deployment.stack.entries[-1] = update(r1, head="b" * 40)
    assert main(["rollback", "--stack", "prod", "--yes"]) == 2
    assert "cannot decrypt webstack:generationKey" in capsys.readouterr().err
    assert stack_file(deployment) == STACK_FILE


# --- the default version ------------------------------------------------------------------------------------

def test_no_change_ups_from_newer_commits_of_a_named_release_are_not_another_version():
    """The measured bug: after no-change `pulumi up`s, `ops rollback --yes` "rolled back" to the same release.
    Pulumi records the git commit with every update; with a release set, the commit changes nothing."""
    history = [update(R2, head="f" * 40), update(R2, head="e" * 40), update(R2, head="d" * 40), update(R1)]
    assert rollback.choose(history, None)[0] == 1


def test_pinned_images_alone_do_not_make_another_version():
    """A rollback pins the images of the release it runs: the same release and config otherwise."""
    pinned = {**R2, "webstack:images": {"keep": 5, "pinned": {"release": "r2", "backend": "sha256:b2"}}}
    history = [update(pinned), update(R2), update(R1)]
    assert rollback.choose(history, None)[0] == 1


def test_a_config_change_alone_is_another_version():
    history = [update(R2), update({**R2, "webstack:domain": "old.example.com"}), update(R1)]
    assert rollback.choose(history, None)[0] == 2


def test_a_failed_update_and_a_refresh_are_skipped():
    history = [update(R2), update(R1, result="failed"), update(R1, kind="refresh"), update(R1)]
    assert rollback.choose(history, None)[0] == 1


def test_a_stack_without_a_successful_update_has_nothing_to_roll_back_to():
    with pytest.raises(OpsError, match="no successful update"):
        rollback.choose([update(R1, result="failed")], None)


# --- the edit of the stack file -----------------------------------------------------------------------------

@pytest.mark.parametrize("before, path, value, after", [
    # A scalar is replaced where it stands: the comment after it, and its spacing, stay.
    ("config:\n  a: 1    # why\n  b: 2\n", ("config", "a"), 10, "config:\n  a: 10    # why\n  b: 2\n"),
    ("config:\n  a: 'x'\n", ("config", "a"), "two\nlines", 'config:\n  a: "two\\nlines"\n'),
    # A new key goes after its mapping's last line, before the comment lines that follow it.
    ("config:\n  a:\n    b: 1\n  # about c\n  c: 2\n", ("config", "a", "d"), "x",
     "config:\n  a:\n    b: 1\n    d: x\n  # about c\n  c: 2\n"),
    ("config:\n  a: 1\nsalt: s", ("config", "n", "m"), [1], "config:\n  a: 1\n  n:\n    m:\n    - 1\nsalt: s"),
    # A removed key takes its own lines only.
    ("config:\n  a:\n    b: 1\n    c: 2\n\n  # about d\n  d: 3\n", ("config", "a"), REMOVE,
     "config:\n\n  # about d\n  d: 3\n"),
    ("config:\n  a: 1\n", ("config", "zz"), REMOVE, "config:\n  a: 1\n"),
    # A flow mapping, or a value where an object goes, is its entry written again.
    ("config:\n  t: {mode: 'off', x: 1}\n  u: 2\n", ("config", "t", "x"), REMOVE,
     "config:\n  t:\n    mode: 'off'\n  u: 2\n"),
    ("config:\n  k:\n    secure: v1:abc\n", ("config", "k", "f"), "v", "config:\n  k:\n    f: v\n"),
    ("config:\n  e:\n  f: 1\n", ("config", "e", "a"), 1, "config:\n  e:\n    a: 1\n  f: 1\n"),
    # A block scalar is replaced with its lines, not the blank line after them.
    ("config:\n  a: |\n    x\n    y\n\n  b: 1\n", ("config", "a"), "z", "config:\n  a: z\n\n  b: 1\n"),
    # A file without config, or none at all.
    ("# only a comment\n", ("config", "a"), "v", "# only a comment\nconfig:\n  a: v\n"),
    ("", ("config", "a"), {"secure": "v1:x"}, "config:\n  a:\n    secure: v1:x\n"),
    ("encryptionsalt: s\n", ("config", "a"), "v", "encryptionsalt: s\nconfig:\n  a: v\n"),
])
def test_the_edit_changes_the_one_value_and_leaves_every_other_byte(before, path, value, after):
    assert edited(before, path, value) == after


def test_an_edit_that_would_not_read_back_as_intended_is_refused():
    with pytest.raises(OpsError, match="could not edit config.t.x"):
        edited("config:\n  t: &shared {x: 1}\n  u: *shared\n", ("config", "t", "x"), 2)


# --- with the real CLI ----------------------------------------------------------------------------------------

def test_with_the_real_pulumi_cli_the_edited_file_reads_back_as_the_version_with_its_comments(tmp_path):
    """The stand-in `pulumi` above encrypts nothing: here the toolchain's own encrypts the version's secrets (config
    commands only, on a throwaway file backend), and reads the edited stack file back as Pulumi reads it."""
    try:
        command = stacks.pulumi_command().command
    except OpsError:
        pytest.skip("no pulumi CLI")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", project)
    (tmp_path / "state").mkdir()
    env = {"PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}", "PULUMI_CONFIG_PASSPHRASE": "test",
           "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_HOME": str(tmp_path / "home")}

    def pulumi(*args: str, stdin: str | None = None) -> str:
        return subprocess.run([command, *args, "--stack", "prod", "--non-interactive"], cwd=project, input=stdin,
                              env={**os.environ, **env}, text=True, capture_output=True, check=True).stdout

    def config() -> dict[str, auto.ConfigValue]:   # as stack.get_all_config() reads it
        return {key: auto.ConfigValue(value["value"], value["secret"])
                for key, value in json.loads(pulumi("config", "--show-secrets", "--json")).items()}

    subprocess.run([command, "stack", "init", "prod", "--non-interactive"], cwd=project, env={**os.environ, **env},
                   capture_output=True, check=True)
    pulumi("config", "set", "--secret", "webstack:generationKey", stdin=GENERATION_KEY + "\n")
    made = yaml.safe_load((project / "Pulumi.prod.yaml").read_text())
    head = ("# hand-written\nconfig:\n  webstack:release: r2   # ci\n  webstack:generationKey:\n"
            f"    secure: {made['config']['webstack:generationKey']['secure']}\n")
    text = head + f"  webstack:tls:\n    mode: self-signed   # for now\nencryptionsalt: {made['encryptionsalt']}\n"
    (project / "Pulumi.prod.yaml").write_text(text)

    tls = {"mode": "provided", "certificate": CERTIFICATE, "privateKey": "key-1"}
    version = {"webstack:release": Value("r1", False), "webstack:generationKey": Value(GENERATION_KEY, True),
               "webstack:tls": Value(tls, True)}
    declared = project_config(project)
    changes = rollback.rollback_changes(text, config(), declared, version, {"release": "r1", **R1_IMAGES})
    stack = SimpleNamespace(name="prod", workspace=SimpleNamespace(
        pulumi_command=SimpleNamespace(command=command), work_dir=str(project), env_vars=env))
    after = rollback.written(stack, text, changes, declared)
    (project / "Pulumi.prod.yaml").write_text(after)

    assert after.startswith(head.replace("release: r2 ", "release: r1 "))
    assert after.endswith(f"encryptionsalt: {made['encryptionsalt']}\n")
    read_back = config()
    assert (json.loads(read_back["webstack:tls"].value), read_back["webstack:tls"].secret) == (tls, True)
    assert json.loads(read_back["webstack:images"].value) == {"pinned": {"release": "r1", **R1_IMAGES}}
    assert "key-1" not in after and "BEGIN CERTIFICATE" not in after
