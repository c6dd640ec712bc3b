"""Properties of settings and rendering over generated configuration (hypothesis, 200 examples each):
any valid configuration loads and renders every template; any invalid value ends in the one ConfigError,
naming the key, and never in another exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import contract
from components.rendering import render_bootstrap, render_edge_site, render_pg_hba, render_pg_ident
from components.settings_loader import ConfigError, load_settings
from tests.settings_strategies import INVALID, valid_config
from tests.stack_config import PROJECT_DIR

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def upstreams(loaded) -> tuple[list[str], list[str]]:
    prefix = f"{loaded.name_prefix}-{loaded.release}"
    return [f"{prefix}-backend-{i}" for i in range(loaded.backend.replicas)], [f"{prefix}-web"]


@EXAMPLES
@given(valid_config())
def test_any_valid_configuration_loads_and_renders_every_template(case):
    stack, values = case
    loaded = load_settings(values, set(), stack, PROJECT_DIR)
    backends, webs = upstreams(loaded)
    site = render_edge_site(loaded, backends, webs)
    for server in backends:
        assert f"server {server}:{loaded.backend.port}" in site
    assert (f"server {webs[0]}:{contract.WEB_PORT}" in site) == loaded.frontend.enabled
    prefix = loaded.backend_prefix
    assert (f"location {prefix}/ {{" if prefix != "/" else "proxy_pass http://webstack_backend;") in site
    # one route for / in the server that serves the app, and one in each server that only redirects (plain HTTP
    # with TLS, edge.redirects) or refuses other names (the catch-all servers)
    routes = (3 if loaded.tls_enabled else 2) + (1 if loaded.edge.redirects else 0)
    assert site.count("    location / {") == routes and "$proxy_add_x_forwarded_for" not in site
    for path in {*loaded.edge.websocketPaths, *loaded.edge.streamingPaths} - {prefix}:
        assert f"location = {path} {{" in site and f"location {path}/ {{" in site
    assert ("ssl_certificate" in site) == (loaded.tls.mode != "off")
    ident = render_pg_ident(loaded.database)
    assert contract.BACKEND_OS_USER in ident and loaded.database.user in ident
    hba = render_pg_hba(loaded.database)
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert all(r[-1] == "reject" for r in rules if r[0] == "host") and "trust" not in hba   # no TCP, no trust
    assert ["local", loaded.database.name, loaded.database.user, "peer", "map=webstack"] in rules, rules
    script = render_bootstrap(loaded, "24.0")
    assert loaded.target.user in script and f"/srv/webstack/{stack}" in script


@EXAMPLES
@given(valid_config(), INVALID)
def test_any_invalid_value_is_one_config_error_naming_its_key(case, bad):
    stack, values = case
    key, raw = bad
    try:
        load_settings({**values, key: raw}, set(), stack, PROJECT_DIR)
    except ConfigError as error:
        assert any(path == key or path.startswith(f"{key}.") for path, _ in error.problems), error.problems
        assert f"webstack:{key}" in str(error)
    else:
        raise AssertionError(f"webstack:{key}={raw!r} was accepted")


@EXAMPLES
@given(valid_config(), st.sampled_from(["httpPort", "database", "backend", "target"]),
       st.one_of(st.text(max_size=30), st.binary(max_size=10).map(lambda b: b.decode("latin-1")),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3)).map(json.dumps)))
def test_arbitrary_raw_text_is_accepted_or_one_config_error_never_another_exception(case, key, raw):
    stack, values = case
    try:
        load_settings({**values, key: raw}, set(), stack, PROJECT_DIR)
    except ConfigError as error:
        # The edge's WebSocket and streaming paths lie within the backend's prefix: another backend may move it.
        keys = (key, "edge") if key == "backend" else (key,)
        assert all(path.split(".")[0] in keys for path, _ in error.problems), error.problems
