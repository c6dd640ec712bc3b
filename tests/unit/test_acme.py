"""tls.mode acme under Pulumi's mocks and in the rendered edge site: the ACME container is hardened like every
other, shares only its volume with the edge (read-only there), asks for the first certificate after the edge
switch, and the site serves HTTP-01 challenges from that volume while everything else on port 80 redirects."""

from __future__ import annotations

import json

import pytest

from components import contract, rendering
from components.settings_loader import load_settings
from tests.program import run_program
from tests.stack_config import PROJECT_DIR
from tests.unit.test_program_graph import switch_bundle

ACME = {"mode": "acme", "acmeEmail": "ops@example.com", "acmeServer": "https://host.docker.internal:14000/dir"}


@pytest.fixture(scope="module")
def run():
    return run_program("dev", overrides={"webstack:tls": ACME, "webstack:domain": "app.example.com"})


def test_the_acme_container_is_hardened_and_runs_as_its_own_user_in_the_nginx_group(run):
    (acme,) = run.containers()["acme"]
    c = acme.inputs
    assert c["user"] == f"{contract.ACME_UID}:{contract.NGINX_UID}"
    assert c["readOnly"] is True and c["capabilities"]["drops"] == ["ALL"]
    assert "no-new-privileges:true" in c["securityOpts"] and c["memory"] > 0 and c["cpuQuota"] > 0
    assert c["healthcheck"]["tests"] == ["CMD", contract.ACME_COMMAND, "health"]
    env = dict(item.split("=", 1) for item in c["envs"])
    assert env == {"ACME_DOMAIN": "app.example.com", "ACME_EMAIL": "ops@example.com",
                   "ACME_SERVER": "https://host.docker.internal:14000/dir"}
    # Only a server named host.docker.internal gets the host's gateway address.
    assert c["hosts"] == [{"host": "host.docker.internal", "ip": "host-gateway"}]


def test_a_public_acme_server_gets_no_host_alias():
    run = run_program("dev", overrides={"webstack:tls": {"mode": "acme", "acmeEmail": "ops@example.com"}})
    (acme,) = run.containers()["acme"]
    assert not acme.inputs.get("hosts")
    assert "ACME_SERVER=https://acme-v02.api.letsencrypt.org/directory" in acme.inputs["envs"]


def test_the_edge_mounts_the_acme_volume_read_only_and_starts_after_the_acme_container(run):
    (edge,) = run.containers()["edge"]
    (acme,) = run.containers()["acme"]
    mounts = {m["target"]: m for m in edge.inputs["mounts"]}
    assert mounts[contract.ACME_DIR]["readOnly"] is True
    assert mounts[contract.ACME_DIR]["source"] == {m["target"]: m for m in acme.inputs["mounts"]}[contract.ACME_DIR]["source"]
    assert acme.urn in edge.dependencies


def test_the_first_certificate_is_requested_after_the_edge_switch_and_then_loaded_by_the_edge(run):
    issue = run.named("acme-issue")
    assert run.named("edge-switch").urn in issue.dependencies
    script = issue.inputs["create"]
    assert f'docker exec "$acme" {contract.ACME_COMMAND} issue' in script
    assert f'docker exec "$edge" {contract.EDGE_CERTS_COMMAND} reload' in script
    assert "app.example.com" in script and "self-signed" in script   # the failure message


def test_acme_stacks_send_no_certificate_to_the_edge_and_point_nginx_at_the_published_pair(run):
    bundle = switch_bundle(run)
    assert set(bundle) == {"site.conf", "canary.site"}
    assert f"ssl_certificate {contract.ACME_LIVE_DIR}/fullchain.pem;" in bundle["site.conf"]
    assert run.named("acme-data").type == "docker:index/volume:Volume"


def test_other_modes_have_no_acme_container(dev):
    assert "acme" not in dev.containers()


def site(tls: dict, domain: str = "app.example.com") -> str:
    settings = load_settings({"release": "r1", "domain": domain, "tls": json.dumps(tls)}, set(), "s",
                             PROJECT_DIR)
    return rendering.render_edge_site(settings, ["b-1"], ["w-1"])


def test_port_80_serves_challenges_from_the_webroot_and_redirects_everything_else_to_the_domain():
    http_server = site(ACME).split("listen 8080 default_server;")[1].split("\nserver {")[0]
    challenge = http_server.split("location ^~ /.well-known/acme-challenge/ {")[1].split("}")[0]
    assert f"root {contract.ACME_WEBROOT};" in challenge and "try_files $uri =404;" in challenge
    assert "return 308 https://app.example.com:8443$request_uri;" in http_server


def test_only_acme_stacks_serve_the_challenge_path():
    assert "acme-challenge" not in site({"mode": "self-signed"})
