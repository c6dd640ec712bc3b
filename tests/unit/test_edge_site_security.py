"""The rendered edge site answers only `domain` and rate-limits writes (review findings of issue 12)."""

from __future__ import annotations

import json
import re

import pytest

from components import rendering
from components.settings_loader import load_settings
from tests.stack_config import PROJECT_DIR


def site(tls: str = "off", domain: str = "app.example.com") -> str:
    settings = load_settings({"release": "r1", "domain": domain, "tls": json.dumps({"mode": tls})}, set(), "s",
                             PROJECT_DIR)
    return rendering.render_edge_site(settings, ["b-1"], ["w-1"])


def servers(text: str) -> list[str]:
    """The text of each top-level `server { ... }` block."""
    blocks, depth, current = [], 0, None
    for line in text.splitlines():
        if current is None and line.startswith("server {"):
            current, depth = [], 0
        if current is not None:
            current.append(line)
            depth += line.count("{") - line.count("}")
            if depth == 0:
                blocks.append("\n".join(current))
                current = None
    return blocks


def by_name(text: str) -> dict[str, str]:
    return {re.search(r"server_name (\S+);", block).group(1): block for block in servers(text)}


@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_the_application_is_served_only_under_the_domain(tls):
    blocks = by_name(site(tls))
    assert set(blocks) >= {"app.example.com", "_"}
    routed = [re.search(r"server_name (\S+);", b).group(1) for b in servers(site(tls)) if "proxy_pass" in b]
    assert routed == ["app.example.com"]


def test_https_for_any_other_name_is_421_and_plain_http_without_tls_is_closed_444():
    tls_blocks = servers(site("self-signed"))
    catch_all = next(b for b in tls_blocks if "server_name _;" in b)
    assert "listen 8443 ssl http2 default_server reuseport;" in catch_all and "return 421" in catch_all
    assert "listen unix:/tmp/webstack-edge-https.sock ssl http2 default_server;" in catch_all
    named_https = next(b for b in tls_blocks if "server_name app.example.com;" in b and "listen 8443" in b)
    assert "default_server" not in named_https
    plain = by_name(site("off"))
    assert "listen 8080 default_server reuseport;" in plain["_"] and "return 444;" in plain["_"]
    assert "default_server" not in plain["app.example.com"]


@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_the_edge_health_check_reaches_the_catch_all_server_by_address(tls):
    for block in servers(site(tls)):
        if "server_name _;" in block or "listen 8080 default_server" in block:
            assert "location = /__edge/health" in block


@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_every_public_listener_shares_its_port_and_has_a_socket_of_this_edge_only(tls):
    """reuseport on each published port (once per port: nginx takes it on one listen), so that an old and a new
    edge serve side by side; and each public server also on the edge's own socket, where its checks go."""
    text = site(tls)
    ports = ["8080", "8443"] if tls != "off" else ["8080"]
    for port in ports:
        assert len(re.findall(rf"listen {port}\b[^;]*reuseport;", text)) == 1, port
    for block in servers(text):
        tcp = re.findall(r"listen (\d+)\b", block)
        sockets = re.findall(r"listen unix:(\S+?)[ ;]", block)
        expected = {"8080": "/tmp/webstack-edge-http.sock", "8443": "/tmp/webstack-edge-https.sock"}
        assert sockets == [expected[p] for p in tcp], block[:80]


def test_plain_http_redirects_to_the_domain_whatever_the_host_asked():
    http = next(b for b in servers(site("self-signed")) if "listen 8080 default_server reuseport;" in b)
    assert "return 308 https://app.example.com:8443$request_uri;" in http and "$host" not in http


def test_writes_are_rate_limited_by_client_and_reads_are_not():
    text = site("self-signed")
    mapping = text.split("map $request_method $webstack_write_client {")[1].split("}")[0]
    keys = dict(line.strip().rstrip(";").split(None, 1) for line in mapping.strip().splitlines())
    assert keys == {"default": '""', "POST": "$binary_remote_addr", "PUT": "$binary_remote_addr",
                    "PATCH": "$binary_remote_addr", "DELETE": "$binary_remote_addr"}
    # The defaults (edge.writeRatePerSecond, edge.writeBurst) are the limit the edge always had.
    assert "limit_req_zone $webstack_write_client zone=webstack_writes:10m rate=10r/s;" in text
    app = next(b for b in servers(text) if "proxy_pass" in b)
    assert "limit_req zone=webstack_writes burst=20 nodelay;" in app
    assert "limit_req_status 429;" in app


def test_the_429_page_carries_the_security_headers():
    app = next(b for b in servers(site("self-signed")) if "proxy_pass" in b)
    assert "error_page 429 /_webstack/errors/429;" in app
    page = app.split("location /_webstack/errors/ {")[1].split("}")[0]
    for name in rendering.security_headers(True):
        assert f"add_header {name} " in page
    assert "internal;" in page and "return 200 $webstack_error_page;" in page   # the status stays the error's


def proxied_headers(text: str, name: str) -> set[str]:
    return set(re.findall(rf"proxy_set_header {name} (.+);", text))


@pytest.mark.parametrize("tls, https_port, public_host", [
    ("off", 443, "app.example.com:8080"),
    ("self-signed", 8443, "app.example.com:8443"),
    ("self-signed", 443, "app.example.com"),
])
def test_finding_8_the_app_gets_the_configured_host_never_the_clients_host_header(tls, https_port, public_host):
    settings = load_settings({"release": "r1", "domain": "app.example.com", "httpsPort": str(https_port),
                              "tls": json.dumps({"mode": tls})}, set(), "s", PROJECT_DIR)
    for text in (rendering.render_edge_site(settings, ["b-1"], ["w-1"]),
                 rendering.render_edge_site(settings, ["b-1"], ["w-1"], canary=True)):
        assert "$http_host" not in text   # `app.example.com:@evil` reached the app as it was sent
        assert proxied_headers(text, "Host") == {f'"{public_host}"'}
        assert proxied_headers(text, "X-Forwarded-Host") == {f'"{public_host}"'}


def test_finding_8_a_backend_only_app_gets_the_configured_host_too():
    settings = load_settings({"release": "r1", "domain": "app.example.com", "frontend": json.dumps({"enabled": False})},
                             set(), "s", PROJECT_DIR)
    text = rendering.render_edge_site(settings, ["b-1"], [])
    assert proxied_headers(text, "Host") == proxied_headers(text, "X-Forwarded-Host") == {'"app.example.com:8080"'}


@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_finding_12_the_api_redirect_names_a_path_and_no_internal_port(tls):
    app = next(b for b in servers(site(tls)) if "proxy_pass" in b)
    assert "absolute_redirect off;" in app       # nginx's redirects would say https://app.example.com:8443/api/
    redirect = app.split("location = /api {")[1].split("}")[0]
    assert "return 308 /api/$is_args$args;" in redirect


def test_finding_12_the_frontends_directory_redirects_name_a_path_and_no_internal_port():
    conf = (PROJECT_DIR / "containers" / "web" / "nginx.conf").read_text()
    server = conf.split("server {")[1]
    assert "absolute_redirect off;" in server


@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_every_503_tells_the_client_when_to_retry_and_no_other_answer_does(tls):
    text = site(tls)
    mapping = text.split("map $status $webstack_retry_after {")[1].split("}")[0]
    assert dict(line.strip().rstrip(";").split(None, 1) for line in mapping.strip().splitlines()) == \
        {"default": '""', "503": f'"{rendering.RETRY_AFTER_SECONDS}"'}
    # Every level that adds headers adds it (add_header is inherited only by levels with none of their own).
    assert text.count("add_header Retry-After $webstack_retry_after always;") == \
        text.count('add_header X-Content-Type-Options "nosniff" always;')
