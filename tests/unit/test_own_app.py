"""Your own app (docs/own-app.md): its settings, the edge's routes and headers, and the graph under mocks."""

from __future__ import annotations

import base64

import pytest

from components import rendering
from components.settings_loader import ConfigError, load_settings
from tests.program import is_secret, run_program
from tests.stack_config import PROJECT_DIR
from tests.unit.test_program_graph import only, switch_bundle

SECRET = "s3cr3t-value-never-shown"
OWN_APP = {"releaseCommand": ["node", "migrate.js"], "generatedSecrets": ["DJANGO_SECRET_KEY"], "egress": True,
           "volumes": {"media": "/app/media"}, "secrets": {"API_TOKEN": SECRET}}


GENERATION_KEY = {"webstack:generationKey": "k" * 64}


def load(values: dict, secrets: set[str] = frozenset()):
    """Settings from values; a secret `backend` comes with the generationKey it requires."""
    if "backend" in secrets and "generationKey" not in values:
        values, secrets = {**values, "generationKey": "k" * 64}, {*secrets, "generationKey"}
    return load_settings({"release": "v1", **values}, set(secrets), "test", PROJECT_DIR)


def problems(values: dict, secrets: set[str] = frozenset()) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        load(values, secrets)
    return dict(error.value.problems)


# --- settings -------------------------------------------------------------------------------------------------

def test_defaults_keep_the_reference_layout():
    settings = load({})
    backend = settings.backend
    assert (backend.secrets, backend.generatedSecrets, backend.releaseCommand, backend.egress, backend.volumes) == \
        ({}, [], [], False, {})
    assert settings.frontend.enabled and settings.backend_prefix == "/api" and backend.stripPrefix


def test_a_backend_only_app_is_served_at_the_root():
    assert load({"frontend": {"enabled": False}}).backend_prefix == "/"
    assert load({"frontend": {"enabled": False}, "backend": {"pathPrefix": "/app"}}).backend_prefix == "/app"


def test_a_plaintext_app_secret_is_refused_with_the_fix_and_without_its_value():
    found = problems({"backend": {"secrets": {"API_TOKEN": SECRET}}})
    message = found["backend.secrets.API_TOKEN"]
    assert "plain text" in message and SECRET not in message
    assert "pulumi config set --secret --path webstack:backend.secrets.API_TOKEN" in message


def test_app_secrets_set_with_secret_are_accepted_and_never_echoed_in_errors():
    assert load({"backend": {"secrets": {"API_TOKEN": SECRET}}}, {"backend"}).backend.secrets["API_TOKEN"] \
        .get_secret_value() == SECRET
    found = problems({"backend": {"secrets": {"API_TOKEN": SECRET}, "replicas": 0}}, {"backend"})
    assert "backend.replicas" in found and SECRET not in str(found)


@pytest.mark.parametrize("backend, key, words", [
    ({"env": {"PORT": "1"}}, "backend.env", "set by webstack"),
    ({"generatedSecrets": ["PGHOST"]}, "backend.generatedSecrets", "set by webstack"),
    ({"generatedSecrets": ["1BAD"]}, "backend.generatedSecrets", "1BAD"),
    ({"env": {"KEY": "1"}, "generatedSecrets": ["KEY"]}, "backend.generatedSecrets", "also in backend.env"),
    ({"generatedSecrets": ["A", "A"]}, "backend.generatedSecrets", "twice"),
    ({"releaseCommand": ["node", ""]}, "backend.releaseCommand", "non-empty"),
    ({"volumes": {"Media": "/app/media"}}, "backend.volumes", "lower-case"),
    ({"volumes": {"media": "app/media"}}, "backend.volumes", "absolute"),
    ({"volumes": {"media": "/app/../etc"}}, "backend.volumes", "absolute"),
    ({"volumes": {"media": "/tmp/media"}}, "backend.volumes", "overlaps"),
    ({"volumes": {"socket": "/var/run"}}, "backend.volumes", "overlaps"),
    ({"volumes": {"a": "/app/data", "b": "/app/data/b"}}, "backend.volumes", "nest"),
    ({"pathPrefix": "/api/"}, "backend.pathPrefix", "no trailing"),
    ({"pathPrefix": "api"}, "backend.pathPrefix", "leading"),
    ({"pathPrefix": "/"}, "backend.pathPrefix", "frontend.enabled"),
    ({"egress": "sometimes"}, "backend.egress", "bool"),
])
def test_bad_own_app_settings_name_the_key_and_the_fix(backend, key, words):
    found = problems({"backend": backend})
    assert key in found, found
    assert words in found[key] and "Fix:" in found[key], found[key]


def test_a_disabled_frontend_needs_no_frontend_build_context():
    assert not load({"frontend": {"enabled": False, "context": "no/such/dir"}}).frontend.enabled


# --- the edge's routes ----------------------------------------------------------------------------------------

def site(values: dict) -> str:
    settings = load(values)
    return rendering.render_edge_site(settings, ["b1"], ["w1"] if settings.frontend.enabled else [])


def location(text: str, path: str) -> str:
    """A location of the server that serves the app (the last one: catch-all servers come first)."""
    text = text[text.rindex("    server_name "):]
    start = text.index(f"    location {path} {{")
    return text[start:text.index("\n    }", start)]


def test_the_backend_gets_the_sites_host_with_port_the_scheme_and_the_address_the_edge_saw():
    api = location(site({"domain": "example.com", "httpPort": "80"}), "/api/")
    assert "proxy_pass http://webstack_backend/;" in api   # the prefix is stripped
    assert 'proxy_set_header Host "example.com";' in api and "proxy_set_header X-Forwarded-Proto $scheme;" in api
    assert 'proxy_set_header Host "localhost:8080";' in location(site({}), "/api/")   # the published port
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in api
    assert "$proxy_add_x_forwarded_for" not in site({})   # never the client's own value, appended to


def test_a_backend_only_app_owns_the_root_and_there_is_no_web_upstream():
    text = site({"frontend": {"enabled": False}})
    root = location(text, "/")
    assert "proxy_pass http://webstack_backend;" in root and "$remote_addr" in root
    assert "webstack_web" not in text and "location /api/" not in text


def test_a_prefix_kept_in_the_path_is_passed_whole():
    text = site({"backend": {"pathPrefix": "/app", "stripPrefix": False}})
    assert "proxy_pass http://webstack_backend;" in location(text, "/app/")
    assert "return 308 /app/$is_args$args;" in location(text, "= /app")
    assert "proxy_pass http://webstack_web;" in location(text, "/")


def test_the_edge_switch_checks_the_backend_where_the_edge_serves_it():
    assert rendering.edge_check_paths(load({})) == ["/", "/api/readiness"]
    assert rendering.edge_check_paths(load({"frontend": {"enabled": False}})) == ["/readiness"]
    kept = load({"backend": {"pathPrefix": "/app", "stripPrefix": False, "healthPath": "/app/health"}})
    assert rendering.edge_check_paths(kept) == ["/", "/app/health"]


# --- the program under mocks ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_app():
    plain = {k: v for k, v in OWN_APP.items() if k != "secrets"}
    return run_program("dev", secret_overrides={**GENERATION_KEY,
                                                "webstack:backend": {**plain, "secrets": OWN_APP["secrets"],
                                                                     "env": {"MODE": "test"}},
                                                "webstack:frontend": {"enabled": False}})


def test_generated_secrets_are_random_passwords_kept_by_name(own_app):
    password = own_app.named("app-secrets-DJANGO_SECRET_KEY")
    assert password.type == "random:index/randomPassword:RandomPassword"
    assert password.inputs["length"] == 64 and not password.inputs.get("keepers")   # nothing replaces it


def test_the_backend_environment_is_one_secret_with_webstacks_variables_first(own_app):
    backend = only(own_app, "backend")
    assert is_secret(backend.secret_inputs["envs"])
    names = [e.split("=", 1)[0] for e in backend.inputs["envs"]]
    assert names[:4] == ["PORT", "PGHOST", "PGDATABASE", "PGUSER"]
    assert {"MODE", "API_TOKEN", "DJANGO_SECRET_KEY"} <= set(names)


def test_the_release_command_runs_before_the_backends_with_the_secrets_in_a_secret_script(own_app):
    run = own_app.named(next(r.name for r in own_app.resources
                             if r.name.startswith("release-command-") and r.custom))
    backend = only(own_app, "backend")
    assert run.urn in backend.dependencies
    assert own_app.named("database-postgres").urn in run.dependencies
    assert is_secret(run.secret_inputs["create"]) and not run.inputs.get("stdin")
    script = run.inputs["create"]
    assert SECRET not in script and f"API_TOKEN={base64.b64encode(SECRET.encode()).decode()}" in script
    assert "exec sh -c" in script.split("<<'WEBSTACK_APP_ENV'")[0]   # replaced at once: no value in argv
    for flag in ("--user 1001:1001", "--group-add 1500", "--read-only", "--cap-drop ALL",
                 "--mount type=volume,src=webstack-dev-pgsocket,dst=/var/run/postgresql",
                 "--mount type=volume,src=webstack-dev-vol-media,dst=/app/media",
                 "network connect webstack-dev-app", "network connect webstack-dev-egress", "' node migrate.js"):
        assert flag.replace("'", "") in script.replace("'", ""), flag


def test_app_volumes_are_protected_retained_owned_by_the_app_and_listed(own_app):
    volume = own_app.named("app-volumes-media")
    assert volume.inputs["name"] == "webstack-dev-vol-media" and volume.protect and volume.retain_on_delete
    owner = own_app.named("app-volumes-media-owner")
    assert "chown 1001:1500 /volume && chmod 2750 /volume" in owner.inputs["create"]
    backend = only(own_app, "backend")
    assert {"type": "volume", "source": "webstack-dev-vol-media", "target": "/app/media"} in backend.inputs["mounts"]
    assert owner.urn in backend.dependencies
    assert own_app.outputs["appVolumes"] == ["webstack-dev-vol-media"]


def test_egress_is_the_backends_alone(own_app):
    assert only(own_app, "backend").inputs["networksAdvanced"][-1]["name"] == "webstack-dev-egress"
    assert own_app.named("networks-egress").inputs["internal"] is False
    assert [n["name"] for n in only(own_app, "database").inputs["networksAdvanced"]] == ["webstack-dev-data"]


def test_a_backend_only_app_has_no_web_container_and_the_edge_routes_the_root_to_it(own_app):
    assert "web" not in own_app.containers()
    assert own_app.outputs["containers"]["web"] is None
    site_conf = switch_bundle(own_app)["site.conf"]
    assert "webstack_web" not in site_conf and "location / {" in site_conf


def test_the_reference_stack_declares_none_of_it(dev):
    assert not [r for r in dev.resources if r.name.startswith(("release-command", "app-volumes-", "app-secrets-"))
                and r.custom]
    assert "networks-egress" not in {r.name for r in dev.resources}


def test_over_ssh_the_release_command_and_the_volume_owner_run_on_the_host(prod_tls):
    from tests.unit.conftest import prod_secrets

    run = run_program("prod", secret_overrides={**prod_secrets(prod_tls), **GENERATION_KEY, "webstack:backend": OWN_APP})
    command = next(r for r in run.of_type("command:remote:Command") if r.name.startswith("release-command-"))
    assert is_secret(command.secret_inputs["create"]) and command.inputs["create"].startswith("sh -c ")
    assert SECRET not in command.inputs["create"]
    assert {"app-volumes-media-owner"} <= {r.name for r in run.of_type("command:remote:Command")}
    assert command.urn in only(run, "backend").dependencies



def test_the_release_command_hands_every_value_to_docker_unchanged(tmp_path):
    """The script's own decoding, run by sh with a stand-in `docker` that records what `create -e NAME` passes."""
    import json
    import subprocess
    import sys

    from components.release_command import env_lines

    values = {"PADDED": "xy", "PATH": "/nowhere", "LINES": "multi\nline = with ==\n\n", "QUOTES": "a'b\"c $HOME"}
    body = rendering.render("host/release-command.sh.j2", generation="g", command=["migrate"], container="c",
                            image="img", networks=["net"], mounts=[], user="1001:1001", group="1500", memory_mb=64,
                            nproc=64, pids=64, stack="s", release="r", log_lines=5, timeout_seconds=30, cpus=1)
    script = rendering.render("host/release-command-env.sh.j2", body=body, env_lines=env_lines(values))
    record = tmp_path / "passed.json"
    recorder = ("import json, os, sys; names = [a for p, a in zip(sys.argv, sys.argv[1:]) if p == '-e']; "
                f"open({str(record)!r}, 'w').write(json.dumps({{n: os.environ[n] for n in names}}))")
    fake = tmp_path / "docker"
    # `create` records the variables it was asked to pass; `wait` reports exit 0; the rest succeed quietly.
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = create ] && exec {sys.executable} -c \"{recorder}\" \"$@\"\n"
                    "[ \"$1\" = wait ] && echo 0\nexit 0\n")
    fake.chmod(0o755)
    run = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert json.loads(record.read_text()) == values
    assert "succeeded" in run.stdout


# --- a backend-only app builds and pins no web image -------------------------------------------------------------

def test_a_backend_only_app_builds_no_web_image(own_app):
    images = {r.name for r in own_app.of_type("docker:index/remoteImage:RemoteImage")}
    assert "images-backend" in images and "images-web" not in images
    assert "images-web-guard" not in {r.name for r in own_app.resources}
    assert not own_app.containers().get("web")


def test_a_backend_only_app_with_no_frontend_directory_deploys():
    run = run_program("dev", {"webstack:frontend": {"enabled": False, "context": "no/such/dir"}})
    assert not [r for r in run.of_type("docker:index/remoteImage:RemoteImage")
                if "no/such/dir" in str(r.inputs.get("build", {}).get("context"))]


def test_a_backend_only_rollback_pins_and_checks_the_backend_image_alone():
    backend_id = "sha256:" + "a" * 64
    run = run_program("dev", {"webstack:frontend": {"enabled": False},
                              "webstack:images": {"pinned": {"release": "dev-1", "backend": backend_id}}})
    assert {c.inputs["image"] for c in run.containers()["backend"]} == {backend_id}
    check = run.named("images-pinned").inputs["create"]
    assert backend_id in check and "None" not in check


def test_a_pinned_release_with_a_frontend_needs_its_web_image():
    found = problems({"images": {"pinned": {"release": "v1", "backend": "sha256:" + "a" * 64}}})
    assert "images.pinned.web" in found and "python -m ops rollback" in found["images.pinned.web"], found


@pytest.mark.parametrize("frontend, expected", [(None, True), ('{"enabled": true}', True),
                                                ('{"enabled": false}', False), ('{"enabled": "false"}', False),
                                                ('{"context": "web"}', True)])
def test_the_rollback_pins_a_web_image_only_where_the_version_ran_a_frontend(frontend, expected):
    from pulumi import automation as auto

    from ops import rollback
    config = {"webstack:release": auto.ConfigValue("v1")}
    if frontend is not None:
        config["webstack:frontend"] = auto.ConfigValue(frontend)
    assert rollback.frontend_of(config).enabled is expected


def test_finding_3_release_command_arguments_reach_the_container_as_exactly_those_elements(tmp_path):
    """Issue 19, finding 3: `$(...)`, backticks, quotes and newlines in a release command's argument ran on the
    machine running the script (they were pasted into comments and double-quoted messages). Run by sh with a
    stand-in `docker`: nothing runs, and `create` gets each element unchanged, on success and on failure."""
    import json
    import subprocess
    import sys

    canary = tmp_path / "pwned"
    hostile = ["migrate", f"$(touch {canary})", f"`touch {canary}`", "a'b\"c", f"x\ntouch {canary}\n", "--"]
    record = tmp_path / "argv.json"
    recorder = f"import json, sys; open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))"
    for exit_code in ("0", "3"):
        body = rendering.render("host/release-command.sh.j2", generation="g", command=hostile, container="c",
                                image="img", networks=["net"], mounts=[], user="1001:1001", group="1500",
                                memory_mb=64, nproc=64, pids=64, stack="s", release="r", log_lines=5, timeout_seconds=30, cpus=1)
        fake = tmp_path / "docker"
        fake.write_text(f"#!/bin/sh\n[ \"$1\" = create ] && exec {sys.executable} -c \"{recorder}\" \"$@\"\n"
                        f"[ \"$1\" = wait ] && echo {exit_code}\nexit 0\n")
        fake.chmod(0o755)
        run = subprocess.run(["/bin/sh", "-c", body], capture_output=True, text=True, timeout=30, input="",
                             env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
        assert not canary.exists(), run.stderr
        argv = json.loads(record.read_text())
        assert argv[argv.index("img") + 1:] == hostile
        assert (run.returncode == 0) is (exit_code == "0"), run.stderr
        assert "touch" in (run.stdout + run.stderr)   # the message shows the command as text


# --- issue 19, finding 10: the generation digest reveals no secret ---------------------------------------------

def test_finding_10_a_container_name_does_not_reveal_a_short_secret_env_value():
    """A 4-digit value in a secret `backend.env` came back from the (public) container name by trying all 10,000
    values against the plain digest. Keyed with generationKey, no guess reproduces the name."""
    from components.backend import generation
    settings = load({"backend": {"env": {"PIN": "4821"}}}, {"backend"})
    name = generation(settings)
    guesses = {generation(load({"backend": {"env": {"PIN": f"{pin:04d}"}}}))
               for pin in range(10_000)}
    assert name not in guesses
    # The same key and settings give the same name (a no-change `up` changes nothing); another key does not.
    assert generation(load({"backend": {"env": {"PIN": "4821"}}}, {"backend"})) == name
    other = load({"backend": {"env": {"PIN": "4821"}}, "generationKey": "o" * 64}, {"backend", "generationKey"})
    assert generation(other) != name


def test_finding_10_a_secret_backend_without_a_generation_key_is_refused_with_the_command_that_sets_one():
    with pytest.raises(ConfigError) as error:
        load_settings({"release": "v1", "backend": {"env": {"PIN": "4821"}}}, {"backend"}, "test", PROJECT_DIR)
    found = dict(error.value.problems)
    assert "pulumi config set --secret webstack:generationKey" in found["generationKey"]
    assert "4821" not in str(found)


def test_finding_10_a_generation_key_in_plain_text_is_refused():
    found = problems({"generationKey": "k" * 64})
    assert "plain text" in found["generationKey"] and "k" * 64 not in str(found)


def test_finding_9_the_rollback_puts_secrets_back_on_stdin_never_in_an_argv(tmp_path):
    """Issue 19, finding 9: `ops rollback` passed each decrypted secret on a `pulumi config set` command line
    (the Automation API's set_config). Write a version's secrets into an empty stack file through a stand-in
    `pulumi` that records its argv and stdin: every value arrives whole (newlines included) on stdin, and in no
    argv; each field of a secret object is a secret in the file."""
    import yaml

    from ops import config_diff
    from ops.config_diff import Value
    from ops.pulumi_cli import Cli, Encrypter
    from tests.fake_pulumi import calls, decrypted, fake_pulumi

    key_text = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"
    version = {"webstack:release": Value("v1", False), "webstack:generationKey": Value("g" * 64, True),
               "webstack:backend": Value({"replicas": 2, "secrets": {"TOKEN": "t0k3n"},
                                          "releaseCommand": ["migrate", "--pin=4821"]}, True),
               "webstack:tls": Value({"privateKey": key_text}, True)}
    changes = config_diff.changes({}, version)
    cli = Cli(str(fake_pulumi(tmp_path)), "prod", str(tmp_path), {})
    text = config_diff.applied("", changes, {}, Encrypter(cli, "", tmp_path))
    argvs = " ".join(" ".join(argv) for argv, _ in calls(tmp_path))
    for secret in ("g" * 64, "t0k3n", "4821", "BEGIN KEY"):
        assert secret not in argvs and secret not in text
    # What `pulumi config set` keeps of stdin: all of it but one trailing newline.
    assert sorted(stdin.removesuffix("\n") for _, stdin in calls(tmp_path)) == \
        sorted(["g" * 64, "2", "t0k3n", "migrate", "--pin=4821", key_text])
    config = yaml.safe_load(text)["config"]
    assert config["webstack:backend"]["secrets"]["TOKEN"].keys() == {"secure"}
    assert {key: decrypted(value) for key, value in config.items()} == {
        "webstack:release": ("v1", False), "webstack:generationKey": ("g" * 64, True),
        "webstack:backend": ({"replicas": "2", "secrets": {"TOKEN": "t0k3n"},
                              "releaseCommand": ["migrate", "--pin=4821"]}, True),
        "webstack:tls": ({"privateKey": key_text}, True)}


def test_a_release_command_that_never_exits_fails_at_its_timeout_with_the_argv_that_really_ran(tmp_path):
    """Issue 20: a release command that never exits held `pulumi up` until the container was killed by hand.
    A stand-in `docker` whose `wait` never returns: the script gives up after releaseTimeoutSeconds, says so with
    the entrypoint and arguments the container ran, and removes the container."""
    import subprocess
    import time

    log = tmp_path / "docker.log"
    fake = tmp_path / "docker"
    fake.write_text("#!/bin/sh\n"
                    f"echo \"$@\" >> {log}\n"
                    "case \"$1\" in\n"
                    "  wait) exec sleep 3600 ;;\n"
                    "  inspect) echo '\"/server\" [\"/server\",\"migrate\"]' ;;\n"
                    "  logs) echo 'listening on :8000' ;;\n"
                    "esac\nexit 0\n")
    fake.chmod(0o755)
    body = rendering.render("host/release-command.sh.j2", generation="g", command=["/server", "migrate"],
                            container="c", image="img", networks=["net"], mounts=[], user="1001:1001", group="1500",
                            memory_mb=64, nproc=64, pids=64, stack="s", release="r", log_lines=5, timeout_seconds=2, cpus=1)
    started = time.monotonic()
    run = subprocess.run(["/bin/sh", "-c", body], capture_output=True, text=True, timeout=60, input="",
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert run.returncode == 1 and time.monotonic() - started < 20
    assert "did not finish within 2 s (backend.releaseTimeoutSeconds)" in run.stderr, run.stderr
    assert 'the container ran: "/server" ["/server","migrate"]' in run.stderr
    assert "listening on :8000" in run.stderr
    assert "rm -f c" in log.read_text()   # the container does not outlive the failed update


def test_the_release_timeout_is_validated_and_shapes_no_generation():
    from components.backend import generation
    assert "backend.releaseTimeoutSeconds" in problems({"backend": {"releaseTimeoutSeconds": 0}})
    assert generation(load({"backend": {"releaseTimeoutSeconds": 1800}})) == generation(load({}))
