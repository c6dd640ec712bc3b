"""webstack:edge (issue 22): defaults that keep the edge as it was, and a table of bad values, each refused naming
its key path (`edge.trustedProxies[1]`) and the fix."""

from __future__ import annotations

import json

import pytest

from components.settings_loader import ConfigError, load_settings
from tests.stack_config import PROJECT_DIR
from tests.unit.conftest import certificate


def load(edge: dict | str, secrets: set[str] = frozenset(), **values):
    raw = {"release": "v1", "domain": "app.example.com", "edge": edge, **values}
    raw = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    return load_settings(raw, set(secrets), "test", PROJECT_DIR)


def refusal(edge: dict | str, **values) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        load(edge, **values)
    return error.value


def test_the_defaults_are_the_edge_as_it_was():
    edge = load({}).edge
    assert (edge.maxBodyMb, edge.readTimeoutSeconds, edge.sendTimeoutSeconds) == (1, 60, 60)
    assert (edge.writeRatePerSecond, edge.writeBurst, edge.streamTimeoutSeconds) == (10, 20, 3600)
    assert edge.websocketPaths == edge.streamingPaths == edge.trustedProxies == edge.aliases == edge.redirects == []


def test_good_values_are_kept_and_names_and_addresses_normalised():
    edge = load({"maxBodyMb": 25, "websocketPaths": ["/api/ws"], "streamingPaths": ["/api", "/api/events"],
                 "trustedProxies": ["10.0.0.0/8", "192.0.2.7", "2001:DB8::/32", "198.51.100.9/32"],
                 "aliases": ["App.Example.Org"], "redirects": ["www.example.com"]}).edge
    assert edge.maxBodyMb == 25 and edge.streamingPaths == ["/api", "/api/events"]
    assert edge.trustedProxies == ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "198.51.100.9"]
    assert (edge.aliases, edge.redirects) == (["app.example.org"], ["www.example.com"])


def test_a_backend_only_app_may_hold_connections_open_everywhere():
    edge = load({"websocketPaths": ["/"], "streamingPaths": ["/events"]}, frontend={"enabled": False}).edge
    assert edge.websocketPaths == ["/"]


def test_paths_follow_the_backends_own_prefix():
    assert load({"websocketPaths": ["/v2/ws"]}, backend={"pathPrefix": "/v2"}).edge.websocketPaths == ["/v2/ws"]


BAD_EDGE = [
    # (case, edge, other values, key path named, words in the message, the fix shown)
    ("body size zero", {"maxBodyMb": 0}, {}, "edge.maxBodyMb", "greater than or equal to 1",
     "pulumi config set --path webstack:edge.maxBodyMb 20"),
    ("body size past the limit", {"maxBodyMb": 2048}, {}, "edge.maxBodyMb", "less than or equal to 1024", None),
    ("body size as words", {"maxBodyMb": "lots"}, {}, "edge.maxBodyMb", "integer", None),
    ("read timeout of two hours", {"readTimeoutSeconds": 7200}, {}, "edge.readTimeoutSeconds",
     "less than or equal to 3600", "pulumi config set --path webstack:edge.readTimeoutSeconds 60"),
    ("send timeout zero", {"sendTimeoutSeconds": 0}, {}, "edge.sendTimeoutSeconds", "greater than or equal to 1",
     None),
    ("stream timeout past a day", {"streamTimeoutSeconds": 86401}, {}, "edge.streamTimeoutSeconds", "86400", None),
    ("write rate zero", {"writeRatePerSecond": 0}, {}, "edge.writeRatePerSecond", "greater than or equal to 1", None),
    ("negative burst", {"writeBurst": -1}, {}, "edge.writeBurst", "greater than or equal to 0", None),
    ("a typo", {"maxBodyMB": 20}, {}, "edge.maxBodyMB", "did you mean 'edge.maxBodyMb'",
     "pulumi config rm --path webstack:edge.maxBodyMB"),
    ("a path as one string", {"websocketPaths": "/api/ws"}, {}, "edge.websocketPaths", "valid list",
     "pulumi config set --path 'webstack:edge.websocketPaths[0]' /api/ws (then [1], [2]... for more)"),
    ("a path without a slash", {"websocketPaths": ["/api/ws", "api/chat"]}, {}, "edge.websocketPaths[1]",
     "starting with '/'", "pulumi config set --path 'webstack:edge.websocketPaths[1]' /api/ws"),
    ("a path with a semicolon", {"streamingPaths": ["/api/x;return"]}, {}, "edge.streamingPaths[0]",
     "no spaces, quotes, ';', '{' or '}'", "pulumi config set --path 'webstack:edge.streamingPaths[0]' /api/events"),
    ("a path with a brace", {"streamingPaths": ["/api/{x}"]}, {}, "edge.streamingPaths[0]", "'{'", None),
    ("a path with a space", {"websocketPaths": ["/api/a b"]}, {}, "edge.websocketPaths[0]", "no spaces", None),
    ("a path with a quote", {"websocketPaths": ['/api/"x']}, {}, "edge.websocketPaths[0]", "quotes", None),
    ("a path with a newline", {"websocketPaths": ["/api/ws\n"]}, {}, "edge.websocketPaths[0]", "starting with", None),
    ("a trailing slash", {"websocketPaths": ["/api/ws/"]}, {}, "edge.websocketPaths[0]", "no trailing '/'", None),
    ("a dot-dot segment", {"streamingPaths": ["/api/../admin"]}, {}, "edge.streamingPaths[0]", "'..'", None),
    ("a path twice", {"websocketPaths": ["/api/ws", "/api/ws"]}, {}, "edge.websocketPaths[1]",
     "'/api/ws' is already edge.websocketPaths[0]", None),
    ("a path outside the backend", {"websocketPaths": ["/ws"]}, {}, "edge.websocketPaths[0]",
     "outside the backend's prefix '/api' (backend.pathPrefix)", None),
    ("the frontend's root", {"streamingPaths": ["/"]}, {}, "edge.streamingPaths[0]", "did you mean '/api'?", None),
    ("a look-alike of the prefix", {"websocketPaths": ["/apiws"]}, {}, "edge.websocketPaths[0]",
     "did you mean '/api/apiws'?", None),
    ("a proxy that is no address", {"trustedProxies": ["10.0.0.0/8", "proxy.internal"]}, {},
     "edge.trustedProxies[1]", "not an IP address or a CIDR range",
     "pulumi config set --path 'webstack:edge.trustedProxies[1]' 10.0.0.0/8"),
    ("a range with host bits", {"trustedProxies": ["10.1.2.3/8"]}, {}, "edge.trustedProxies[0]",
     "the range is 10.0.0.0/8", None),
    ("every IPv4 address", {"trustedProxies": ["0.0.0.0/0"]}, {}, "edge.trustedProxies[0]", "trusts every address",
     None),
    ("every IPv6 address", {"trustedProxies": ["::/0"]}, {}, "edge.trustedProxies[0]", "trusts every address", None),
    ("a zone id", {"trustedProxies": ["fe80::1%eth0"]}, {}, "edge.trustedProxies[0]", "zone id", None),
    ("a prefix length past 32", {"trustedProxies": ["10.0.0.0/33"]}, {}, "edge.trustedProxies[0]",
     "not an IP address", None),
    ("an alias that is no hostname", {"aliases": ["app example.org"]}, {}, "edge.aliases[0]", "not a hostname",
     "pulumi config set --path 'webstack:edge.aliases[0]' app.example.org"),
    ("a wildcard alias", {"aliases": ["*.example.org"]}, {}, "edge.aliases[0]", "no wildcard", None),
    ("a redirect with a scheme", {"redirects": ["https://www.example.com"]}, {}, "edge.redirects[0]",
     "not a hostname", "pulumi config set --path 'webstack:edge.redirects[0]' www.example.com"),
    ("the domain as an alias", {"aliases": ["APP.example.com"]}, {}, "edge.aliases[0]", "is the domain itself", None),
    ("a name both alias and redirect", {"aliases": ["example.com"], "redirects": ["example.com"]}, {},
     "edge.redirects[0]", "a name is an alias or a redirect, not both", None),
    ("edge not an object", "big", {}, "edge", "must be an object", None),
]


@pytest.mark.parametrize("case,edge,values,path,words,fix", BAD_EDGE, ids=[c[0] for c in BAD_EDGE])
def test_a_bad_edge_value_is_refused_naming_its_key_and_the_fix(case, edge, values, path, words, fix):
    error = refusal(edge, **values)
    message = str(error)
    assert [p for p, _ in error.problems] == [path], message
    assert f"webstack:{path}: " in message and words in message and "Fix:" in message, message
    if fix:
        assert f"Fix: {fix}" in message, message


def test_every_bad_element_of_a_list_is_reported_at_once():
    error = refusal({"trustedProxies": ["x", "10.0.0.0/8", "::/0"], "aliases": ["-bad-"]})
    assert [p for p, _ in error.problems] == ["edge.trustedProxies[0]", "edge.trustedProxies[2]", "edge.aliases[0]"]


WILDCARD_CERT, WILDCARD_KEY = certificate("*.example.com")


def provided() -> dict:
    return {"mode": "provided", "certificate": WILDCARD_CERT, "privateKey": WILDCARD_KEY}


def test_a_provided_certificate_must_cover_every_alias_and_redirect():
    with pytest.raises(ConfigError) as error:
        load({"aliases": ["api.example.com", "app.example.org"], "redirects": ["example.com"]}, {"tls"},
             tls=provided())
    assert [p for p, _ in error.value.problems] == ["tls.certificate"]
    assert ("does not cover the alias (edge.aliases) 'app.example.org', the redirect (edge.redirects) 'example.com' "
            "(it covers: *.example.com)") in str(error.value)


def test_a_provided_certificate_that_covers_every_name_is_accepted():
    settings = load({"aliases": ["api.example.com"], "redirects": ["www.example.com"]}, {"tls"}, tls=provided())
    assert settings.served_names == {"app.example.com": "the domain", "api.example.com": "the alias (edge.aliases)",
                                     "www.example.com": "the redirect (edge.redirects)"}
