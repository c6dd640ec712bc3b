"""webstack:edge in the rendered site (issue 22): each setting's directives, and nothing of them by default."""

from __future__ import annotations

import json
import re

import pytest

from components import rendering
from components.settings_loader import load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.test_edge_site_security import servers

EVERYTHING = {"websocketPaths": ["/api/ws"], "streamingPaths": ["/api/events"], "trustedProxies": ["10.0.0.0/8"],
              "redirects": ["www.example.com"], "maxBodyMb": 25}


def settings(edge: dict | None = None, tls: str = "off", **values):
    raw = {"release": "r1", "domain": "example.com", "tls": {"mode": tls}, "edge": edge or {}, **values}
    return load_settings({k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}, set(), "s",
                         PROJECT_DIR)


def site(edge: dict | None = None, tls: str = "off", canary: bool = False, **values) -> str:
    loaded = settings(edge, tls, **values)
    return rendering.render_edge_site(loaded, ["b-1"], ["w-1"] if loaded.frontend.enabled else [], canary=canary)


def app_server(text: str) -> str:
    return next(block for block in servers(text) if "proxy_pass" in block)


def location(text: str, match: str) -> str:
    """The body of `location <match> {` (locations do not nest here)."""
    return text.split(f"    location {match} {{\n")[1].split("\n    }")[0]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


# --- the defaults ---------------------------------------------------------------------------------------------

def test_by_default_the_site_keeps_the_edges_limits_and_holds_nothing_open():
    text = site()
    api = location(text, "/api/")
    assert "client_max_body_size 1m;" in app_server(text)
    assert "proxy_read_timeout 60s;" in api and "proxy_send_timeout 60s;" in api
    assert 'proxy_set_header Connection "";' in api and "Upgrade" not in text and "proxy_buffering" not in text
    assert "real_ip" not in text and "set_real_ip_from" not in text
    assert re.findall(r"server_name ([^;]+);", text) == ["_", "example.com"]


# --- body size and timeouts -----------------------------------------------------------------------------------

@pytest.mark.parametrize("canary", [False, True])
def test_the_body_limit_is_the_setting_in_the_server_that_serves_the_app(canary):
    assert "client_max_body_size 25m;" in app_server(site({"maxBodyMb": 25}, canary=canary))


def test_the_backends_timeouts_are_the_settings():
    api = location(site({"readTimeoutSeconds": 300, "sendTimeoutSeconds": 90}), "/api/")
    assert "proxy_read_timeout 300s;" in api and "proxy_send_timeout 90s;" in api
    assert "proxy_connect_timeout 5s;" in api


# --- WebSocket and server-sent events -------------------------------------------------------------------------

def test_a_websocket_path_is_the_path_and_everything_below_it_with_the_upgrade_passed_on():
    text = site({"websocketPaths": ["/api/ws"], "streamTimeoutSeconds": 900})
    for match, uri in (("= /api/ws", "/ws"), ("/api/ws/", "/ws/")):   # stripPrefix: the backend sees /ws
        block = lines(location(text, match))
        assert f"proxy_pass http://webstack_backend{uri};" in block
        assert {"proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                "proxy_set_header Connection $webstack_connection_upgrade;",
                "proxy_read_timeout 900s;", "proxy_send_timeout 900s;"} <= set(block)
        assert 'proxy_set_header Connection "";' not in block and "proxy_buffering off;" not in block
    mapping = lines(text.split("map $http_upgrade $webstack_connection_upgrade {")[1].split("}")[0])
    assert mapping == ["default upgrade;", '"" "";']   # no handshake: keep-alive to the backend, as elsewhere
    assert 'proxy_set_header Connection "";' in location(text, "/api/")   # the rest of the API is unchanged


def test_a_streaming_path_is_not_buffered_and_may_stay_quiet_for_the_stream_timeout():
    block = lines(location(site({"streamingPaths": ["/api/events"]}), "= /api/events"))
    assert {"proxy_buffering off;", "proxy_cache off;", "proxy_read_timeout 3600s;",
            'proxy_set_header Connection "";'} <= set(block)
    assert "proxy_set_header Upgrade $http_upgrade;" not in block


def test_without_strip_prefix_the_backend_sees_the_whole_path():
    text = site({"websocketPaths": ["/api/ws"]}, backend={"stripPrefix": False})
    assert "proxy_pass http://webstack_backend;" in location(text, "= /api/ws")
    assert "proxy_pass http://webstack_backend;" in location(text, "/api/ws/")


def test_the_prefix_itself_holds_the_whole_backend_open_without_more_locations():
    text = site({"streamingPaths": ["/api"]})
    assert "proxy_buffering off;" in location(text, "/api/")
    assert "location = /api/" not in text and text.count("proxy_pass http://webstack_backend") == 1


def test_a_path_inside_another_gets_both_treatments():
    text = site({"websocketPaths": ["/api/live"], "streamingPaths": ["/api/live/events"]})
    inner = lines(location(text, "/api/live/events/"))
    assert "proxy_buffering off;" in inner and "proxy_set_header Upgrade $http_upgrade;" in inner
    assert "proxy_buffering off;" not in location(text, "/api/live/")


def test_a_backend_only_app_can_hold_every_path_open():
    text = site({"websocketPaths": ["/"]}, frontend={"enabled": False})
    root = lines(location(app_server(text), "/"))
    assert "proxy_pass http://webstack_backend;" in root and "proxy_set_header Upgrade $http_upgrade;" in root


def test_routes_follow_the_backends_own_prefix():
    text = site({"websocketPaths": ["/v2/ws"]}, backend={"pathPrefix": "/v2"})
    assert "proxy_pass http://webstack_backend/ws;" in location(text, "= /v2/ws")


# --- trusted proxies ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_every_server_believes_the_trusted_proxies_only(tls):
    text = site({"trustedProxies": ["10.0.0.0/8", "2001:db8::/32"], "redirects": ["www.example.com"]}, tls)
    for block in servers(text):
        directives = lines(block)
        assert ["set_real_ip_from 10.0.0.0/8;", "set_real_ip_from 2001:db8::/32;", "real_ip_header X-Forwarded-For;",
                "real_ip_recursive on;"] == [d for d in directives if d.startswith(("set_real_ip", "real_ip"))], \
            block[:80]


def test_the_app_gets_the_address_the_edge_believes_never_the_clients_own_header():
    """$remote_addr is the client's once the trusted proxies' X-Forwarded-For is read; a header the client sent
    itself (to the edge, or through a proxy: it is left of the proxy's entry) never reaches the app as it is."""
    text = site({"trustedProxies": ["10.0.0.0/8"], "websocketPaths": ["/api/ws"]})
    assert set(re.findall(r"proxy_set_header X-Forwarded-For (.+);", text)) == {"$remote_addr"}
    assert "$proxy_add_x_forwarded_for" not in text and "$http_x_forwarded_for" not in text
    assert "$binary_remote_addr" in text.split("map $request_method $webstack_write_client {")[1].split("}")[0]


# --- the write limit ------------------------------------------------------------------------------------------

def test_the_write_limit_is_the_setting():
    text = site({"writeRatePerSecond": 50, "writeBurst": 100})
    assert "limit_req_zone $webstack_write_client zone=webstack_writes:10m rate=50r/s;" in text
    assert "limit_req zone=webstack_writes burst=100 nodelay;" in app_server(text)


def test_no_burst_is_no_burst_argument():   # nginx refuses burst=0
    assert "limit_req zone=webstack_writes nodelay;" in app_server(site({"writeBurst": 0}))


# --- more names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_aliases_are_served_like_the_domain(tls):
    text = site({"aliases": ["example.org", "app.example.net"]}, tls)
    assert "server_name example.com example.org app.example.net;" in app_server(text)
    if tls != "off":
        names = "example.com, example.org, app.example.net"
        assert f'return 421 "misdirected request: this server answers {names} only\\n";' in text


def test_plain_http_to_an_alias_redirects_to_https_under_that_alias_and_only_configured_names_come_out():
    text = site({"aliases": ["example.org"]}, "self-signed")
    mapping = lines(text.split("map $host $webstack_https_host {")[1].split("}")[0])
    assert mapping == ['default "example.com";', '"example.org" "example.org";']
    http = next(b for b in servers(text) if "listen 8080 default_server" in b)
    assert "return 308 https://$webstack_https_host:8443$request_uri;" in http


@pytest.mark.parametrize("tls, listens, target", [
    ("off", ["listen 8080;", "listen unix:/tmp/webstack-edge-http.sock;"], "http://example.com:8080"),
    ("self-signed", ["listen 8443 ssl http2;", "listen unix:/tmp/webstack-edge-https.sock ssl http2;"],
     "https://example.com:8443"),
])
def test_a_redirect_name_answers_a_308_to_the_domain_keeping_path_and_query(tls, listens, target):
    text = site({"redirects": ["www.example.com", "example.net"]}, tls)
    (block,) = [b for b in servers(text) if "server_name www.example.com example.net;" in b]
    assert [d for d in lines(block) if d.startswith("listen")] == listens
    assert f"return 308 {target}$request_uri;" in location(block, "/")
    assert "proxy_pass" not in block and ("ssl_certificate " in block) == (tls != "off")


def test_the_canary_serves_the_app_under_every_name_and_no_redirect_server():
    canary = site({"aliases": ["example.org"], "redirects": ["www.example.com"]}, "self-signed", canary=True)
    assert re.findall(r"server_name ([^;]+);", canary) == ["example.com example.org"]
    assert "$webstack_canary_https_host" not in canary


# --- error pages ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_every_server_has_the_edges_page_for_every_error_nginx_produces(tls):
    text = site(EVERYTHING, tls)
    expected = [f"error_page {code} {'=400 ' if code in (494, 495, 496, 497) else ''}/_webstack/errors/{code};"
                for code in rendering.EDGE_ERROR_TITLES]
    for code in (400, 404, 413, 414, 429, 494, 497, 500, 502, 503, 504):
        assert code in rendering.EDGE_ERROR_TITLES
    for block in servers(text):
        directives = lines(block)
        assert [d for d in directives if d.startswith("error_page") and "moved" not in d] == expected, block[:80]
        page = lines(location(block, "/_webstack/errors/"))
        assert page[:2] == ["internal;", "client_max_body_size 0;"]
        assert 'add_header Cache-Control "no-store, max-age=0" always;' in page
        assert "add_header Retry-After $webstack_retry_after always;" in page   # the 503 keeps its Retry-After


def test_every_page_is_small_html_that_names_no_software():
    text = site(EVERYTHING, "self-signed")
    mapping = text.split("map $uri $webstack_error_page {")[1].split("\n}")[0]
    bodies = dict(re.findall(r'^    (\S+) "(.*)";$', mapping, re.M))
    assert set(bodies) == {f"/_webstack/errors/{code}" for code in rendering.EDGE_ERROR_TITLES} | {
        "/_webstack/errors/moved", "default"}
    for path, body in bodies.items():
        assert "nginx" not in body.lower() and '"' not in body and "$" not in body and len(body) < 200, path
    assert "<h1>Not found</h1>" in bodies["/_webstack/errors/404"]
    assert "<h1>Request too large</h1>" in bodies["/_webstack/errors/413"]


@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_every_redirect_of_the_edge_gets_its_own_page_and_nothing_else_does(tls):
    text = site(EVERYTHING, tls)
    moved = "error_page 301 302 303 307 308 /_webstack/errors/moved;"
    redirecting = [b for b in text.split("    location ")[1:] if "return 308" in b.split("\n    }")[0]]
    assert len(redirecting) == (3 if tls != "off" else 2)   # /api, the redirect server (and port 80 with TLS)
    assert all(moved in block for block in redirecting)
    # Only where the edge itself redirects: the frontend's location intercepts its errors, and its own
    # redirects must keep their Location.
    assert text.count(moved) == len(redirecting)
