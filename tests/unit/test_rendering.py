"""Templates render to exactly the intended files; a missing variable is an error, not an empty string."""

from __future__ import annotations

import base64
import subprocess

import jinja2
import pytest

from components import contract, rendering
from components.settings import Database
from components.settings_loader import load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import certificate

CERT, KEY = certificate("app.example.com")


def settings(**values):
    return load_settings({"release": "r7", **values}, {"tls"}, "dev", PROJECT_DIR)


def directives(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_pg_hba_allows_peer_on_the_socket_and_rejects_every_tcp_login():
    assert directives(rendering.render_pg_hba(Database(name="shop", user="shopper"))) == [
        "local   all             postgres                  peer",
        "local   shop   shopper             peer map=webstack",
        "local   all             shopper             peer map=webstack-restore",
        "host    all             all             all       reject",
    ]


def test_pg_ident_maps_the_backend_os_user_to_the_role():
    assert directives(rendering.render_pg_ident(Database(user="shopper")))[0] == "webstack    backend       shopper"


def test_finding_2_the_backup_job_restores_as_the_stacks_role_not_as_a_superuser():
    """Issue 19: uid 999 (the backup job) may log in as the stack's role, so that the app role's material in a
    dump is restored and counted with that role's rights; the backend's map still reaches only its database."""
    assert directives(rendering.render_pg_ident(Database(user="shopper"))) == [
        "webstack    backend       shopper", "webstack-restore    postgres    shopper"]


def test_postgresql_conf_has_no_tcp_listener_and_a_group_only_socket():
    conf = dict(line.split(" = ", 1) for line in directives(rendering.render_postgresql_conf(Database())))
    assert conf["listen_addresses"] == "''"
    assert conf["unix_socket_directories"] == "'/var/run/postgresql'"
    assert (conf["unix_socket_group"], conf["unix_socket_permissions"]) == ("'dbsock'", "0770")
    assert conf["hba_file"] == "'/etc/postgresql/webstack/pg_hba.conf'"


def test_database_build_args_carry_the_rendered_files():
    args = rendering.database_build_args(Database(user="shopper"))
    assert base64.b64decode(args["PG_IDENT_B64"]).decode() == rendering.render_pg_ident(Database(user="shopper"))
    assert set(args) == {"PG_CONF_B64", "PG_HBA_B64", "PG_IDENT_B64"}


def test_a_missing_template_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        rendering.render("db/pg_hba.conf.j2", db_name="x")


def site(**values) -> str:
    return rendering.render_edge_site(settings(**values), ["b-1", "b-2"], ["w-1"])


def header_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.strip().startswith("add_header")}


def test_plain_http_site_has_no_tls_no_hsts_and_no_redirect():
    text = site()
    assert "ssl_certificate" not in text and "Strict-Transport-Security" not in text and "return 308 https" not in text
    assert "upgrade-insecure-requests" not in text


def test_tls_site_redirects_port_80_and_sends_hsts():
    text = site(tls='{"mode": "self-signed"}')
    assert "return 308 https://localhost:8443$request_uri;" in text
    assert 'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;' in text
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text and "listen 8443 ssl http2 default_server reuseport;" in text


def test_the_redirect_omits_the_default_https_port():
    assert "return 308 https://localhost$request_uri;" in site(tls='{"mode": "self-signed"}', httpsPort="443", httpPort="80")


def test_every_location_that_adds_headers_repeats_the_whole_set():
    text = site(tls='{"mode": "self-signed"}')
    expected = {f'add_header {k} "{v}" always;' for k, v in rendering.security_headers(True).items()}
    https_server = text.split("listen 8443")[1]
    for block in https_server.split("location ")[1:]:
        if "add_header" in block:
            assert expected <= header_lines(block.split("}")[0]), block[:40]
    assert expected <= header_lines(https_server.split("location ")[0])


def test_api_responses_are_not_cached():
    api = site().split("location /api/ {")[1].split("}")[0]
    assert 'add_header Cache-Control "no-store, max-age=0" always;' in api


def test_upstreams_list_every_release_container():
    text = site()
    assert "server b-1:8000 max_fails=0;" in text and "server b-2:8000 max_fails=0;" in text
    assert "server w-1:8080 max_fails=0;" in text


def test_the_canary_routes_the_same_paths_to_the_release_on_a_socket_of_the_edge_only():
    settings_ = settings(tls='{"mode": "self-signed"}')
    live = rendering.render_edge_site(settings_, ["b-1"], ["w-1"])
    canary = rendering.render_edge_site(settings_, ["b-1"], ["w-1"], canary=True)
    listens = [line.strip() for line in canary.splitlines() if line.strip().startswith("listen")]
    assert listens == [f"listen unix:{contract.EDGE_CANARY_SOCKET} ssl;"]
    assert "ssl_certificate /etc/webstack/edge/stage/tls/fullchain.pem;" in canary
    # Its own upstream names (both sites are loaded together) and the live site's routes, location by location.
    assert "upstream webstack_canary_backend {" in canary and "upstream webstack_backend {" not in canary
    def routes(text: str) -> list[str]:   # of the server that answers the domain
        return [line.strip() for line in text.split("server_name localhost;")[-1].splitlines()
                if line.strip().startswith(("location", "return", "error_page", "limit_req", "proxy_pass"))]
    assert routes(canary) == [line.replace("webstack_", "webstack_canary_") for line in routes(live)]
    assert "proxy_pass http://webstack_canary_backend/;" in routes(canary)


def test_edge_site_needs_at_least_one_server():
    with pytest.raises(ValueError):
        rendering.render_edge_site(settings(), [], ["w"])


def test_edge_bundle_is_deterministic():
    files = {"site.conf": "x", "tls/privkey.pem": "k"}
    assert rendering.edge_bundle(files) == rendering.edge_bundle(dict(reversed(list(files.items()))))


def test_known_hosts_pins_exactly_one_key_with_the_port_form():
    assert rendering.render_known_hosts("h", 22, "ssh-ed25519 AAAA") == "h ssh-ed25519 AAAA\n"
    assert rendering.render_known_hosts("h", 2222, "ssh-ed25519 AAAA") == "[h]:2222 ssh-ed25519 AAAA\n"


@pytest.mark.parametrize("template", ["host/bootstrap.sh.j2", "host/preflight.sh.j2"])
def test_host_scripts_are_valid_posix_shell(template, tmp_path):
    if template.endswith("bootstrap.sh.j2"):
        text = rendering.render_bootstrap(settings(), "20.10")
        assert "deploy_root=/srv/webstack/dev\n" in text and "min_docker=20.10\n" in text
    else:
        text = rendering.render(template)
    script = tmp_path / "script.sh"
    script.write_text(text)
    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
