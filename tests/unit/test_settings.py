"""Settings: defaults, good stacks, and a table of bad input that must end in one ConfigError naming the key."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from components.settings_loader import ConfigError, load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import HOST_KEY, certificate

GOOD_CERT, GOOD_KEY = certificate("app.example.com")
OTHER_CERT, _ = certificate("app.example.com", key=ec.generate_private_key(ec.SECP256R1()))
EXPIRED_CERT, EXPIRED_KEY = certificate("app.example.com", days=-1)
WRONG_DOMAIN_CERT, WRONG_DOMAIN_KEY = certificate("other.example.org")


def load(values: dict, secrets: set[str] = frozenset()):
    return load_settings({"release": "v1", **values}, set(secrets), "test", PROJECT_DIR)


def provided(cert: str, key: str) -> dict:
    return {"domain": "app.example.com", "tls": {"mode": "provided", "certificate": cert, "privateKey": key}}


def test_defaults_make_a_local_plain_http_stack():
    settings = load({})
    assert (settings.target.kind, settings.url, settings.publishAddress) == ("local", "http://localhost:8080", "127.0.0.1")


def test_a_provided_certificate_for_the_domain_is_accepted():
    settings = load(provided(GOOD_CERT, GOOD_KEY), {"tls"})
    assert settings.url == "https://app.example.com:8443"


def test_a_wildcard_certificate_covers_one_label():
    cert, key = certificate("*.example.com")
    assert load({**provided(cert, key)}, {"tls"}).tls.mode == "provided"
    with pytest.raises(ConfigError, match="does not cover"):
        load({**provided(cert, key), "domain": "a.b.example.com"}, {"tls"})


def test_acme_mode_takes_an_email_a_server_and_a_private_servers_ca():
    ca, _ = certificate("ca.example")
    settings = load({"domain": "app.example.com", "tls": {"mode": "acme", "acmeEmail": "ops@example.com",
                                                           "acmeServer": "https://ca.example:14000/dir",
                                                           "acmeServerCa": ca}})
    assert (settings.tls.mode, settings.url) == ("acme", "https://app.example.com:8443")
    assert load({"tls": {"mode": "acme", "acmeEmail": "ops@example.com"}}).tls.acmeServer == \
        "https://acme-v02.api.letsencrypt.org/directory"


def test_secret_values_never_appear_in_the_error():
    with pytest.raises(ConfigError) as error:
        load({"tls": {"mode": "off", "certificate": "SUPERSECRETVALUE", "privateKey": "SUPERSECRETVALUE"}}, {"tls"})
    assert "SUPERSECRETVALUE" not in str(error.value)


def test_config_error_is_a_pulumi_run_error_so_no_traceback_is_printed():
    import pulumi
    assert issubclass(ConfigError, pulumi.RunError)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as error:
        load({"httpPort": "0", "domain": "bad domain", "backend": {"replicas": 0}})
    assert {p for p, _ in error.value.problems} == {"httpPort", "domain", "backend.replicas"}


BAD_INPUT = [
    # (case, values, secret keys, key path named, words in the message)
    ("typo at top level", {"httpport": "80"}, (), "webstack:httpport", "did you mean 'httpPort'"),
    ("typo inside an object", {"backend": {"replica": 2}}, (), "webstack:backend.replica", "backend.replicas"),
    ("port not a number", {"httpPort": "eighty"}, (), "webstack:httpPort", "must be an integer"),
    ("port out of range", {"httpsPort": "70000"}, (), "webstack:httpsPort", "65535"),
    ("ports clash", {"httpPort": "8443"}, (), "webstack:httpsPort", "must differ"),
    ("object given as a string", {"target": "ssh"}, (), "webstack:target", "must be an object"),
    ("object not valid JSON", {"database": "{name: x"}, (), "webstack:database", "not valid JSON"),
    ("wrong type in object", {"backend": {"replicas": "many"}}, (), "webstack:backend.replicas", "integer"),
    ("invalid hostname", {"domain": "exa mple.com"}, (), "webstack:domain", "not a valid hostname"),
    ("invalid ssh host", {"target": {"kind": "ssh", "host": "-bad-", "hostKey": HOST_KEY}}, (), "webstack:target.host", "hostname"),
    ("ssh without host", {"target": {"kind": "ssh", "hostKey": HOST_KEY}}, (), "webstack:target.host", "required"),
    ("ssh without host key", {"target": {"kind": "ssh", "host": "10.0.0.5"}}, (), "webstack:target.hostKey", "required"),
    ("host key placeholder", {"target": {"kind": "ssh", "host": "h", "hostKey": "REPLACE-ME"}}, (), "webstack:target.hostKey", "ssh-keyscan"),
    ("unknown target kind", {"target": {"kind": "kubernetes"}}, (), "webstack:target.kind", "local"),
    ("root deploy user", {"target": {"user": "root"}}, (), "webstack:target.user", "refused"),
    ("bad docker host", {"target": {"dockerHost": "/var/run/docker.sock"}}, (), "webstack:target.dockerHost", "unix://"),
    ("unknown tls mode", {"tls": {"mode": "on"}}, (), "webstack:tls.mode", "self-signed"),
    ("provided without certificate", {"tls": {"mode": "provided", "privateKey": GOOD_KEY}}, {"tls"}, "webstack:tls.certificate", "required"),
    ("provided without key", {"tls": {"mode": "provided", "certificate": GOOD_CERT}}, {"tls"}, "webstack:tls.privateKey", "required"),
    ("malformed certificate PEM", provided("-----BEGIN CERTIFICATE-----\nnope\n", GOOD_KEY), {"tls"}, "webstack:tls.certificate", "not a PEM certificate"),
    ("malformed key PEM", provided(GOOD_CERT, "not a key"), {"tls"}, "webstack:tls.privateKey", "not an unencrypted PEM private key"),
    ("expired certificate", provided(EXPIRED_CERT, EXPIRED_KEY), {"tls"}, "webstack:tls.certificate", "expired"),
    ("key does not match", provided(OTHER_CERT, GOOD_KEY), {"tls"}, "webstack:tls.privateKey", "does not match"),
    ("certificate for another domain", provided(WRONG_DOMAIN_CERT, WRONG_DOMAIN_KEY), {"tls"}, "webstack:tls.certificate", "does not cover the domain 'app.example.com'"),
    ("key stored in plain text", provided(GOOD_CERT, GOOD_KEY), (), "webstack:tls.privateKey", "--secret"),
    ("acme without e-mail", {"tls": {"mode": "acme"}}, (), "webstack:tls.acmeEmail", "required when tls.mode is 'acme'"),
    ("acme e-mail with a newline", {"tls": {"mode": "acme", "acmeEmail": "ops@example.com\n"}}, (), "webstack:tls.acmeEmail", "not an e-mail"),
    ("acme server over http", {"tls": {"mode": "acme", "acmeEmail": "ops@example.com", "acmeServer": "http://ca.example/dir"}}, (), "webstack:tls.acmeServer", "https://"),
    ("acme server with shell text", {"tls": {"mode": "acme", "acmeEmail": "ops@example.com", "acmeServer": "https://ca.example/$(id)"}}, (), "webstack:tls.acmeServer", "staging"),
    ("acme server CA not a PEM", {"tls": {"mode": "acme", "acmeEmail": "ops@example.com", "acmeServerCa": "nope"}}, (), "webstack:tls.acmeServerCa", "not a PEM certificate"),
    ("replicas below one", {"backend": {"replicas": 0}}, (), "webstack:backend.replicas", "greater than or equal to 1"),
    ("privileged backend port", {"backend": {"port": 80}}, (), "webstack:backend.port", "1024"),
    ("health path without slash", {"backend": {"healthPath": "health"}}, (), "webstack:backend.healthPath", "starting with '/'"),
    ("bad env name", {"backend": {"env": {"1BAD": "x"}}}, (), "webstack:backend.env", "1BAD"),
    ("missing build context", {"backend": {"context": "containers/nope"}}, (), "webstack:backend.context", "does not exist"),
    ("missing dockerfile", {"frontend": {"dockerfile": "Nope.dockerfile"}}, (), "webstack:frontend.dockerfile", "not found"),
    ("database named postgres", {"database": {"user": "postgres"}}, (), "webstack:database.user", "other than 'postgres'"),
    ("release with a space", {"release": "v 1"}, (), "webstack:release", "image tag"),
    ("publish address not an IP", {"publishAddress": "everywhere"}, (), "webstack:publishAddress", "0.0.0.0"),
    ("base image with shell text", {"baseImage": "debian:bookworm-slim; rm -rf /"}, (), "webstack:baseImage", "pulumi config set webstack:baseImage debian:bookworm-slim"),
    ("no cpus for the backend", {"backend": {"cpus": 0}}, (), "webstack:backend.cpus", "greater than 0"),
    ("cpus for the database as text", {"database": {"cpus": "lots"}}, (), "webstack:database.cpus", "number"),
    ("base image with a command substitution", {"baseImage": "debian:$(id)"}, (), "webstack:baseImage", "not a Docker image reference"),
    ("base image with a newline", {"baseImage": "debian:bookworm-slim\n"}, (), "webstack:baseImage", "not a Docker image reference"),
    ("base image in capitals", {"baseImage": "Debian:bookworm-slim"}, (), "webstack:baseImage", "not a Docker image reference"),
    ("base image with a short digest", {"baseImage": "debian@sha256:abc"}, (), "webstack:baseImage", "not a Docker image reference"),
]


@pytest.mark.parametrize("case,values,secrets,path,words", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_refused_naming_the_key(case, values, secrets, path, words):
    raw = {"release": "v1", **values}
    if raw["release"] is None:
        del raw["release"]
    raw = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    with pytest.raises(ConfigError) as error:
        load_settings(raw, set(secrets), "test", PROJECT_DIR)
    message = str(error.value)
    assert f"{path}:" in message, message
    assert words in message, message
    assert "Fix:" in message, message


@pytest.mark.parametrize("base_image", ["debian:bookworm-slim; rm -rf /", "debian:bookworm-slim && curl x|sh",
                                        "debian:`id`", "-debian", "debian:bookworm slim", ""])
def test_finding_17_a_base_image_that_is_not_an_image_reference_is_refused_at_load(base_image):
    with pytest.raises(ConfigError) as error:
        load({"baseImage": base_image})
    assert [path for path, _ in error.value.problems] == ["baseImage"]
    assert "Fix: pulumi config set webstack:baseImage debian:bookworm-slim" in str(error.value)


@pytest.mark.parametrize("base_image", [
    "debian:bookworm-slim", "debian", "localhost/webstack-base", "registry.example.com:5000/team/base:1.2",
    "debian@sha256:" + "0" * 64, "registry.example.com/debian:bookworm-slim@sha256:" + "a" * 64,
])
def test_a_base_image_in_docker_reference_grammar_is_accepted(base_image):
    assert load({"baseImage": base_image}).baseImage == base_image


@pytest.mark.parametrize("days, words", [
    ("0", "0 is not a number of days from 1 to 90"), ("91", "91 is not a number of days from 1 to 90"),
    ("-7", "-7 is not a number of days from 1 to 90"), ("7.5", "must be an integer, got '7.5'"),
    ("weekly", "must be an integer, got 'weekly'"),
])
def test_finding_7_a_base_image_age_limit_outside_1_to_90_days_is_refused_naming_the_key_and_the_fix(days, words):
    with pytest.raises(ConfigError) as error:
        load({"baseImageMaxAgeDays": days})
    assert [path for path, _ in error.value.problems] == ["baseImageMaxAgeDays"]
    assert words in str(error.value)
    assert "Fix: pulumi config set webstack:baseImageMaxAgeDays 7" in str(error.value)


@pytest.mark.parametrize("days, expected", [(None, 7), ("1", 1), ("90", 90), ("14", 14)])
def test_the_base_image_age_limit_defaults_to_a_week(days, expected):
    assert load({} if days is None else {"baseImageMaxAgeDays": days}).baseImageMaxAgeDays == expected
